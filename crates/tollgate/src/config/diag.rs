//! Config problems with their position and a hint. Every builder that turns
//! a section of the file into runtime values reports through `Diags`, so
//! `tollgate check` can print all of them at once.

use super::loc::Loc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, Default)]
pub struct Diags(pub Vec<Diagnostic>);

impl Diags {
    pub fn at<T>(&mut self, loc: &Loc<T>, message: impl Into<String>, hint: impl Into<String>) {
        let hint = hint.into();
        self.0.push(Diagnostic {
            line: loc.line,
            column: loc.column,
            message: message.into(),
            hint: (!hint.is_empty()).then_some(hint),
        });
    }
}
