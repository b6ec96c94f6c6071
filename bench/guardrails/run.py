#!/usr/bin/env python3
"""Accuracy of tollgate's guardrail detectors against reference tools.

    python3 bench/guardrails/run.py [--corpus DIR] [--no-reference] [--details]

Runs `tollgate guardrails scan` (binary from $TOLLGATE_BIN, default
target/release/tollgate) on the corpora written by gen_corpus.py, runs the
reference detectors on the same texts, and prints Markdown tables:

- PII: span-level precision / recall / F1 per type, tollgate vs Presidio's
  pattern recognizers (no NLP model). A predicted span is a true positive if
  it overlaps a gold span of the same type; a gold span is found if any
  predicted span of its type overlaps it. Texts: pii.jsonl + negatives.jsonl.
- Secrets: line-level, type-agnostic, tollgate vs detect-secrets (which
  reports lines, not spans). A line is positive if it holds (part of) a gold
  secret; a tool flags a line if it reports anything on it. Recall is also
  broken down by the gold secret's type. Texts: secrets.jsonl +
  negatives.jsonl + pii.jsonl (PII texts hold no secrets: anything flagged
  there is a false positive).
- Prompt injection (tollgate only): recall on attacks, false-positive rate on
  benign texts, overall and for benign tool outputs, by split and family.

Installs nothing: expects presidio-analyzer and detect-secrets importable
(see requirements.txt and run.sh) unless --no-reference.
"""

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

PII_TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "DATE_OF_BIRTH"]
PRESIDIO_MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
                "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS", "DATE_TIME": "DATE_OF_BIRTH"}
COMMANDS = []


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------- tollgate ---

def tollgate(binary, kind, records, extra=()):
    cmd = [binary, "guardrails", "scan", "--type", kind, *extra]
    COMMANDS.append(" ".join(shlex.quote(c) for c in cmd) + " < <jsonl>")
    lines = "".join(json.dumps({"id": r["id"], "text": r["text"], "source": r.get("source", "user")},
                               ensure_ascii=False) + "\n" for r in records)
    p = subprocess.run(cmd, input=lines.encode(), capture_output=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.decode(errors='replace')}")
    out = {}
    for line in p.stdout.decode().splitlines():
        if line.strip():
            o = json.loads(line)
            out[o["id"]] = o
    missing = [r["id"] for r in records if r["id"] not in out]
    if missing:
        sys.exit(f"tollgate gave no answer for {len(missing)} ids, e.g. {missing[:3]}")
    return out


# -------------------------------------------------------------- references ---

def presidio_scan(records, threshold):
    """Presidio's predefined pattern recognizers, called directly with no NLP
    artifacts (so no spaCy model and no context enhancement); results below
    `threshold` dropped and duplicates removed, as AnalyzerEngine does."""
    import logging

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    # The email recognizer validates domains with tldextract, which would try
    # to download the public suffix list: use the snapshot it ships.
    import tldextract
    import tldextract.tldextract as tld_module

    tld_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, DateRecognizer, EmailRecognizer,
                                                          IbanRecognizer, IpRecognizer, PhoneRecognizer,
                                                          UsSsnRecognizer)

    recognizers = [(EmailRecognizer(), "EMAIL_ADDRESS"), (PhoneRecognizer(), "PHONE_NUMBER"),
                   (CreditCardRecognizer(), "CREDIT_CARD"), (IbanRecognizer(), "IBAN_CODE"),
                   (UsSsnRecognizer(), "US_SSN"), (IpRecognizer(), "IP_ADDRESS"), (DateRecognizer(), "DATE_TIME")]
    out = {}
    for r in records:
        results = []
        for rec, entity in recognizers:
            results.extend(rec.analyze(r["text"], entities=[entity], nlp_artifacts=None) or [])
        results = [x for x in results if x.score >= threshold]
        results = EntityRecognizer.remove_duplicates(results)
        out[r["id"]] = [{"type": PRESIDIO_MAP[x.entity_type], "start": x.start, "end": x.end, "score": x.score}
                        for x in results if x.entity_type in PRESIDIO_MAP]
    return out


