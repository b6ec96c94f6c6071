//! `distributed:` checked into what the running gateway uses. Credentials
//! are kept apart from everything printable: `Debug` shows neither, and no
//! error message repeats a URL (it may hold a password).

use std::str::FromStr;
use std::time::Duration;

use crate::config::diag::Diags;
use crate::config::file_distributed::DistributedSection;

pub const DEFAULT_SYNC: Duration = Duration::from_millis(50);
pub const DEFAULT_LEASE: f64 = 0.01;

pub struct Settings {
    /// Where shared counters live, credentials applied.
    pub redis: redis::ConnectionInfo,
    pub nats_url: String,
    pub nats_tls: bool,
    pub nats_ca_file: Option<std::path::PathBuf>,
    pub nats_auth: NatsAuth,
    pub instance_id: String,
    pub namespace: String,
    pub sync_interval: Duration,
    /// Fraction of each limit taken from Redis at a time.
    pub lease: f64,
    pub fail_closed: bool,
}

pub enum NatsAuth {
    /// None beyond what the URL holds.
    None,
    Token(String),
    UserPassword(String, String),
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("instance_id", &self.instance_id)
            .field("namespace", &self.namespace)
            .field("sync_interval", &self.sync_interval)
            .field("lease", &self.lease)
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The Redis address without credentials, for logs and the admin API.
    pub fn redis_display(&self) -> String {
        self.redis.addr().to_string()
    }

    /// The NATS URL without credentials, for logs and the admin API.
    pub fn nats_display(&self) -> String {
        strip_userinfo(&self.nats_url)
    }
}

/// `scheme://user:pass@host…` → `scheme://host…`.
pub fn strip_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

pub fn build(s: &DistributedSection, d: &mut Diags) -> Option<Settings> {
    use redis::IntoConnectionInfo;
    let redis = match s.redis_url.value.as_str().into_connection_info() {
        Ok(info) if !s.redis_url.value.is_empty() => {
            let mut r = info.redis_settings().clone();
            if let Some(u) = &s.redis_username {
                r = r.set_username(u);
            }
            if let Some(p) = &s.redis_password {
                r = r.set_password(p);
            }
            Some(info.set_redis_settings(r))
        }
        _ => {
            d.at(
                &s.redis_url,
                "distributed.redis_url is not a Redis URL",
                "e.g. redis://10.0.0.5:6379/0, or rediss://host:6379/0 for TLS",
            );
            None
        }
    };
    let nats_ok = s.nats_url.value.split(',').all(|u| async_nats::ServerAddr::from_str(u.trim()).is_ok());
    if !nats_ok || s.nats_url.value.is_empty() {
        d.at(&s.nats_url, "distributed.nats_url is not a NATS URL", "e.g. nats://10.0.0.6:4222 or tls://nats:4222");
    }
    let nats_auth = match (&s.nats_token, &s.nats_user, &s.nats_password) {
        (None, None, None) => NatsAuth::None,
        (Some(t), None, None) => NatsAuth::Token(t.clone()),
        (None, Some(u), Some(p)) => NatsAuth::UserPassword(u.value.clone(), p.clone()),
        (None, Some(u), None) => {
            d.at(u, "distributed.nats_user needs nats_password", "set both, or use nats_token");
            NatsAuth::None
        }
        _ => {
            d.at(&s.nats_url, "distributed: give nats_token or nats_user + nats_password, not both", "");
            NatsAuth::None
        }
    };
    let nats_ca_file = s.nats_ca_file.as_ref().map(|f| {
        if !std::path::Path::new(&f.value).is_file() {
            d.at(f, format!("distributed.nats_ca_file `{}` is not a file", f.value), "a PEM file of CA certificates");
        }
        std::path::PathBuf::from(&f.value)
    });
    let sync_interval = s.sync_interval.as_ref().map_or(DEFAULT_SYNC, |i| i.value.0);
    if let Some(i) = &s.sync_interval
        && !(Duration::from_millis(5)..=Duration::from_secs(10)).contains(&sync_interval)
    {
        d.at(i, "distributed.sync_interval must be between 5ms and 10s", "e.g. 50ms");
    }
    let lease = s.lease.as_ref().map_or(DEFAULT_LEASE, |l| l.value);
    if let Some(l) = &s.lease
        && !(l.value > 0.0 && l.value <= 0.5)
    {
        d.at(l, "distributed.lease is a fraction of each limit, above 0 and at most 0.5", "e.g. 0.01");
    }
    let name_ok = |v: &str| {
        !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let namespace = s.namespace.as_ref().map_or_else(|| "tollgate".to_string(), |n| n.value.clone());
    if let Some(n) = &s.namespace
        && !name_ok(&n.value)
    {
        d.at(n, "distributed.namespace takes letters, digits, `-`, `_`, `.` (up to 64)", "e.g. tollgate-prod");
    }
    let instance_id = match &s.instance_id {
        Some(i) => {
            if !name_ok(&i.value) {
                d.at(i, "distributed.instance_id takes letters, digits, `-`, `_`, `.` (up to 64)", "e.g. gw-1");
            }
            i.value.clone()
        }
        None => default_instance_id(),
    };
    Some(Settings {
        redis: redis?,
        nats_url: s.nats_url.value.clone(),
        nats_tls: s.nats_tls || s.nats_url.value.starts_with("tls://"),
        nats_ca_file,
        nats_auth,
        instance_id,
        namespace,
        sync_interval,
        lease,
        fail_closed: s.fail_closed,
    })
}

/// The host name (a pod's name on Kubernetes) and a random suffix, so two
/// processes on one host differ.
fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tollgate".into());
    format!("{host}-{:04x}", fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_displayed() {
        assert_eq!(strip_userinfo("nats://u:secret@nats:4222"), "nats://nats:4222");
        assert_eq!(strip_userinfo("tls://nats:4222/x@y"), "tls://nats:4222/x@y");
    }
}
