// A header-adding proxy for the MCP conformance suite: its server mode
// sends no credentials, so this forwards every request to one tollgate
// endpoint with `Authorization: Bearer <key>` added. Bodies and SSE
// streams are piped through as they come; every other header, `Host`
// and `Origin` included, is the client's own.
//
//   node header_proxy.mjs <listen port> <tollgate endpoint URL> <key>
import http from "node:http";

const [port, target, key] = process.argv.slice(2);
const t = new URL(target);

http
  .createServer((req, res) => {
    const up = http.request(
      {
        host: t.hostname,
        port: t.port,
        method: req.method,
        path: t.pathname + (req.url.includes("?") ? req.url.slice(req.url.indexOf("?")) : ""),
        headers: { ...req.headers, authorization: `Bearer ${key}` },
      },
      (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", (e) => {
      res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(up);
  })
  .listen(Number(port), "127.0.0.1", () => console.error(`proxy on ${port} -> ${target}`));