def detect_secrets_lines(records):
    """detect-secrets' default plugins and filters as `detect-secrets scan`
    runs them on a repository: each text is written to a temporary
    `sample.txt` and scanned with `scan_file`. (Its ad-hoc `scan_line`, as in
    `scan --string`, searches eagerly and reports nearly every token.)
    Returns, per record, the 0-based indexes of flagged lines."""
    import tempfile

    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    out = {}
    with default_settings(), tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sample.txt")
        for r in records:
            with open(path, "w", encoding="utf-8") as f:
                f.write(r["text"])
            out[r["id"]] = {s.line_number - 1 for s in scan_file(path)}
    return out


# ----------------------------------------------------------------- scoring ---

def overlaps(a, b):
    return a["start"] < b["end"] and b["start"] < a["end"]


def prf(tp_pred, n_pred, found, n_gold):
    p = tp_pred / n_pred if n_pred else float("nan")
    r = found / n_gold if n_gold else float("nan")
    f = 2 * p * r / (p + r) if n_pred and n_gold and (p + r) else float("nan")
    return p, r, f


def fmt(x):
    return "—" if x != x else f"{x:.3f}"


def score_spans(records, predicted, types):
    """Per type: (#pred, #pred overlapping same-type gold, #gold, #gold found)."""
    stats = {t: [0, 0, 0, 0] for t in types}
    for r in records:
        gold = r["spans"]
        pred = [p for p in predicted[r["id"]] if p["type"] in stats]
        for p in pred:
            s = stats[p["type"]]
            s[0] += 1
            if any(g["type"] == p["type"] and overlaps(g, p) for g in gold):
                s[1] += 1
        for g in gold:
            if g["type"] not in stats:
                continue
            s = stats[g["type"]]
            s[2] += 1
            if any(p["type"] == g["type"] and overlaps(g, p) for p in pred):
                s[3] += 1
    return stats


def recall_by(records, predicted, key):
    """Recall of gold spans grouped by a record label (e.g. format)."""
    groups = collections.defaultdict(lambda: [0, 0])
    for r in records:
        pred = predicted[r["id"]]
        for g in r["spans"]:
            k = (g["type"], r.get(key))
            groups[k][0] += 1
            if any(p["type"] == g["type"] and overlaps(g, p) for p in pred):
                groups[k][1] += 1
    return groups


def split_lines(text):
    """(start, end, line) in characters, newline excluded."""
    out, start = [], 0
    for line in text.split("\n"):
        out.append((start, start + len(line), line))
        start += len(line) + 1
    return out


def lines_hit(text, spans):
    hit = set()
    for i, (s, e, _) in enumerate(split_lines(text)):
        if any(sp["start"] < max(e, s + 1) and s < sp["end"] for sp in spans):
            hit.add(i)
    return hit


# ------------------------------------------------------------------ report ---

