// The request explorer: search the log, then one request in full —
// attempts and why each fell back, latency phases, guardrails, tokens and
// cost, config version, bodies when they were logged.

import { admin, query } from '../api.js';
import { h, put, fmt, table, statusPill, errorBox, field, load } from '../dom.js';

export const title = 'Requests';

/** datetime-local value → Unix ms, or undefined. */
const ms = (v) => (v ? String(new Date(v).getTime()) : undefined);

export async function render(root, [id]) {
  const f = {
    since: h('select', {}, ['15m', '1h', '6h', '24h', '168h'].map((w) => h('option', { value: w, selected: w === '24h' }, w))),
    from: h('input', { type: 'datetime-local' }),
    to: h('input', { type: 'datetime-local' }),
    model: h('input', { placeholder: 'mock/echo' }),
    status: h('input', { type: 'number', min: 100, max: 599, placeholder: 'any' }),
    subject: h('input', { placeholder: 'key:checkout-svc' }),
    metadata: h('input', { placeholder: 'team:payments,project:x' }),
    kind: h('select', {}, h('option', { value: '' }, 'any'), ['model', 'mcp', 'a2a'].map((k) => h('option', { value: k }, k))),
    limit: h('input', { type: 'number', min: 1, max: 10000, value: 200 }),
  };
  const results = h('div');
  const detail = h('div', { id: 'request-detail' });
  put(root,
    h('h1', {}, 'Requests'),
    h('form', { class: 'filters card', role: 'search', onsubmit: (e) => { e.preventDefault(); search(); } },
      field('rq-since', 'Since', f.since), field('rq-from', 'From', f.from), field('rq-to', 'To', f.to),
      field('rq-model', 'Model', f.model), field('rq-status', 'Status', f.status),
      field('rq-subject', 'Subject', f.subject), field('rq-metadata', 'Metadata', f.metadata),
      field('rq-kind', 'Kind', f.kind), field('rq-limit', 'Limit', f.limit),
      h('button', { type: 'submit' }, 'Search')),
    detail,
    h('div', { class: 'card' }, results));

  async function search() {
    await load(results, 'the request log', async () => {
      const q = query({
        since: f.since.value, from: ms(f.from.value), to: ms(f.to.value), model: f.model.value.trim(),
        status: f.status.value, subject: f.subject.value.trim(), metadata: f.metadata.value.trim(),
        kind: f.kind.value, limit: f.limit.value,
      });
      const { data } = await admin(`/admin/logs${q}`);
      return h('div', {},
        h('p', { class: 'muted' }, `${data.length} request${data.length === 1 ? '' : 's'}, newest first. Select one to see it in full.`),
        table([
          { label: 'Time', value: (e) => fmt.time(e.time) },
          { label: 'Id', value: (e) => h('a', { href: `#/requests/${encodeURIComponent(e.id)}`, class: 'mono' }, e.id) },
          { label: 'Kind', value: (e) => e.kind },
          { label: 'Subject', value: (e) => e.subject },
          { label: 'Model', value: (e) => e.resolved_model || e.requested_model || '–' },
          { label: 'Status', value: (e) => statusPill(e.status) },
          { label: 'Tokens', num: true, value: (e) => fmt.int(e.prompt_tokens + e.completion_tokens) },
          { label: 'Cost', num: true, value: (e) => fmt.nanos(e.cost_nanos) },
          { label: 'Total', num: true, value: (e) => fmt.ms(e.total_ms) },
        ], data, { caption: 'Requests found', onRow: (e) => { location.hash = `#/requests/${encodeURIComponent(e.id)}`; },
          empty: 'No request matches.' }));
    });
  }

  if (id) await show(detail, id);
  await search();
}

/** Another request opened (or the open one closed) without leaving the page. */
export async function update(root, [id]) {
  const detail = root.querySelector('#request-detail');
  if (id) await show(detail, id);
  else put(detail);
}

