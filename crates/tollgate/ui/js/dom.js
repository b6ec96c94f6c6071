// Building the page: elements from plain values (text is always set as
// text, never parsed as HTML), tables, formats and error notices.

/** h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces an element's content. */
export function put(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * A table: columns are {label, value(row) → text|Node, num?}; rows a list.
 * `onRow` makes rows clickable (and reachable with the keyboard).
 */
export function table(columns, rows, { caption, onRow, empty = 'Nothing to show.' } = {}) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  const head = h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)));
  const body = rows.map((r) => {
    const tr = h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.value(r))));
    if (onRow) {
      tr.classList.add('clickable');
      tr.tabIndex = 0;
      tr.addEventListener('click', () => onRow(r, tr));
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') onRow(r, tr); });
    }
    return tr;
  });
  return h('div', { class: 'scroll' },
    h('table', {}, caption ? h('caption', { class: 'sr-only' }, caption) : null, h('thead', {}, head), h('tbody', {}, body)));
}

export const fmt = {
  int: (n) => (n ?? 0).toLocaleString('en-US'),
  usd: (n) => `$${(n ?? 0).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: n && n < 0.01 ? 6 : 4 })}`,
  nanos: (n) => fmt.usd((n ?? 0) / 1e9),
  ms: (n) => (n == null ? '–' : n < 1 ? `${n.toFixed(3)} ms` : n < 100 ? `${n.toFixed(1)} ms` : `${Math.round(n)} ms`),
  time: (ms) => new Date(ms).toLocaleString(),
  secs: (s) => (s ? new Date(s * 1000).toLocaleString() : '–'),
  pct: (x) => `${(x * 100).toFixed(1)}%`,
};

export function statusPill(status) {
  const cls = status < 300 ? 'ok' : status < 500 ? 'warn' : 'bad';
  return h('span', { class: `pill ${cls}` }, String(status));
}

/**
 * An error as the reader needs it: a refusal by role says so plainly (the
 * API decides; the console shows its word), anything else its message.
 */
export function errorBox(e, what = 'this') {
  if (e && e.status === 403) {
    const role = sessionRole();
    return h('div', { class: 'notice', role: 'status' },
      `Your credential${role ? ` (role ${role})` : ''} may not see or change ${what}: `, e.message,
      e.code ? ` (${e.code})` : '');
  }
  const lines = e && e.errors && e.errors.length ? h('pre', {}, e.errors.join('\n')) : null;
  return h('div', { class: 'error', role: 'alert' }, (e && e.message) || String(e), e && e.code ? ` (${e.code})` : '', lines);
}

let roleOf = () => null;
export function setRoleSource(fn) { roleOf = fn; }
function sessionRole() { return roleOf(); }

/** Runs an async loader into `el`, showing progress and errors in place. */
export async function load(el, what, fn) {
  // Only the latest load into an element shows: an earlier, slower answer
  // must not overwrite a newer search.
  const seq = String(Number(el.dataset.seq || 0) + 1);
  el.dataset.seq = seq;
  put(el, h('p', { class: 'muted', 'aria-busy': 'true' }, 'Loading…'));
  let node;
  try {
    node = await fn();
  } catch (e) {
    node = errorBox(e, what);
  }
  if (el.dataset.seq === seq) put(el, node);
}

/** A labelled field: h('div', {}, label, input). */
export function field(id, label, input) {
  input.id = id;
  if (!input.name) input.name = id;
  return h('div', {}, h('label', { for: id }, label), input);
}

/** Offers text as a downloaded file. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
