// The running config (the API never shows a secret), its version and
// origin, a reload, and the rules added through the API.

import { admin } from '../api.js';
import { h, put, table, errorBox, load } from '../dom.js';

export const title = 'Config';

const KINDS = ['rate_limits', 'budgets', 'teams', 'users'];

export async function render(root) {
  const status = h('div', { 'aria-live': 'polite' });
  const body = h('div');
  const overlays = h('div');
  put(root,
    h('div', { class: 'row' }, h('h1', {}, 'Config'),
      h('button', { type: 'button', onclick: reload }, 'Reload config')),
    status, body, overlays);

  async function reload() {
    put(status);
    try {
      const r = await admin('/admin/config/reload', { method: 'POST' });
      put(status, h('p', { class: 'notice', role: 'status' }, `Reload ${r.status}: now version ${r.version}.`));
      await draw();
    } catch (e) {
      put(status, errorBox(e, 'the config'));
    }
  }

  async function draw() {
    await load(body, 'the config', async () => {
      const c = await admin('/admin/config');
      return h('div', {},
        h('section', { class: 'card' },
          h('dl', { class: 'kv' },
            h('dt', {}, 'Version'), h('dd', { id: 'config-version' }, String(c.version)),
            h('dt', {}, 'Digest'), h('dd', { class: 'mono' }, c.digest),
            h('dt', {}, 'Origin'), h('dd', {}, c.origin),
            h('dt', {}, 'Data plane'), h('dd', { class: 'mono' }, c.listen),
            h('dt', {}, 'Admin'), h('dd', { class: 'mono' }, c.admin_listen),
            h('dt', {}, 'Static keys'), h('dd', {}, String(c.keys))),
          c.warnings.length ? h('div', { class: 'notice' }, h('strong', {}, 'Warnings'), h('ul', {}, c.warnings.map((w) => h('li', {}, w)))) : null),
        h('section', { class: 'card' }, h('h2', {}, 'Providers'),
          table([
            { label: 'Name', value: (p) => p.name }, { label: 'Type', value: (p) => p.type },
            { label: 'Models', value: (p) => (p.any_model ? 'any name passes through' : c.models.filter((m) => m.startsWith(`${p.name}/`)).join(', ')) },
          ], c.providers, { caption: 'Providers' })),
        c.distributed ? h('section', { class: 'card' }, h('h2', {}, 'Distributed mode'),
          h('dl', { class: 'kv' }, Object.entries(c.distributed).map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, String(v ?? '–'))]))) : null,
        h('section', { class: 'card' }, h('h2', {}, 'Models'),
          h('ul', {}, c.models.map((m) => h('li', { class: 'mono' }, m)))));
    });
    await load(overlays, 'rules added through the API', async () => {
      const lists = await Promise.all(KINDS.map((k) => admin(`/admin/${k}`).then((v) => [k, v])));
      return h('section', { class: 'card' }, h('h2', {}, 'Rules, budgets, teams and users in force'),
        table([
          { label: 'Kind', value: ([k]) => k },
          { label: 'In force', value: ([, v]) => v.active.join(', ') || '–' },
          { label: 'Added through the API', value: ([, v]) => (v.overlays.length ? h('pre', {}, JSON.stringify(v.overlays.map((o) => o.rule), null, 1)) : '–') },
        ], lists, { caption: 'Overlays' }));
    });
  }
  await draw();
}
