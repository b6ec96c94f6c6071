// Cost and tokens from the request log, grouped by any metadata key,
// model, provider, subject, status or day; the same report as CSV.

import { admin, query } from '../api.js';
import { h, put, fmt, table, field, load, download, errorBox } from '../dom.js';

export const title = 'Usage';

export async function render(root) {
  const f = {
    group: h('input', { value: 'metadata.team,model', list: 'usage-keys', size: 30 }),
    since: h('select', {}, ['1h', '24h', '168h', '720h'].map((w) => h('option', { value: w, selected: w === '168h' }, w))),
    metadata: h('input', { placeholder: 'team:payments' }),
    model: h('input', { placeholder: 'any' }),
    status: h('input', { type: 'number', placeholder: 'any', min: 100, max: 599 }),
  };
  const keys = h('datalist', { id: 'usage-keys' },
    ['model', 'requested_model', 'provider', 'subject', 'status', 'day', 'metadata.team', 'metadata.project_id', 'metadata.team,model']
      .map((k) => h('option', { value: k })));
  const out = h('div');
  const params = () => ({
    group_by: f.group.value.replace(/\s+/g, ''), since: f.since.value, metadata: f.metadata.value.trim(),
    model: f.model.value.trim(), status: f.status.value,
  });
  put(root,
    h('h1', {}, 'Usage'),
    h('form', { class: 'filters card', onsubmit: (e) => { e.preventDefault(); run(); } },
      field('usage-group', 'Group by (comma-separated: model, provider, subject, status, day, metadata.<key>)', f.group), keys,
      field('usage-since', 'Since', f.since), field('usage-metadata', 'Metadata', f.metadata),
      field('usage-model', 'Model', f.model), field('usage-status', 'Status', f.status),
      h('button', { type: 'submit' }, 'Show'),
      h('button', { type: 'button', class: 'secondary', onclick: csv }, 'Export CSV')),
    h('div', { class: 'card' }, out));

  async function run() {
    await load(out, 'usage', async () => {
      const r = await admin(`/admin/usage/report${query(params())}`);
      const total = r.rows.reduce((a, x) => ({ req: a.req + x.requests, cost: a.cost + x.cost_usd,
        tok: a.tok + x.prompt_tokens + x.completion_tokens }), { req: 0, cost: 0, tok: 0 });
      return h('div', {},
        h('p', {}, `${fmt.time(r.from)} – ${fmt.time(r.to)}: ${fmt.int(total.req)} requests, ${fmt.int(total.tok)} tokens, ${fmt.usd(total.cost)}.`),
        table([
          ...r.group_by.map((k) => ({ label: k, value: (x) => x.group[k] })),
          { label: 'Requests', num: true, value: (x) => fmt.int(x.requests) },
          { label: 'Prompt tokens', num: true, value: (x) => fmt.int(x.prompt_tokens) },
          { label: 'Completion tokens', num: true, value: (x) => fmt.int(x.completion_tokens) },
          { label: 'Cost', num: true, value: (x) => fmt.usd(x.cost_usd) },
        ], r.rows, { caption: 'Usage report', empty: 'No requests in this window.' }));
    });
  }

  async function csv() {
    try {
      const resp = await admin(`/admin/usage/report${query({ ...params(), format: 'csv' })}`, { raw: true });
      download(`tollgate-usage-${params().group_by.replace(/[^a-z0-9]+/gi, '-')}.csv`, await resp.text(), 'text/csv');
    } catch (e) {
      put(out, errorBox(e, 'usage'));
    }
  }
  await run();
}
