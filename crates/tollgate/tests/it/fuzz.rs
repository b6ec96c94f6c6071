//! Fuzzing every parser of untrusted bytes, on the stable toolchain: each
//! target replays its seed corpus (`tests/fuzz/<target>/` and the golden
//! fixtures of `tests/golden/`), then runs mutations of it — bit flips,
//! byte inserts and deletes, truncations, splices of two seeds, nesting —
//! from a seeded generator, so a failure is reproducible from the seed it
//! prints. A target passes when no input panics.
//!
//! A run in the test suite is a smoke run (`TOLLGATE_FUZZ_CASES`, default
//! 300 per target); docs/fuzzing.md says how to run them long. A failing
//! input is written to `target/fuzz-failures/` to become a seed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tollgate::translate::{self, ToOpenAiStream, UpEvent};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// Every file under the target's corpus and the named golden directories.
fn seeds(target: &str, golden: &[&str]) -> Vec<Vec<u8>> {
    let mut dirs = vec![root().join("fuzz").join(target)];
    dirs.extend(golden.iter().map(|g| root().join("golden").join(g)));
    if target == "config" {
        // Every example config users start from is a seed too.
        dirs.push(root().join("../../../examples"));
    }
    let mut out = Vec::new();
    let mut stack = dirs;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x != "py") {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    assert!(!out.is_empty(), "target `{target}` has no seeds");
    out.sort();
    out
}

fn mutate(rng: &mut fastrand::Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.usize(..seeds.len())].clone();
    for _ in 0..rng.usize(1..6) {
        let at = if b.is_empty() { 0 } else { rng.usize(..b.len()) };
        match rng.u8(..8) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.u8(..8),
            1 => b.insert(at, rng.u8(..)),
            2 if !b.is_empty() => {
                b.remove(at);
            }
            3 => b.truncate(at),
            4 => {
                // Splice: this seed's head, another's tail.
                let other = &seeds[rng.usize(..seeds.len())];
                let from = if other.is_empty() { 0 } else { rng.usize(..other.len()) };
                b.truncate(at);
                b.extend_from_slice(&other[from..]);
            }
            5 => {
                // Structural bytes parsers branch on.
                let tokens: [&[u8]; 10] =
                    [b"{", b"}", b"[", b"]", b"\"", b":", b",", b"\n\n", b"data: ", b"\\u0000"];
                let t = tokens[rng.usize(..tokens.len())];
                b.splice(at..at, t.iter().copied());
            }
            6 => {
                let n = rng.usize(1..64);
                b.splice(at..at, std::iter::repeat_n(b'[', n));
            }
            _ => {
                let v = [0u8, 0xff, 0x7f, b'-', b'0', b'9', b'e', 0xc3][rng.usize(..8)];
                if !b.is_empty() {
                    b[at] = v;
                }
            }
        }
    }
    b
}

fn fuzz(target: &str, golden: &[&str], f: impl Fn(&[u8])) {
    let cases: usize = std::env::var("TOLLGATE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let seed: u64 = std::env::var("TOLLGATE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x70_11_6a_7e);
    let corpus = seeds(target, golden);
    let mut rng = fastrand::Rng::with_seed(seed);
    let inputs = corpus.iter().cloned().chain((0..cases).map(|_| mutate(&mut rng, &corpus)));
    for (i, input) in inputs.enumerate() {
        if catch_unwind(AssertUnwindSafe(|| f(&input))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{seed}-{i}"));
            let _ = std::fs::write(&path, &input);
            panic!("fuzz target `{target}` panicked on input {i} (seed {seed}); saved to {}", path.display());
        }
    }
}

