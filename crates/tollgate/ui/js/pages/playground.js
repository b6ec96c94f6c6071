// Chat with any model the signed-in credential may use, through the data
// plane (/v1/chat/completions, streamed), showing the gateway's headers.

import { data, session, ApiError, parseBody } from '../api.js';
import { h, put, table, errorBox, field } from '../dom.js';

export const title = 'Playground';

/** Splits an SSE text stream into the `data:` payloads of whole events. */
export function sseEvents(buffer) {
  const events = [];
  let rest = buffer.replace(/\r\n/g, '\n');
  let i;
  while ((i = rest.indexOf('\n\n')) >= 0) {
    const block = rest.slice(0, i);
    rest = rest.slice(i + 2);
    const payload = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    if (payload) events.push(payload);
  }
  return { events, rest };
}

export async function render(root) {
  const model = h('select', { required: true });
  const system = h('textarea', { rows: 2, placeholder: 'Optional system message' });
  const input = h('textarea', { rows: 3, required: true, placeholder: 'Say something…' });
  const stream = h('input', { type: 'checkbox', checked: true });
  const send = h('button', { type: 'submit' }, 'Send');
  const stop = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Stop');
  const chat = h('div', { class: 'chat', 'aria-live': 'polite', 'aria-label': 'Conversation' });
  const headers = h('div');
  const status = h('div');
  const history = [];
  let controller = null;

  put(root,
    h('h1', {}, 'Playground'),
    h('p', { class: 'muted' }, `Requests go to the data plane at ${session.settings.data_url} with your credential, like any client's, and are logged.`),
    h('div', { class: 'grid2' },
      h('section', { class: 'card' },
        h('form', { class: 'stack', onsubmit: (e) => { e.preventDefault(); ask(); } },
          field('pg-model', 'Model', model), field('pg-system', 'System', system),
          chat,
          field('pg-input', 'Message', input),
          h('div', { class: 'row' }, h('label', { for: 'pg-stream' }, stream, ' Stream'), send, stop,
            h('button', { type: 'button', class: 'secondary', onclick: () => { history.length = 0; put(chat); put(headers); } }, 'Clear'))),
        status),
      h('section', { class: 'card' }, h('h2', {}, 'Response headers'), headers)));
  stream.id = 'pg-stream';
  stop.addEventListener('click', () => controller && controller.abort());

  try {
    const resp = await data('/v1/models');
    const body = await parseBody(resp);
    if (!resp.ok) throw new ApiError(resp.status, body);
    if (!body.data.length) put(status, h('p', { class: 'notice' }, 'This credential may not use any model.'));
    put(model, body.data.map((m) => h('option', { value: m.id }, m.id)));
  } catch (e) {
    put(status, errorBox(e, 'the model list'));
  }

  function bubble(role, text) {
    const t = h('span', { class: 'text' }, text);
    const el = h('div', { class: `msg ${role}` }, h('span', { class: 'role' }, role), t);
    chat.append(el);
    chat.scrollTop = chat.scrollHeight;
    return t;
  }

  function showHeaders(resp) {
    const rows = [...resp.headers.entries()].filter(([k]) => k.startsWith('x-tollgate-') || k === 'server-timing' || k === 'retry-after');
    put(headers, table([{ label: 'Header', value: ([k]) => h('span', { class: 'mono' }, k) },
      { label: 'Value', value: ([, v]) => h('span', { class: 'mono' }, v) }], rows, { caption: 'Gateway response headers' }));
  }

  async function ask() {
    const text = input.value.trim();
    if (!text || !model.value) return;
    put(status);
    input.value = '';
    history.push({ role: 'user', content: text });
    bubble('user', text);
    const messages = system.value.trim() ? [{ role: 'system', content: system.value.trim() }, ...history] : [...history];
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    try {
      const resp = await data('/v1/chat/completions', {
        method: 'POST', body: { model: model.value, messages, stream: stream.checked }, signal: controller.signal,
      });
      showHeaders(resp);
      if (!resp.ok) throw new ApiError(resp.status, await parseBody(resp));
      const out = bubble('assistant', '');
      let answer = '';
      if (stream.checked) {
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const { events, rest } = sseEvents(buf + value);
          buf = rest;
          for (const ev of events) {
            if (ev === '[DONE]') continue;
            const chunk = JSON.parse(ev);
            if (chunk.error) throw new ApiError(500, chunk);
            answer += chunk.choices?.[0]?.delta?.content || '';
            out.textContent = answer;
          }
        }
      } else {
        const body = await resp.json();
        answer = body.choices?.[0]?.message?.content || '';
        out.textContent = answer;
      }
      history.push({ role: 'assistant', content: answer });
    } catch (e) {
      if (e.name !== 'AbortError') put(status, errorBox(e, 'this model'));
      history.pop();
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  }
}