def pii_report(args, pii, neg):
    records = pii + neg
    tg = {k: v["findings"] for k, v in tollgate(args.bin, "pii", records).items()}
    ref = presidio_scan(records, args.presidio_threshold) if args.reference else None
    print("## PII (span level: same type and overlapping)\n")
    print(f"Texts: {len(pii)} with PII, {len(neg)} hard negatives (no gold spans).\n")
    t_stats = score_spans(records, tg, PII_TYPES)
    p_stats = score_spans(records, ref, PII_TYPES) if ref else None
    print("| type | gold | tollgate P | tollgate R | tollgate F1 | Presidio P | Presidio R | Presidio F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    tot_t, tot_p = [0, 0, 0, 0], [0, 0, 0, 0]
    for t in PII_TYPES:
        s = t_stats[t]
        tot_t = [a + b for a, b in zip(tot_t, s)]
        tp, tr, tf = prf(s[1], s[0], s[3], s[2])
        row = f"| {t} | {s[2]} | {fmt(tp)} | {fmt(tr)} | {fmt(tf)} |"
        if p_stats:
            q = p_stats[t]
            tot_p = [a + b for a, b in zip(tot_p, q)]
            pp, pr, pf = prf(q[1], q[0], q[3], q[2])
            row += f" {fmt(pp)} | {fmt(pr)} | {fmt(pf)} |"
        else:
            row += " — | — | — |"
        print(row)
    tp, tr, tf = prf(tot_t[1], tot_t[0], tot_t[3], tot_t[2])
    row = f"| **all** | {tot_t[2]} | {fmt(tp)} | {fmt(tr)} | {fmt(tf)} |"
    if p_stats:
        pp, pr, pf = prf(tot_p[1], tot_p[0], tot_p[3], tot_p[2])
        row += f" {fmt(pp)} | {fmt(pr)} | {fmt(pf)} |"
    else:
        row += " — | — | — |"
    print(row)
    print("\nFalse positives on the hard negatives, by kind (spans predicted):\n")
    print("| negative kind | texts | tollgate | Presidio |")
    print("|---|---:|---:|---:|")
    kinds = collections.Counter(r["format"] for r in neg)
    for k in sorted(kinds):
        ids = [r["id"] for r in neg if r["format"] == k]
        n_t = sum(len([p for p in tg[i] if p["type"] in PII_TYPES]) for i in ids)
        n_p = sum(len(ref[i]) for i in ids) if ref else "—"
        print(f"| {k} | {kinds[k]} | {n_t} | {n_p} |")
    print("\nRecall by format:\n")
    print("| type | format | gold | tollgate R | Presidio R |")
    print("|---|---|---:|---:|---:|")
    g_t = recall_by(pii, tg, "format")
    g_p = recall_by(pii, ref, "format") if ref else {}
    for k in sorted(g_t):
        n, f = g_t[k]
        pr = fmt(g_p[k][1] / g_p[k][0]) if k in g_p else "—"
        print(f"| {k[0]} | {k[1]} | {n} | {fmt(f / n)} | {pr} |")
    if args.details:
        print("\nMisses and false positives (tollgate):\n")
        for r in records:
            pred = [p for p in tg[r["id"]] if p["type"] in PII_TYPES]
            for g in r["spans"]:
                if not any(p["type"] == g["type"] and overlaps(g, p) for p in pred):
                    print(f"- miss {r['id']} {g['type']}: {r['text'][g['start']:g['end']]!r}")
            for p in pred:
                if not any(g["type"] == p["type"] and overlaps(g, p) for g in r["spans"]):
                    print(f"- fp {r['id']} {p['type']}: {r['text'][p['start']:p['end']]!r}")
    print()


def secrets_report(args, sec, neg, pii):
    # PII texts count as texts without secrets: their PII spans are not gold here.
    records = sec + neg + [{**r, "spans": []} for r in pii]
    tg = {k: v["findings"] for k, v in tollgate(args.bin, "secrets", records).items()}
    ds = detect_secrets_lines(records) if args.reference else None
    print("## Secrets (line level, any type)\n")
    print(f"Texts: {len(sec)} with secrets, {len(neg)} hard negatives and {len(pii)} PII texts (no secrets).\n")
    tools = {"tollgate": lambda r: lines_hit(r["text"], tg[r["id"]])}
    if ds:
        tools["detect-secrets"] = lambda r: ds[r["id"]]
    # per tool: flagged lines, flagged lines holding a gold secret, gold secrets, gold secrets found
    counts = {name: [0, 0, 0, 0] for name in tools}
    by_type = collections.defaultdict(lambda: collections.Counter())
    fp_by_group = collections.defaultdict(collections.Counter)
    span_t = [0, 0, 0, 0]  # tollgate span level: pred, pred overlapping gold, gold, gold found
    for r in records:
        gold_lines = lines_hit(r["text"], r["spans"])
        group = "secrets" if r["id"].startswith("sec") else "negatives" if r["id"].startswith("neg") else "pii texts"
        for name, flag in tools.items():
            lines = flag(r)
            c = counts[name]
            c[0] += len(lines)
            c[1] += len(lines & gold_lines)
            fp_by_group[group][name] += len(lines - gold_lines)
            for g in r["spans"]:
                found = bool(lines_hit(r["text"], [g]) & lines)
                c[2] += 1
                c[3] += found
                by_type[g["type"]][name] += found
                by_type[g["type"]]["n"] += 1 if name == "tollgate" else 0
        for g in r["spans"]:
            span_t[2] += 1
            span_t[3] += any(overlaps(g, p) for p in tg[r["id"]])
        for p in tg[r["id"]]:
            span_t[0] += 1
            span_t[1] += any(overlaps(g, p) for g in r["spans"])
    print("Precision: flagged lines that hold (part of) a gold secret / flagged lines. Recall: gold secrets "
          "whose line (any line, for a PEM block) is flagged / gold secrets.\n")
    print("| tool | flagged lines | false-positive lines | secrets found | precision | recall | F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (n_flag, n_tp, n_gold, n_found) in counts.items():
        p, rc, f = prf(n_tp, n_flag, n_found, n_gold)
        print(f"| {name} | {n_flag} | {n_flag - n_tp} | {n_found}/{n_gold} | {fmt(p)} | {fmt(rc)} | {fmt(f)} |")
    if not ds:
        print("| detect-secrets | — | — | — | — | — | — |")
    p, rc, f = prf(span_t[1], span_t[0], span_t[3], span_t[2])
    print(f"\ntollgate at span level (a finding overlapping a gold secret, any type): precision {fmt(p)}, "
          f"recall {fmt(rc)}, F1 {fmt(f)}.\n")
    print("Recall by gold secret type (its line flagged):\n")
    print("| gold type | n | tollgate | detect-secrets |")
    print("|---|---:|---:|---:|")
    for t in sorted(by_type):
        c = by_type[t]
        n = c["n"]
        print(f"| {t} | {n} | {fmt(c['tollgate'] / n)} | {fmt(c['detect-secrets'] / n) if ds else '—'} |")
    print("\nFalse-positive lines by text group:\n")
    print("| group | tollgate | detect-secrets |")
    print("|---|---:|---:|")
    for g, c in sorted(fp_by_group.items()):
        print(f"| {g} | {c['tollgate']} | {c['detect-secrets'] if ds else '—'} |")
    if args.details:
        print("\nMisses and false positives (tollgate):\n")
        for r in records:
            for g in r["spans"]:
                if not any(overlaps(g, p) for p in tg[r["id"]]):
                    print(f"- miss {r['id']} {g['type']}: {r['text'][g['start']:g['end']][:60]!r}")
            for p in tg[r["id"]]:
                if not any(overlaps(g, p) for g in r["spans"]):
                    print(f"- fp {r['id']} {p['type']}: {r['text'][p['start']:p['end']][:60]!r}")
        if ds:
            print("\nFalse-positive lines (detect-secrets):\n")
            for r in records:
                gold_lines = lines_hit(r["text"], r["spans"])
                for i in sorted(ds[r["id"]] - gold_lines):
                    print(f"- fp {r['id']}: {split_lines(r['text'])[i][2][:80]!r}")
    print()


def injection_report(args, inj):
    out = tollgate(args.bin, "prompt_injection", inj)
    attacks = [r for r in inj if r["attack"]]
    benign = [r for r in inj if not r["attack"]]

    def rate(rs):
        n = len(rs)
        k = sum(out[r["id"]]["flagged"] for r in rs)
        return k, n, (k / n if n else float("nan"))

    print("## Prompt injection (tollgate; no reference)\n")
    print(f"Texts: {len(attacks)} attacks, {len(benign)} benign. `dev` templates were used while tuning the "
          "detector; `heldout` ones were not.\n")
    print("| set | n | flagged | rate |")
    print("|---|---:|---:|---:|")
    rows = [
        ("attacks: recall", attacks),
        ("attacks, dev", [r for r in attacks if r["split"] == "dev"]),
        ("attacks, heldout", [r for r in attacks if r["split"] == "heldout"]),
        ("attacks in user turns", [r for r in attacks if r["source"] == "user"]),
        ("attacks in tool outputs", [r for r in attacks if r["source"] == "tool"]),
        ("benign: false-positive rate", benign),
        ("benign user turns", [r for r in benign if r["source"] == "user"]),
        ("benign tool outputs", [r for r in benign if r["source"] == "tool"]),
    ]
    for name, rs in rows:
        k, n, x = rate(rs)
        print(f"| {name} | {n} | {k} | {fmt(x)} |")
    print("\nRecall by attack family and split:\n")
    print("| family | source | dev | heldout |")
    print("|---|---|---:|---:|")
    fams = sorted({(r["family"], r["source"]) for r in attacks})
    for fam, src in fams:
        cells = []
        for split in ("dev", "heldout"):
            rs = [r for r in attacks if r["family"] == fam and r["source"] == src and r["split"] == split]
            k, n, x = rate(rs)
            cells.append(f"{k}/{n}" if n else "—")
        print(f"| {fam} | {src} | {cells[0]} | {cells[1]} |")
    print("\nFalse positives by benign kind:\n")
    print("| kind | n | flagged |")
    print("|---|---:|---:|")
    for kind in sorted({r["family"] for r in benign}):
        rs = [r for r in benign if r["family"] == kind]
        k, n, _ = rate(rs)
        print(f"| {kind} | {n} | {k} |")
    sig = collections.Counter(s for r in attacks if out[r["id"]]["flagged"] for s in out[r["id"]]["signals"])
    print("\nSignals on flagged attacks: " + ", ".join(f"{s} {n}" for s, n in sig.most_common()) + "\n")
    if args.details:
        print("Missed attacks:\n")
        for r in attacks:
            o = out[r["id"]]
            if not o["flagged"]:
                print(f"- {r['id']} [{r['family']}/{r['source']}/{r['split']}] score {o['score']:.2f} "
                      f"{o['signals']}: {r['text'][:160]!r}")
        print("\nFlagged benign:\n")
        for r in benign:
            o = out[r["id"]]
            if o["flagged"]:
                print(f"- {r['id']} [{r['family']}/{r['source']}] score {o['score']:.2f} {o['signals']}: "
                      f"{r['text'][:160]!r}")
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--bin", default=os.environ.get("TOLLGATE_BIN", os.path.join(ROOT, "target", "release",
                                                                              "tollgate")))
    ap.add_argument("--no-reference", dest="reference", action="store_false",
                    help="skip Presidio and detect-secrets")
    ap.add_argument("--presidio-threshold", type=float, default=0.0,
                    help="drop Presidio results scoring below this (default 0, AnalyzerEngine's default)")
    ap.add_argument("--only", choices=["pii", "secrets", "injection"], action="append",
                    help="run only these sections (repeatable)")
    ap.add_argument("--details", action="store_true", help="list every miss and false positive")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"no tollgate binary at {args.bin}: build it with "
                 f"`cargo build --release -p tollgate` or set TOLLGATE_BIN")
    c = lambda name: load(os.path.join(args.corpus, f"{name}.jsonl"))  # noqa: E731
    pii, sec, neg, inj = c("pii"), c("secrets"), c("negatives"), c("injection")
    sections = set(args.only or ["pii", "secrets", "injection"])
    print("# tollgate guardrails accuracy\n")
    if args.reference:
        from importlib.metadata import version
        print(f"References: presidio-analyzer {version('presidio-analyzer')} (pattern recognizers only, "
              f"score threshold {args.presidio_threshold}), detect-secrets {version('detect-secrets')} "
              f"(default plugins and filters, `scan_file` per text).\n")
    if "pii" in sections:
        pii_report(args, pii, neg)
    if "secrets" in sections:
        secrets_report(args, sec, neg, pii)
    if "injection" in sections:
        injection_report(args, inj)
    print("## Commands\n")
    print(f"    python3 {os.path.relpath(os.path.join(HERE, 'gen_corpus.py'), ROOT)} --out "
          f"{os.path.relpath(args.corpus, ROOT)}")
    argv = [os.path.relpath(a, ROOT) if os.path.isabs(a) and a.startswith(ROOT) else a for a in sys.argv]
    print("    " + " ".join(shlex.quote(a) for a in ["python3"] + argv))
    for cmd in dict.fromkeys(COMMANDS):
        print(f"    {cmd}")


if __name__ == "__main__":
    main()
