// The Vercel AI SDK with `@ai-sdk/openai`'s default model — the Responses
// API — pointed at tollgate, used exactly as an application would: a
// tool-calling loop with `generateText` and a streamed answer with
// `streamText`. Prints one JSON object describing what it saw;
// tests/sdk/test_responses_sdk.py asserts on it.
//
//   node vercel_ai.mjs <base URL ending in /v1> <key> <model>
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey });
const out = { toolInputs: [] };
try {
  const lookup = tool({
    description: "find a thing",
    inputSchema: jsonSchema({ type: "object", properties: { q: { type: "string" } }, required: ["q"] }),
    execute: async ({ q }) => {
      out.toolInputs.push(q);
      return "42 apples";
    },
  });
  const r = await generateText({
    model: openai(model),
    prompt: "how many apples?",
    tools: { lookup },
    stopWhen: stepCountIs(3),
  });
  out.text = r.text;
  out.steps = r.steps.length;
  out.finishReason = r.finishReason;

  const s = streamText({ model: openai(model), system: "be brief", prompt: "stream me" });
  let streamed = "";
  for await (const t of s.textStream) streamed += t;
  out.streamed = streamed;
  out.usage = await s.usage;
} catch (e) {
  out.error = String(e?.stack ?? e);
  out.cause = e?.responseBody ?? e?.lastError?.responseBody ?? null;
}
console.log(JSON.stringify(out));
