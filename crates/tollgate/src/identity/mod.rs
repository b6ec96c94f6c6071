//! Identity: who a request comes from. A credential (master key, static
//! key, virtual key or JWT) resolves to a `Principal` in `authenticate`,
//! before the body is read; everything after it — metadata, allowlists,
//! limits, budgets, the request log — reads that principal, whatever the
//! protocol that carried the request.

pub mod authenticate;
pub mod jwt;
pub mod keys;
pub mod principal;

pub use crate::config::file::Role;
pub use principal::{Allowlist, AuthSettings, Principal, PrincipalKind};
