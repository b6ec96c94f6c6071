//! Prompt injection. (Being written: the detector is filled in beside this API.)

/// Where the text came from: the same phrase weighs more in a tool's output
/// (which no user wrote) than in a user's own turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A user (or system) turn.
    User,
    /// A tool's output or retrieved content (`role: tool`, `tool_result`, an MCP result).
    Tool,
}

/// The outcome of one scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub flagged: bool,
    /// 0.0 (benign) to 1.0 (certain).
    pub score: f32,
    /// The names of the signals that fired (`instruction_override`, …); never the text.
    pub signals: Vec<&'static str>,
}

/// A compiled prompt-injection detector.
pub struct Injection {}

impl Injection {
    pub fn new() -> Injection {
        Injection {}
    }

    pub fn scan(&self, _text: &str, _source: Source) -> Verdict {
        Verdict { flagged: false, score: 0.0, signals: Vec::new() }
    }
}

impl Default for Injection {
    fn default() -> Self {
        Injection::new()
    }
}
