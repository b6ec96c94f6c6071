//! Throughput of each detector, and of the three together, on text like a
//! model call carries: English prose, a JSON tool result, a code snippet,
//! with a few real values in them. Run:
//!
//! ```sh
//! cargo bench -p detectors
//! ```
//!
//! divan prints time per call and bytes per second; the budget is 5 µs per
//! KB for pii + secrets + prompt_injection together (≥ 200 MB/s).

use detectors::injection::{Injection, Source};
use detectors::pii::Pii;
use detectors::secrets::Secrets;
use divan::counter::BytesCount;

fn main() {
    divan::main();
}

/// About 10 KB: prose, a JSON tool result and a config snippet, repeated
/// with a card number, an email, a phone number and a key in between.
fn corpus() -> String {
    let prose = "The quarterly review covers the migration of the billing service to the new cluster. \
        Latency stayed under the agreed objective for 99.9% of requests, and the error budget for \
        the month was not exhausted. Two incidents were opened: one for a misconfigured retry \
        policy and one for a certificate that expired on a staging host. Both have post-mortems. ";
    let tool = r#"{"results": [{"title": "Release notes 4.2.1", "url": "https://example.com/notes", "snippet": "Fixes a race in the scheduler; upgrade recommended."}, {"title": "Order 88213-AX", "status": "shipped", "eta": "2026-12-09"}]}"#;
    let code =
        "fn main() {\n    let retries = 3;\n    let timeout_ms = 2500;\n    println!(\"{retries} {timeout_ms}\");\n}\n";
    let key = format!("AKIA{}", "Q7Z3X9K2M4N8P6R5");
    let mut out = String::new();
    let mut i = 0;
    while out.len() < 10 * 1024 {
        out.push_str(prose);
        out.push_str(tool);
        out.push('\n');
        out.push_str(code);
        match i % 4 {
            0 => out.push_str("Please charge 4111 1111 1111 1111 for the renewal. "),
            1 => out.push_str("Contact jane.doe@example.com or +44 20 7946 0958. "),
            2 => out.push_str(&format!("aws_access_key_id = {key}\n")),
            _ => out.push_str("Nothing sensitive in this paragraph at all. "),
        }
        i += 1;
    }
    out
}

#[divan::bench]
fn pii(b: divan::Bencher) {
    let text = corpus();
    let d = Pii::new(&[]).expect("all entities");
    b.counter(BytesCount::of_str(&text)).bench(|| d.find(divan::black_box(&text)));
}

#[divan::bench]
fn secrets(b: divan::Bencher) {
    let text = corpus();
    let d = Secrets::new();
    b.counter(BytesCount::of_str(&text)).bench(|| d.find(divan::black_box(&text)));
}

#[divan::bench]
fn prompt_injection(b: divan::Bencher) {
    let text = corpus();
    let d = Injection::new();
    b.counter(BytesCount::of_str(&text)).bench(|| d.scan(divan::black_box(&text), Source::Tool));
}

#[divan::bench]
fn all_three(b: divan::Bencher) {
    let text = corpus();
    let (p, s, i) = (Pii::new(&[]).expect("all entities"), Secrets::new(), Injection::new());
    b.counter(BytesCount::of_str(&text)).bench(|| {
        let t = divan::black_box(&text);
        (p.find(t).len(), s.find(t).len(), i.scan(t, Source::Tool).flagged)
    });
}

#[divan::bench]
fn redact_placeholders(b: divan::Bencher) {
    let text = corpus();
    let d = Pii::new(&[]).expect("all entities");
    let found = detectors::merge_overlapping(d.find(&text));
    b.counter(BytesCount::of_str(&text)).bench(|| {
        let mut p = detectors::redact::Placeholders::default();
        p.redact(divan::black_box(&text), &found).len()
    });
}