fn json_of(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

#[test]
fn request_bodies() {
    fuzz("request", &["anthropic", "gemini", "messages", "cohere"], |b| {
        for op in [tollgate::wire::Operation::ChatCompletions, tollgate::wire::Operation::Embeddings] {
            let bytes = Bytes::copy_from_slice(b);
            if let Ok(p) = tollgate::pipeline::receive::parse(op, &bytes) {
                let _ = tollgate::pipeline::receive::estimate(op, &p);
            }
        }
        let _ = tollgate::pipeline::front::prepare(b);
    });
}

#[test]
fn sse_framing() {
    fuzz("sse", &["anthropic", "gemini", "cohere"], |b| {
        let _ = tollgate::wire::sse::sse_events(b);
        let _ = tollgate::wire::sse::last_boundary(b);
        for e in tollgate::wire::sse::split_events(b) {
            let _ = tollgate::wire::sse::event_data(e);
        }
    });
}

#[test]
fn aws_event_stream() {
    fuzz("eventstream", &["bedrock"], |b| {
        let mut d = tollgate::wire::eventstream::EventStreamDecoder::default();
        // Whole and in pieces: a decoder must cope with any split.
        for chunk in b.chunks(7) {
            d.push(chunk);
            while let Ok(Some(_)) = d.next_message() {}
        }
        let _ = d.has_partial();
    });
}

#[test]
fn translators_of_requests() {
    let s = translate::Settings::default();
    fuzz("translate-request", &["anthropic", "gemini", "bedrock", "cohere", "messages"], |b| {
        let Some(v) = json_of(b) else { return };
        let _ = translate::anthropic::request(&v, "m", &s);
        let _ = translate::gemini::request(&v);
        let _ = translate::bedrock::request(&v, &s);
        let _ = translate::cohere::request(&v, "m", &s);
        let _ = translate::gemini::embed_request(&v, "m");
        let _ = translate::messages::to_hub(&v);
        let _ = translate::messages::count_tokens(&v);
        let _ = translate::responses::to_hub(&v, &[json!({"role": "user", "content": "x"})], &|_| Some(v.clone()));
    });
}

#[test]
fn translators_of_answers() {
    fuzz("translate-response", &["anthropic", "gemini", "bedrock", "cohere", "messages"], |b| {
        let _ = translate::gemini::error_message(b);
        let _ = translate::bedrock::error_message(b);
        let _ = translate::cohere::error_message(b);
        let Some(v) = json_of(b) else { return };
        let _ = translate::anthropic::response(&v);
        let _ = translate::gemini::response(&v, "m");
        let _ = translate::bedrock::response(&v, "m");
        let _ = translate::cohere::response(&v, "m");
        let _ = translate::messages::from_hub(&v, "m");
        let req = json!({"model": "m", "input": "x"});
        let echo = translate::responses::Echo { id: "resp_1", created_at: 1, req: &req };
        let _ = translate::responses::from_hub(&v, &echo, &mut |p| format!("{p}_1"));
        let _ = translate::gemini::embed_response(&v, "m", 3);
        let _ = translate::bedrock::embed_response(&v, "m");
    });
}

#[test]
fn translators_of_streams() {
    fuzz("translate-stream", &["anthropic", "gemini", "cohere", "messages"], |b| {
        let events = tollgate::wire::sse::sse_events(b);
        let mut streams: Vec<Box<dyn ToOpenAiStream>> = vec![
            Box::new(translate::anthropic::Stream::new("m", true)),
            Box::new(translate::gemini::Stream::new("m", true)),
            Box::new(translate::cohere::Stream::new("m", true)),
            Box::new(translate::bedrock::Stream::new("m", true)),
        ];
        let mut out = Vec::new();
        for s in &mut streams {
            for (name, data) in &events {
                if s.event(UpEvent::Sse { event: *name, data }, &mut out).is_err() {
                    break;
                }
            }
            let _ = s.end(&mut out);
        }
        // The fronts read hub events: Anthropic's and the Responses API's.
        let mut anthropic = translate::messages::stream::FromHub::new("m", 5);
        let mut responses =
            translate::responses::stream::FromHub::new("resp_1".into(), 1, json!({"model": "m"}), Box::new(|p| format!("{p}_1")));
        for (_, data) in &events {
            anthropic.event(data, &mut out);
            responses.event(data, &mut out);
        }
        anthropic.end(&mut out);
        responses.end(&mut out);
    });
}

#[test]
fn config_files() {
    fuzz("config", &[], |b| {
        let Ok(text) = std::str::from_utf8(b) else { return };
        let _ = tollgate::config::load::parse(text, Default::default());
    });
}

#[test]
fn request_headers() {
    let contract = tollgate::config::snapshot::MetadataContract::default();
    fuzz("headers", &[], |b| {
        let Ok(v) = HeaderValue::from_bytes(b) else { return };
        let mut h = HeaderMap::new();
        h.insert("x-tollgate-metadata", v.clone());
        let _ = tollgate::admission::metadata::run(&contract, None, &h);
        let _ = tollgate::identity::jwt::looks_like_jwt(b);
        let _ = jsonwebtoken::decode_header(std::str::from_utf8(b).unwrap_or(""));
    });
}
