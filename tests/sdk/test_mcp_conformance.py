"""The official MCP conformance suite (`@modelcontextprotocol/conformance`,
server mode) against tollgate fronting `@modelcontextprotocol/server-everything`.

The suite runs twice: against the server directly, then through tollgate.
Every check the server passes on its own must pass through the gateway too
— the gateway may not lose anything the server does. (The suite targets its
own reference server, so the server fails some checks either way; those say
nothing about the gateway.)

The suite sends no credentials, so it reaches tollgate through a small
header-adding proxy (js/header_proxy.mjs) that adds a tollgate key; the
gateway itself runs exactly as in production. The suite needs Node 22,
installed as the npm package `node` by tests/sdk/run.sh.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import MASTER_KEY, _binary, _free_port, _stop, _wait_until

JS = Path(__file__).resolve().parent / "js"
NODE22 = JS / "node_modules" / ".bin" / "node"
SUITE = JS / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
EVERYTHING = JS / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"

CONFIG = """\
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin_port}"
store:
  url: "memory://"
auth:
  master_key: "${{TG_MASTER}}"
mcp_servers:
  - name: everything
    url: "http://127.0.0.1:{everything_port}/mcp"
"""


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except httpx.TransportError:
        return False


def _run_suite(url: str, out: Path) -> dict[str, bool]:
    """Runs the suite against `url`; scenario id → whether all its checks passed."""
    p = subprocess.run([str(NODE22), str(SUITE), "server", "--url", url, "-o", str(out)],
                       capture_output=True, text=True, timeout=600)
    results: dict[str, bool] = {}
    for checks in out.glob("*/checks.json"):
        for c in json.loads(checks.read_text()):
            ok = c["status"] in ("SUCCESS", "INFO")
            results[c["id"]] = results.get(c["id"], True) and ok
    assert results, f"the suite reported nothing:\n{p.stdout}\n{p.stderr}"
    return results


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory):
    for f in (NODE22, SUITE, EVERYTHING):
        assert f.exists(), f"{f} is missing: run `npm ci` in tests/sdk/js (tests/sdk/run.sh does)"
    work = tmp_path_factory.mktemp("conformance")
    port = _free_port()
    log = work / "everything.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(NODE22), str(EVERYTHING), "streamableHttp"], env={**os.environ, "PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_until(lambda: _listening(port), proc, log, "server-everything")
            yield port, work
        finally:
            _stop(proc)


def test_tollgate_passes_every_conformance_check_the_server_passes_directly(everything) -> None:
    everything_port, work = everything
    direct = _run_suite(f"http://127.0.0.1:{everything_port}/mcp", work / "direct")

    tollgate = _binary("TOLLGATE_BIN", "tollgate")
    port, admin_port, proxy_port = _free_port(), _free_port(), _free_port()
    config = work / "tollgate.yaml"
    config.write_text(CONFIG.format(port=port, admin_port=admin_port, everything_port=everything_port))
    procs = []
    try:
        log = work / "tollgate.log"
        gw = subprocess.Popen([str(tollgate), "serve", "--config", str(config)], cwd=work,
                              env={**os.environ, "TG_MASTER": MASTER_KEY},
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        procs.append(gw)
        _wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200, gw, log, "tollgate")
        plog = work / "proxy.log"
        proxy = subprocess.Popen([str(NODE22), str(JS / "header_proxy.mjs"), str(proxy_port),
                                  f"http://127.0.0.1:{port}/mcp/everything", MASTER_KEY],
                                 stdout=open(plog, "wb"), stderr=subprocess.STDOUT)
        procs.append(proxy)
        _wait_until(lambda: _listening(proxy_port), proxy, plog, "header proxy")
        through = _run_suite(f"http://127.0.0.1:{proxy_port}/mcp", work / "through")
    finally:
        for p in procs:
            _stop(p)

    passed_directly = {k for k, ok in direct.items() if ok}
    assert len(passed_directly) >= 10, f"the server itself passed only {sorted(passed_directly)}"
    lost = sorted(k for k in passed_directly if not through.get(k, False))
    assert not lost, f"checks the server passes but tollgate in front of it does not: {lost}"
