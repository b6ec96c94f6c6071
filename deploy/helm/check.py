#!/usr/bin/env python3
"""Renders the tollgate Helm chart and validates every manifest.

helm itself is not in the package registries this project builds from, so
the chart is written in the part of Helm's template language this script
renders (values, include/define, if/with/range, and the functions the
templates call); anything else is an error, never silently skipped. Each
rendered manifest is then validated against the Kubernetes OpenAPI schemas
shipped in the `kubernetes-validate` package from PyPI (strict: unknown
fields are errors). The ServiceMonitor (a prometheus-operator CRD, no
schema there) is checked for the fields the operator needs.

    python3 deploy/helm/check.py [--emit-config DIR]

--emit-config writes the gateway config each values variant puts in its
ConfigMap, for the Rust test (tests/it/deploy.rs) to load with tollgate's
own config loader. Exit status 0 when everything validates.
"""

import copy
import hashlib
import json
import os
import re
import sys

import kubernetes_validate
import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tollgate")
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


class TemplateError(Exception):
    pass


# === parsing ===

TAG = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def tokenize(src):
    out, pos, trim_next = [], 0, False
    for m in TAG.finditer(src):
        text = src[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = src[pos:]
    out.append(("text", text.lstrip() if trim_next else text))
    return out


def parse(tokens, i=0, stop=("end",)):
    """Returns (nodes, index of the stopping token, its keyword)."""
    nodes = []
    while i < len(tokens):
        kind, val = tokens[i]
        if kind == "text":
            nodes.append(("text", val))
            i += 1
            continue
        word = val.split(None, 1)[0] if val else ""
        rest = val[len(word):].strip()
        if word in stop:
            return nodes, i, word
        if word in ("if", "with"):
            body, i, kw = parse(tokens, i + 1, ("else", "end"))
            other = []
            if kw == "else":
                other, i, _ = parse(tokens, i + 1, ("end",))
            nodes.append((word, rest, body, other))
        elif word == "range":
            m = re.match(r"^(\$\w+)\s*,\s*(\$\w+)\s*:=\s*(.*)$", rest)
            if not m:
                raise TemplateError(f"range supports `$k, $v := …` only: {val}")
            body, i, _ = parse(tokens, i + 1, ("end",))
            nodes.append(("range", (m.group(1), m.group(2), m.group(3)), body))
        elif word == "define":
            body, i, _ = parse(tokens, i + 1, ("end",))
            nodes.append(("define", json.loads(rest), body))
        elif val.startswith("/*"):
            pass
        else:
            nodes.append(("action", val))
        i += 1
    if stop != ("end",) or i < len(tokens):
        pass
    return nodes, i, None


# === evaluation ===


def split_top(s, sep):
    parts, depth, quote, cur = [], 0, False, ""
    for c in s:
        if c == '"':
            quote = not quote
        elif not quote and c == "(":
            depth += 1
        elif not quote and c == ")":
            depth -= 1
        if c == sep and not quote and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return [p.strip() for p in parts]


def words(s):
    out, depth, quote, cur = [], 0, False, ""
    for c in s:
        if c == '"':
            quote = not quote
        if not quote and c == "(":
            depth += 1
        if not quote and c == ")":
            depth -= 1
        if c.isspace() and not quote and depth == 0:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += c
    if cur:
        out.append(cur)
    return out


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "" or v == [] or v == {})


def to_text(v):
    if v is None:
        raise TemplateError("a value the template names is missing")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        raise TemplateError(f"a map or list printed without toYaml: {v!r}")
    return str(v)


def to_yaml(v):
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def indent(n, s):
    return "\n".join((" " * n + line) if line else line for line in str(s).split("\n"))