async function show(el, id) {
  await load(el, 'this request', async () => entry(await admin(`/admin/logs/${encodeURIComponent(id)}`)));
  el.scrollIntoView({ block: 'start' });
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function entry(e) {
  const overhead = Math.max(0, e.total_ms - e.upstream_ms - (e.backoff_ms || 0));
  const phases = [['upstream', e.upstream_ms], ['backoff', e.backoff_ms || 0], ['gateway', overhead]];
  const total = phases.reduce((s, [, v]) => s + v, 0) || 1;
  const section = (name, node) => [h('h2', {}, name), node];
  const json = (v) => h('pre', {}, JSON.stringify(v, null, 2));
  return h('article', { class: 'card', 'aria-labelledby': 'rq-title' },
    h('div', { class: 'row' }, h('h1', { id: 'rq-title', class: 'mono' }, e.id), statusPill(e.status),
      h('a', { href: '#/requests' }, 'Close', h('span', { class: 'sr-only' }, ' this request'))),
    kv([
      ['Time', fmt.time(e.time)], ['Kind', e.kind], ['Route', e.route], ['Subject', e.subject],
      ['Requested model', e.requested_model], ['Resolved model', e.resolved_model], ['Provider', e.provider],
      ['Stream', e.stream ? 'yes' : 'no'], ['Error', e.error], ['Config version', String(e.config_version)],
      ['Tokens', `${fmt.int(e.prompt_tokens)} in · ${fmt.int(e.completion_tokens)} out${e.usage_estimated ? ' (estimated)' : ''}`],
      ['Cost', fmt.nanos(e.cost_nanos)],
      ['Metadata', Object.entries(e.metadata || {}).map(([k, v]) => `${k}=${v}`).join(', ')],
      ['Trace', e.trace_id], ['Parent request', e.parent_id ? h('a', { href: `#/requests/${e.parent_id}` }, e.parent_id) : null],
    ]),
    section('Latency', h('div', {},
      h('p', {}, `Total ${fmt.ms(e.total_ms)}: `, phases.map(([k, v]) => `${k} ${fmt.ms(v)}`).join(', ')),
      h('div', { class: 'bar-track phases', role: 'img', 'aria-label': 'Share of each latency phase' },
        ...phases.map(([, v], i) => {
          const d = h('div', { class: 'bar-fill' });
          d.style.width = `${(100 * v) / total}%`;
          d.style.background = ['#1f77b4', '#ff7f0e', '#2ca02c'][i];
          return d;
        })))),
    section('Attempts', table([
      { label: '#', value: (a) => String(e.attempts.indexOf(a) + 1) },
      { label: 'Target', value: (a) => a.target },
      { label: 'Outcome', value: (a) => h('span', { class: a.outcome === 'ok' ? 'ok' : 'warn' }, a.outcome) },
      { label: 'Status', value: (a) => (a.status ? String(a.status) : '–') },
      { label: 'Started', num: true, value: (a) => fmt.ms(a.start_ms) },
      { label: 'Latency', num: true, value: (a) => fmt.ms(a.latency_ms) },
      { label: 'Why', value: (a) => a.reason || '' },
    ], e.attempts || [], { caption: 'Upstream attempts', empty: 'No upstream attempt (answered or refused by the gateway).' })),
    section('Guardrails', table([
      { label: 'Guardrail', value: (g) => g.name }, { label: 'Hook', value: (g) => g.hook },
      { label: 'Outcome', value: (g) => h('span', { class: g.outcome === 'passed' || g.outcome === 'pass' ? 'ok' : 'warn' }, g.outcome) },
      { label: 'Time', num: true, value: (g) => `${g.duration_us} µs` },
      { label: 'Reason', value: (g) => g.reason || '' },
    ], e.guardrails || [], { caption: 'Guardrail outcomes', empty: 'No guardrail ran.' })),
    e.cache ? section('Cache', json(e.cache)) : null,
    e.prompt ? section('Prompt template', json(e.prompt)) : null,
    e.mcp ? section('Tool call', json(e.mcp)) : null,
    e.a2a ? section('Agent call', json(e.a2a)) : null,
    e.agent ? section('Agent loop', json(e.agent)) : null,
    section('Request body', e.request_body ? h('pre', {}, e.request_body) : h('p', { class: 'muted' }, 'Not logged (see logging.bodies in the config).')),
    section('Response body', e.response_body ? h('pre', {}, e.response_body) : h('p', { class: 'muted' }, 'Not logged.')));
}
