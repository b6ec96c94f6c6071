// Virtual keys: list, create (the secret shown once, here and nowhere
// else), revoke, rotate. What the list holds is what the API lets this
// caller see (a team admin: its team's keys; a member: its own).

import { admin } from '../api.js';
import { h, put, fmt, table, errorBox, field, load } from '../dom.js';

export const title = 'Keys';

const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);

export async function render(root) {
  const secret = h('div', { 'aria-live': 'assertive' });
  const message = h('div');
  const listing = h('div');
  const f = {
    name: h('input', { required: true, placeholder: 'checkout-svc' }),
    team: h('input', { placeholder: 'payments' }),
    owner: h('input', { placeholder: 'alice@example.com' }),
    models: h('input', { placeholder: 'mock/*, prod/chat' }),
    role: h('select', {}, h('option', { value: '' }, 'none (data plane only)'),
      ['member', 'team_admin', 'viewer', 'admin'].map((r) => h('option', { value: r }, r))),
    expires: h('input', { placeholder: '720h' }),
  };
  put(root,
    h('h1', {}, 'Keys'),
    h('section', { class: 'card', 'aria-labelledby': 'create-key' },
      h('h2', { id: 'create-key' }, 'Create a key'),
      h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); create(); } },
        field('key-name', 'Name', f.name), field('key-team', 'Team', f.team), field('key-owner', 'Owner', f.owner),
        field('key-models', 'Models (comma-separated; empty: all)', f.models), field('key-role', 'Role', f.role),
        field('key-expires', 'Expires in', f.expires),
        h('button', { type: 'submit' }, 'Create key')),
      message),
    secret,
    h('section', { class: 'card' }, h('h2', {}, 'All keys'), listing));

  /** To the clipboard; where the browser refuses (not a secure origin), the text is selected instead. */
  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById('new-secret'));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
  }

  /** The one time a secret is on screen; dismissing it forgets it. */
  function showSecret(rec, what) {
    put(secret, h('div', { class: 'secret', role: 'status' },
      h('p', {}, h('strong', {}, `${what} “${rec.name}”. `), 'Copy the secret now: it is not shown again.'),
      h('p', {}, h('code', { id: 'new-secret' }, rec.key)),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'secondary', onclick: () => copy(rec.key) }, 'Copy'),
        h('button', { type: 'button', class: 'secondary', onclick: () => put(secret) }, 'Done'))));
  }

  async function create() {
    put(message);
    const body = { name: f.name.value.trim() };
    if (f.team.value.trim()) body.team = f.team.value.trim();
    if (f.owner.value.trim()) body.owner = f.owner.value.trim();
    if (list(f.models.value).length) body.models = list(f.models.value);
    if (f.role.value) body.role = f.role.value;
    if (f.expires.value.trim()) body.expires_in = f.expires.value.trim();
    try {
      const rec = await admin('/admin/keys', { method: 'POST', body });
      showSecret(rec, 'Created');
      f.name.value = '';
      await refresh();
    } catch (e) {
      put(message, errorBox(e, 'keys'));
    }
  }

  async function act(rec, how) {
    put(message);
    try {
      if (how === 'revoke') {
        if (!confirm(`Revoke “${rec.name}”? Requests with it are refused from now on.`)) return;
        await admin(`/admin/keys/${encodeURIComponent(rec.id)}`, { method: 'DELETE' });
      } else {
        const overlap = prompt(`Rotate “${rec.name}”: how long may the old secret keep working? (e.g. 1h; empty: it stops now)`, '');
        if (overlap === null) return;
        const out = await admin(`/admin/keys/${encodeURIComponent(rec.id)}/rotate`,
          { method: 'POST', body: overlap.trim() ? { overlap: overlap.trim() } : {} });
        showSecret(out, 'Rotated');
      }
      await refresh();
    } catch (e) {
      put(message, errorBox(e, 'this key'));
    }
  }

  async function refresh() {
    await load(listing, 'keys', async () => {
      const { data } = await admin('/admin/keys');
      return table([
        { label: 'Name', value: (k) => k.name },
        { label: 'Id', value: (k) => h('span', { class: 'mono' }, k.id) },
        { label: 'Prefix', value: (k) => h('span', { class: 'mono' }, `${k.prefix}…`) },
        { label: 'Team', value: (k) => k.team || '–' },
        { label: 'Owner', value: (k) => k.owner || '–' },
        { label: 'Role', value: (k) => k.role || '–' },
        { label: 'Models', value: (k) => (k.models ? k.models.join(', ') : 'all') },
        { label: 'Created', value: (k) => fmt.secs(k.created_at) },
        { label: 'Expires', value: (k) => fmt.secs(k.expires_at) },
        { label: 'State', value: (k) => h('span', { class: k.active ? 'ok' : 'muted' }, k.active ? 'active' : k.revoked_at ? 'revoked' : 'expired') },
        { label: 'Actions', value: (k) => (k.active ? h('div', { class: 'row' },
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Rotate ${k.name} (${k.id})`, onclick: () => act(k, 'rotate') }, 'Rotate'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${k.name} (${k.id})`, onclick: () => act(k, 'revoke') }, 'Revoke')) : '') },
      ], data, { caption: 'Virtual keys', empty: 'No virtual keys yet.' });
    });
  }
  await refresh();
}