class Renderer:
    def __init__(self, files, root):
        self.defines = {}
        self.files = files
        self.root = root
        for name, src in files.items():
            nodes, _, _ = parse(tokenize(src))
            self.collect(nodes)

    def collect(self, nodes):
        for n in nodes:
            if n[0] == "define":
                self.defines[n[1]] = n[2]

    def funcs(self):
        return {
            "include": lambda name, dot: self.include(name, dot),
            "toYaml": to_yaml,
            "nindent": lambda n, s: "\n" + indent(n, s),
            "indent": indent,
            "quote": lambda s: json.dumps(to_text(s)),
            "default": lambda d, v=None: v if truthy(v) else d,
            "trunc": lambda n, s: str(s)[:n],
            "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
            "not": lambda v: not truthy(v),
            "sha256sum": lambda s: hashlib.sha256(str(s).encode()).hexdigest(),
            "print": lambda *a: "".join(to_text(x) for x in a),
        }

    def include(self, name, dot):
        if name in self.defines:
            return self.render_nodes(self.defines[name], dot, {"$": self.root})
        if name in self.files:
            nodes, _, _ = parse(tokenize(self.files[name]))
            return self.render_nodes(nodes, dot, {"$": self.root})
        raise TemplateError(f"include of unknown template `{name}`")

    def value(self, tok, dot, vars):
        if tok.startswith("(") and tok.endswith(")"):
            return self.pipeline(tok[1:-1], dot, vars)
        if tok.startswith('"'):
            return json.loads(tok)
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if re.fullmatch(r"-?\d+\.\d+", tok):
            return float(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if tok == ".":
            return dot
        if tok.startswith("$"):
            name, _, path = tok.partition(".")
            if name not in vars:
                raise TemplateError(f"unknown variable {name}")
            base = vars[name]
        elif tok.startswith("."):
            base, path = dot, tok[1:]
        else:
            raise TemplateError(f"unsupported token `{tok}`")
        for part in [p for p in path.split(".") if p]:
            base = base.get(part) if isinstance(base, dict) else None
        return base

    def command(self, cmd, dot, vars, piped, has_piped):
        ws = words(cmd)
        fn = self.funcs().get(ws[0])
        if fn is None:
            if len(ws) != 1 or has_piped:
                raise TemplateError(f"unsupported command `{cmd}`")
            return self.value(ws[0], dot, vars)
        args = [self.value(w, dot, vars) for w in ws[1:]]
        if has_piped:
            args.append(piped)
        return fn(*args)

    def pipeline(self, expr, dot, vars):
        v, has = None, False
        for cmd in split_top(expr, "|"):
            v = self.command(cmd, dot, vars, v, has)
            has = True
        return v

    def render_nodes(self, nodes, dot, vars):
        out = []
        for n in nodes:
            kind = n[0]
            if kind == "text":
                out.append(n[1])
            elif kind == "action":
                out.append(to_text(self.pipeline(n[1], dot, vars)))
            elif kind == "if":
                out.append(self.render_nodes(n[2] if truthy(self.pipeline(n[1], dot, vars)) else n[3], dot, vars))
            elif kind == "with":
                v = self.pipeline(n[1], dot, vars)
                out.append(self.render_nodes(n[2], v, vars) if truthy(v) else self.render_nodes(n[3], dot, vars))
            elif kind == "range":
                kvar, vvar, expr = n[1]
                coll = self.pipeline(expr, dot, vars) or {}
                items = sorted(coll.items()) if isinstance(coll, dict) else list(enumerate(coll))
                for k, v in items:
                    out.append(self.render_nodes(n[2], v, {**vars, kvar: k, vvar: v}))
            elif kind == "define":
                pass
        return "".join(out)


def render(values):
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    files = {}
    tdir = os.path.join(CHART, "templates")
    for f in sorted(os.listdir(tdir)):
        files[f"{chart['name']}/templates/{f}"] = open(os.path.join(tdir, f)).read()
    root = {
        "Values": values,
        "Release": {"Name": "tollgate", "Namespace": "default", "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
        "Template": {"BasePath": f"{chart['name']}/templates"},
    }
    r = Renderer(files, root)
    docs = {}
    for name, src in files.items():
        if os.path.basename(name).startswith("_"):
            continue
        nodes, _, _ = parse(tokenize(src))
        text = r.render_nodes(nodes, root, {"$": root})
        if text.strip():
            try:
                docs[name] = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise TemplateError(f"{name} does not render to YAML: {e}\n{text}")
    return docs


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check_deployment(d, values):
    errors = []
    spec = d["spec"]["template"]["spec"]
    c = spec["containers"][0]
    if c["readinessProbe"]["httpGet"]["path"] != "/ready":
        errors.append("readinessProbe must be /ready")
    if c["livenessProbe"]["httpGet"]["path"] != "/health":
        errors.append("livenessProbe must be /health")
    if not spec["securityContext"].get("runAsNonRoot"):
        errors.append("pods must run as non-root")
    for e in c.get("env", []):
        if "value" in e and e["name"] != "POD_NAME":
            errors.append(f"env {e['name']} is a literal; secrets come from secretKeyRef")
    if values["autoscaling"]["enabled"] == ("replicas" in d["spec"]):
        errors.append("replicas is set by the HPA when autoscaling is on, by the Deployment otherwise")
    return errors


def check_service_monitor(d):
    ep = d.get("spec", {}).get("endpoints", [])
    ok = d.get("apiVersion") == "monitoring.coreos.com/v1" and ep and ep[0].get("path") == "/metrics"
    return [] if ok else ["ServiceMonitor needs monitoring.coreos.com/v1 and an endpoint on /metrics"]


VARIANTS = {
    "defaults": {},
    "everything-on": {
        "serviceMonitor": {"enabled": True},
        "distributed": {"natsTokenSecret": {"secret": "tollgate-secrets", "key": "nats-token"}, "natsTls": True},
    },
    "single-instance": {
        "replicaCount": 1,
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "distributed": {"enabled": False},
    },
}


def main():
    emit = None
    if len(sys.argv) == 3 and sys.argv[1] == "--emit-config":
        emit = sys.argv[2]
    base = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    failures = 0
    checked = 0
    for variant, over in VARIANTS.items():
        values = merge(base, over)
        docs = render(values)
        kinds = sorted(d["kind"] for d in docs.values())
        for name, doc in docs.items():
            errors = []
            if doc["kind"] == "ServiceMonitor":
                errors += check_service_monitor(doc)
            else:
                for v in K8S_VERSIONS:
                    try:
                        kubernetes_validate.validate(doc, v, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        errors.append(f"Kubernetes {v}: {e.message} at {'/'.join(map(str, e.path))}")
            if doc["kind"] == "Deployment":
                errors += check_deployment(doc, values)
            if doc["kind"] == "ConfigMap":
                cfg = yaml.safe_load(doc["data"]["tollgate.yaml"])
                if ("distributed" in cfg) != values["distributed"]["enabled"]:
                    errors.append("the config's `distributed` section follows distributed.enabled")
                if emit:
                    os.makedirs(emit, exist_ok=True)
                    with open(os.path.join(emit, f"{variant}.yaml"), "w") as f:
                        f.write(doc["data"]["tollgate.yaml"])
            checked += 1
            for e in errors:
                failures += 1
                print(f"{variant}: {name}: {e}")
        print(f"{variant}: rendered {', '.join(kinds)}")
    print(f"{checked - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TemplateError as e:
        print(f"template error: {e}")
        sys.exit(1)
