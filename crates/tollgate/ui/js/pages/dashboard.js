// Requests, errors, cost, tokens and latency over time, from the request
// log (bucketed here), and the top models and teams from the usage report.

import { admin, query } from '../api.js';
import { h, put, fmt, errorBox, field } from '../dom.js';
import { lineChart, bars } from '../charts.js';

export const title = 'Dashboard';

const WINDOWS = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '168h': 7 * 24 * 3600e3 };
const BUCKETS = 30;

/** An axis count: whole numbers as such, half steps with one decimal. */
const count = (v) => (Number.isInteger(v) ? fmt.int(v) : v.toFixed(1));

/** The q-quantile of sorted numbers (nearest rank). */
function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/** Log entries into equal time buckets ending now. */
export function bucket(entries, span, now = Date.now()) {
  const size = span / BUCKETS;
  const start = now - span;
  const b = Array.from({ length: BUCKETS }, (_, i) => ({ t: start + i * size, n: 0, errors: 0, cost: 0, tokens: 0, lat: [] }));
  for (const e of entries) {
    const i = Math.floor((e.time - start) / size);
    if (i < 0 || i >= BUCKETS) continue;
    const x = b[i];
    x.n += 1;
    if (e.status >= 400) x.errors += 1;
    x.cost += (e.cost_nanos || 0) / 1e9;
    x.tokens += (e.prompt_tokens || 0) + (e.completion_tokens || 0);
    x.lat.push(e.total_ms);
  }
  for (const x of b) x.lat.sort((p, q) => p - q);
  return b;
}

export async function render(root) {
  const since = h('select', {}, Object.keys(WINDOWS).map((w) => h('option', { value: w, selected: w === '1h' }, w)));
  const body = h('div');
  put(root,
    h('h1', {}, 'Dashboard'),
    h('form', { class: 'filters card', onsubmit: (e) => { e.preventDefault(); draw(); } },
      field('dash-since', 'Window', since),
      h('button', { type: 'submit' }, 'Refresh')),
    body);
  since.addEventListener('change', draw);

  async function draw() {
    put(body, h('p', { class: 'muted' }, 'Loading…'));
    const w = since.value;
    const span = WINDOWS[w];
    try {
      const [logs, models, teams] = await Promise.all([
        admin(`/admin/logs${query({ since: w, limit: 10000 })}`),
        admin(`/admin/usage/report${query({ since: w, group_by: 'model' })}`),
        admin(`/admin/usage/report${query({ since: w, group_by: 'metadata.team' })}`),
      ]);
      put(body, ...view(logs.data, span, models.rows, teams.rows));
    } catch (e) {
      put(body, errorBox(e, 'the request log'));
    }
  }
  await draw();
}

function view(entries, span, modelRows, teamRows) {
  const b = bucket(entries, span);
  const times = b.map((x) => x.t);
  const all = entries.map((e) => e.total_ms).sort((p, q) => p - q);
  const errors = entries.filter((e) => e.status >= 400).length;
  const cost = entries.reduce((s, e) => s + (e.cost_nanos || 0), 0) / 1e9;
  const tokens = entries.reduce((s, e) => s + (e.prompt_tokens || 0) + (e.completion_tokens || 0), 0);
  const tile = (k, v) => h('div', { class: 'tile' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v));
  const top = (rows, key) => rows.slice(0, 8).map((r) => ({
    label: r.group[key], value: r.requests, text: `${fmt.int(r.requests)} req · ${fmt.usd(r.cost_usd)}`,
  }));
  return [
    h('div', { class: 'tiles', 'aria-label': 'Totals for the window' },
      tile('Requests', fmt.int(entries.length)),
      tile('Errors', `${fmt.int(errors)} (${fmt.pct(entries.length ? errors / entries.length : 0)})`),
      tile('Cost', fmt.usd(cost)),
      tile('Tokens', fmt.int(tokens)),
      tile('Latency p50', fmt.ms(quantile(all, 0.5))),
      tile('Latency p99', fmt.ms(quantile(all, 0.99)))),
    entries.length >= 10000 ? h('p', { class: 'notice' }, 'Showing the newest 10,000 requests of the window; pick a shorter window to see all of it.') : null,
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Requests and errors'),
        lineChart({ title: 'Requests and errors per interval', times, series: [
          { name: 'requests', values: b.map((x) => x.n) }, { name: 'errors', values: b.map((x) => x.errors) }],
        format: count })),
      h('div', { class: 'card' }, h('h2', {}, 'Latency'),
        lineChart({ title: 'Latency p50 and p99 per interval', times, series: [
          { name: 'p50', values: b.map((x) => quantile(x.lat, 0.5)) }, { name: 'p99', values: b.map((x) => quantile(x.lat, 0.99)) }],
        format: fmt.ms })),
      h('div', { class: 'card' }, h('h2', {}, 'Cost'),
        lineChart({ title: 'Cost per interval', times, series: [{ name: 'cost (USD)', values: b.map((x) => x.cost) }], format: fmt.usd })),
      h('div', { class: 'card' }, h('h2', {}, 'Tokens'),
        lineChart({ title: 'Tokens per interval', times, series: [{ name: 'tokens', values: b.map((x) => x.tokens) }],
          format: count }))),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Top models'),
        modelRows.length ? bars({ title: 'Requests by model', rows: top(modelRows, 'model') }) : h('p', { class: 'muted' }, 'No requests yet.')),
      h('div', { class: 'card' }, h('h2', {}, 'Top teams'),
        teamRows.length ? bars({ title: 'Requests by team (metadata.team)', rows: top(teamRows, 'metadata.team') })
          : h('p', { class: 'muted' }, 'No requests yet.'))),
  ];
}
