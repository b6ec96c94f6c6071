// Small SVG charts drawn here: a time series and horizontal bars. Each has
// a text title and summary for screen readers.

const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A round top for an axis: 1, 2 or 5 times a power of ten. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

/**
 * Lines over time. `times`: bucket starts (ms); `series`: [{name, values}],
 * values aligned with times; `format` prints a y value.
 */
export function lineChart({ title, times, series, format = String }) {
  const W = 520, H = 180, L = 56, R = 8, T = 10, B = 24;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter(Number.isFinite))));
  const x = (i) => L + (times.length < 2 ? 0 : (i * (W - L - R)) / (times.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' });
  const summary = series.map((s) => `${s.name}: peak ${format(Math.max(0, ...s.values.filter(Number.isFinite)))}`).join('; ');
  root.append(svg('title', {}, `${title}. ${summary}`));
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    root.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'axis' }));
    root.append(svg('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, format(v)));
  }
  if (times.length) {
    const label = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    root.append(svg('text', { x: L, y: H - 6 }, label(times[0])));
    root.append(svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, label(times[times.length - 1])));
  }
  series.forEach((s, n) => {
    const pts = s.values.map((v, i) => (Number.isFinite(v) ? `${x(i)},${y(v)}` : null));
    // A gap (no value in a bucket) breaks the line rather than dropping to zero.
    let d = '';
    let pen = false;
    for (const p of pts) {
      if (p === null) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${p} `;
      pen = true;
    }
    if (d) root.append(svg('path', { d: d.trim(), fill: 'none', stroke: COLORS[n % COLORS.length], 'stroke-width': 1.8 }));
    // A dot per value, so a lone bucket between gaps is seen too.
    pts.forEach((p) => {
      if (p === null) return;
      const [cx, cy] = p.split(',');
      root.append(svg('circle', { cx, cy, r: 2, fill: COLORS[n % COLORS.length] }));
    });
  });
  const wrap = document.createElement('figure');
  wrap.style.margin = '0';
  const cap = document.createElement('figcaption');
  cap.className = 'legend';
  cap.append(...series.map((s, n) => {
    const span = document.createElement('span');
    span.style.setProperty('--c', COLORS[n % COLORS.length]);
    span.textContent = s.name;
    return span;
  }));
  wrap.append(root, cap);
  return wrap;
}

/** Horizontal bars: rows [{label, value, text}] largest first. */
export function bars({ title, rows }) {
  const max = Math.max(0, ...rows.map((r) => r.value)) || 1;
  const table = document.createElement('table');
  const cap = document.createElement('caption');
  cap.className = 'sr-only';
  cap.textContent = title;
  table.append(cap);
  for (const r of rows) {
    const tr = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = r.label;
    const barCell = document.createElement('td');
    barCell.style.width = '45%';
    const track = document.createElement('div');
    track.className = 'bar-track';
    const fill = document.createElement('div');
    fill.className = 'bar-fill';
    fill.style.width = `${(100 * r.value) / max}%`;
    track.append(fill);
    barCell.append(track);
    const val = document.createElement('td');
    val.className = 'num';
    val.textContent = r.text;
    tr.append(name, barCell, val);
    table.append(tr);
  }
  return table;
}

/** A meter of used against limit, red past 80%. */
export function meter(used, limit) {
  const track = document.createElement('div');
  track.className = 'bar-track';
  const fill = document.createElement('div');
  const frac = limit > 0 ? Math.min(1, used / limit) : 0;
  fill.className = frac >= 0.8 ? 'bar-fill hot' : 'bar-fill';
  fill.style.width = `${100 * frac}%`;
  track.setAttribute('role', 'meter');
  track.setAttribute('aria-valuemin', '0');
  track.setAttribute('aria-valuemax', String(limit));
  track.setAttribute('aria-valuenow', String(used));
  track.append(fill);
  return track;
}
