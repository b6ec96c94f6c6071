//! Golden fixtures for every translation, in both directions.
//!
//! `tests/golden/<translation>/<case>/` holds pairs: `request.in.json` →
//! `request.out.json`, `response.in.json` → `response.out.json`,
//! `stream.in.*` → `stream.out.txt`. The translations are the hub (OpenAI)
//! to and from each provider (`anthropic`, `gemini`, `bedrock`, `cohere`),
//! and `messages`: an Anthropic client's request to the hub and the hub's
//! answer back to Anthropic's shape. Timestamps and the ids the gateway
//! makes up are normalised. `GOLDEN_UPDATE=rewrite` rewrites the `.out`
//! files and then fails, so that a run with it set can never pass: review
//! the diff, then run again without it. Any other value is refused.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tollgate::translate::{self, Settings, ToOpenAiStream, UpEvent};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Made-up ids and clocks replaced, so outputs compare across runs.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.contains_key("created") {
                o.insert("created".into(), json!(0));
            }
            for (k, x) in o.iter_mut() {
                if let Value::String(s) = x
                    && (k == "id" || k == "tool_call_id")
                {
                    for prefix in ["call_g", "gemini-", "bedrock-"] {
                        if s.starts_with(prefix) && s.len() == prefix.len() + 16 {
                            *s = format!("{prefix}<generated>");
                        }
                    }
                }
                normalise(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn normalise_sse(text: &str) -> String {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.lines()
                .map(|l| match l.strip_prefix("data: ").map(serde_json::from_str::<Value>) {
                    Some(Ok(mut v)) => {
                        normalise(&mut v);
                        format!("data: {v}")
                    }
                    _ => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n\n"
}

/// Golden cases there are today: a run that finds fewer (a fixture
/// deleted or no longer picked up) fails. Raise it when adding cases.
const CASES: usize = 42;

/// Whether `GOLDEN_UPDATE` asks for a rewrite; a value other than
/// `rewrite` is a mistake, not a wish.
fn rewriting() -> bool {
    match std::env::var("GOLDEN_UPDATE") {
        Ok(v) if v == "rewrite" => true,
        Ok(v) => panic!("GOLDEN_UPDATE={v:?}: set GOLDEN_UPDATE=rewrite to rewrite the golden outputs, or unset it"),
        Err(_) => false,
    }
}

fn check(out_path: &Path, got: String, failures: &mut Vec<String>) {
    let want = std::fs::read_to_string(out_path).unwrap_or_default();
    if rewriting() {
        if want != got {
            std::fs::write(out_path, &got).unwrap();
            failures.push(format!("{}: rewritten", out_path.display()));
        }
        return;
    }
    if want != got {
        failures.push(format!("{}:\n--- want\n{want}\n--- got\n{got}", out_path.display()));
    }
}

fn pretty(mut v: Value) -> String {
    normalise(&mut v);
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn settings() -> Settings {
    Settings::default()
}

fn request(kind: &str, v: &Value) -> Value {
    let model = v["model"].as_str().unwrap_or("m").to_string();
    let r = match kind {
        "anthropic" => translate::anthropic::request(v, &model, &settings()),
        "gemini" => translate::gemini::request(v),
        "bedrock" => translate::bedrock::request(v, &settings()),
        "cohere" => translate::cohere::request(v, &model, &settings()),
        "messages" => translate::messages::to_hub(v),
        other => panic!("unknown translation {other}"),
    };
    r.unwrap_or_else(|e| json!({ "untranslatable": e.0 }))
}

fn response(kind: &str, v: &Value) -> Value {
    let r = match kind {
        "anthropic" => translate::anthropic::response(v),
        "gemini" => translate::gemini::response(v, "gemini-2.5-flash"),
        "bedrock" => translate::bedrock::response(v, "anthropic.claude-3-5-haiku-20241022-v1:0"),
        "cohere" => translate::cohere::response(v, "command-r-plus"),
        "messages" => Ok(translate::messages::from_hub(v, "client/model")),
        other => panic!("unknown translation {other}"),
    };
    r.unwrap_or_else(|e| json!({ "untranslatable": e.0 }))
}

fn stream(kind: &str, dir: &Path) -> String {
    let mut out = Vec::new();
    if kind == "messages" {
        let input = std::fs::read(dir.join("stream.in.txt")).unwrap();
        let mut t = translate::messages::stream::FromHub::new("client/model", 12);
        for (_, data) in tollgate::wire::sse::sse_events(&input) {
            t.event(&data, &mut out);
        }
        t.end(&mut out);
        return String::from_utf8(out).unwrap();
    }
    let mut t: Box<dyn ToOpenAiStream> = match kind {
        "anthropic" => Box::new(translate::anthropic::Stream::new("claude-sonnet-4-5", true)),
        "gemini" => Box::new(translate::gemini::Stream::new("gemini-2.5-flash", true)),
        "bedrock" => Box::new(translate::bedrock::Stream::new("anthropic.claude-3-5-haiku-20241022-v1:0", true)),
        "cohere" => Box::new(translate::cohere::Stream::new("command-r-plus", true)),
        other => panic!("unknown translation {other}"),
    };
    let mut result = Ok(());
    if dir.join("stream.in.bin").exists() {
        // The binary event-stream as AWS frames it, fed to the gateway's own
        // decoder in 7-byte pieces, so messages straddle every read.
        let bytes = std::fs::read(dir.join("stream.in.bin")).unwrap();
        let mut decoder = tollgate::wire::eventstream::EventStreamDecoder::default();
        for piece in bytes.chunks(7) {
            decoder.push(piece);
            while let Some(m) = decoder.next_message().unwrap() {
                let ev = UpEvent::Aws { message_type: &m.message_type, kind: &m.kind, payload: &m.payload };
                result = result.and_then(|()| t.event(ev, &mut out));
            }
        }
        assert!(!decoder.has_partial(), "{}: bytes left over after the last message", dir.display());
    } else if kind == "bedrock" {
        // One event-stream message per line: {"message_type", "kind", "payload"}.
        let text = std::fs::read_to_string(dir.join("stream.in.jsonl")).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let m: Value = serde_json::from_str(line).unwrap();
            let payload = m["payload"].to_string();
            let ev = UpEvent::Aws {
                message_type: m["message_type"].as_str().unwrap_or("event"),
                kind: m["kind"].as_str().unwrap(),
                payload: payload.as_bytes(),
            };
            result = result.and_then(|()| t.event(ev, &mut out));
        }
    } else {
        let input = std::fs::read(dir.join("stream.in.txt")).unwrap();
        for (event, data) in tollgate::wire::sse::sse_events(&input) {
            result = result.and_then(|()| t.event(UpEvent::Sse { event, data: &data }, &mut out));
        }
    }
    result = result.and_then(|()| t.end(&mut out));
    let mut text = String::from_utf8(out).unwrap();
    if let Err(f) = result {
        text.push_str(&format!("failed: {f:?}\n\n"));
    }
    text
}

#[test]
fn every_translation_matches_its_golden_fixtures() {
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut kinds: Vec<_> = std::fs::read_dir(root()).unwrap().map(|e| e.unwrap().path()).collect();
    kinds.sort();
    for kind_dir in kinds {
        let kind = kind_dir.file_name().unwrap().to_string_lossy().to_string();
        let mut dirs: Vec<_> = std::fs::read_dir(&kind_dir).unwrap().map(|e| e.unwrap().path()).collect();
        dirs.sort();
        for dir in dirs {
            if dir.join("request.in.json").exists() {
                cases += 1;
                check(
                    &dir.join("request.out.json"),
                    pretty(request(&kind, &read_json(&dir.join("request.in.json")))),
                    &mut failures,
                );
            }
            if dir.join("response.in.json").exists() {
                cases += 1;
                check(
                    &dir.join("response.out.json"),
                    pretty(response(&kind, &read_json(&dir.join("response.in.json")))),
                    &mut failures,
                );
            }
            if ["stream.in.txt", "stream.in.jsonl", "stream.in.bin"].iter().any(|f| dir.join(f).exists()) {
                cases += 1;
                check(&dir.join("stream.out.txt"), normalise_sse(&stream(&kind, &dir)), &mut failures);
            }
        }
    }
    assert!(cases >= CASES, "only {cases} golden cases found, {CASES} expected: was a fixture lost?");
    assert!(failures.is_empty(), "{} of {cases} golden fixtures differ:\n{}", failures.len(), failures.join("\n\n"));
    assert!(!rewriting(), "golden outputs rewritten: review the diff, then run again without GOLDEN_UPDATE");
}
