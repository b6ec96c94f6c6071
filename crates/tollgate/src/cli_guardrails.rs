//! `tollgate guardrails scan`: the built-in detectors over lines of text,
//! offline. For trying a detector on your own data before turning it on,
//! and for the accuracy harness in `bench/guardrails/`, which compares the
//! same detectors the gateway runs with reference tools.
//!
//! Input: JSON lines `{"id": …, "text": "…", "source": "user"|"tool"}`
//! (`source` only matters to `prompt_injection`; default `user`).
//! Output, one line per input line: `{"id": …, "findings": [{"type",
//! "start", "end"}]}` with offsets in Unicode characters (what most tools
//! outside Rust count in), or for `prompt_injection` `{"id": …, "flagged",
//! "score", "signals"}`.

use std::io::{BufRead, Write};

use detectors::injection::{Injection, Source};
use detectors::{Finding, pii::Pii, secrets::Secrets};

/// Which detector `scan` runs.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ScanType {
    Pii,
    Secrets,
    PromptInjection,
}

#[derive(clap::Args)]
pub struct ScanArgs {
    /// The detector to run.
    #[arg(long = "type")]
    pub kind: ScanType,
    /// For `pii`: the entities to look for (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub entities: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Line {
    #[serde(default)]
    id: serde_json::Value,
    text: String,
    #[serde(default)]
    source: Option<String>,
}

/// Reads stdin to the end; a malformed line is an error naming its number.
pub fn scan(args: ScanArgs) -> Result<(), String> {
    let pii = match args.kind {
        ScanType::Pii => Some(Pii::new(&args.entities)?),
        _ => None,
    };
    let secrets = Secrets::new();
    let injection = Injection::new();
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.lines().enumerate() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let input: Line = serde_json::from_str(&line)
            .map_err(|e| format!("line {}: expected {{\"id\": …, \"text\": \"…\"}}: {e}", n + 1))?;
        let answer = match args.kind {
            ScanType::PromptInjection => {
                let source = match input.source.as_deref() {
                    None | Some("user") => Source::User,
                    Some("tool") => Source::Tool,
                    Some(other) => return Err(format!("line {}: source `{other}`: expected user or tool", n + 1)),
                };
                let v = injection.scan(&input.text, source);
                serde_json::json!({"id": input.id, "flagged": v.flagged, "score": v.score, "signals": v.signals})
            }
            ScanType::Pii | ScanType::Secrets => {
                let found = match &pii {
                    Some(p) => p.find(&input.text),
                    None => secrets.find(&input.text),
                };
                serde_json::json!({"id": input.id, "findings": in_chars(&input.text, &found)})
            }
        };
        writeln!(out, "{answer}").map_err(|e| format!("writing stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing stdout: {e}"))
}

/// Findings with byte offsets turned into character offsets.
fn in_chars(text: &str, found: &[Finding]) -> Vec<serde_json::Value> {
    let chars = |byte: usize| text[..byte].chars().count();
    found.iter().map(|f| serde_json::json!({"type": f.kind, "start": chars(f.start), "end": chars(f.end)})).collect()
}
