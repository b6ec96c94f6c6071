// The official TypeScript MCP SDK client, used exactly as an application
// would, against a tollgate endpoint. Prints one JSON object describing
// what it saw; tests/sdk/test_mcp_js_sdk.py asserts on it.
//
//   node mcp_client.mjs <endpoint URL> <key> <transport: http|sse> <tool> <arguments JSON>
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";

const [url, key, transportName, tool, args] = process.argv.slice(2);
const headers = { Authorization: `Bearer ${key}` };
const transport =
  transportName === "sse"
    ? new SSEClientTransport(new URL(url), {
        requestInit: { headers },
        // The SSE GET goes through EventSource, which takes headers from fetch.
        eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers ?? {}), ...headers } }) },
      })
    : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });

const client = new Client({ name: "tollgate-js-test", version: "1.0.0" });
const out = {};
try {
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.protocolVersion = transport.protocolVersion ?? null;
  out.sessionId = transport.sessionId ?? null;
  const progress = [];
  out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
  try {
    const result = await client.callTool(
      { name: tool, arguments: JSON.parse(args) },
      undefined,
      { onprogress: (p) => progress.push([p.progress, p.total]) },
    );
    out.result = result;
  } catch (e) {
    out.error = { code: e.code ?? null, message: String(e.message ?? e) };
  }
  out.progress = progress;
  await client.close();
} catch (e) {
  out.fatal = String(e?.stack ?? e);
}
console.log(JSON.stringify(out));
