// MCP servers: transport, health, tools and their pin standing; a tool
// whose definition changed (or awaits a first approval) is quarantined
// until approved here.

import { admin, query } from '../api.js';
import { h, put, fmt, table, errorBox, load } from '../dom.js';

export const title = 'MCP servers';

const standing = (s) => h('span', { class: s === 'approved' ? 'ok' : 'bad' }, s === 'approved' ? 'approved' : `${s} (quarantined)`);

export async function render(root) {
  const message = h('div', { 'aria-live': 'polite' });
  const body = h('div');
  put(root,
    h('div', { class: 'row' }, h('h1', {}, 'MCP servers and tools'),
      h('button', { type: 'button', class: 'secondary', onclick: () => draw(true) }, 'Read every server now')),
    message, body);

  async function approve(server, tool) {
    put(message);
    try {
      const r = await admin(`/admin/mcp/servers/${encodeURIComponent(server)}/tools/${encodeURIComponent(tool)}/approve`, { method: 'POST' });
      put(message, h('p', { class: 'notice', role: 'status' }, `${r.server}/${r.tool} approved (sha256 ${r.sha256.slice(0, 12)}…).`));
      await draw(false);
    } catch (e) {
      put(message, errorBox(e, 'tool approvals'));
    }
  }

  async function draw(refresh) {
    await load(body, 'the MCP registry', async () => {
      const r = await admin(`/admin/mcp/servers${query({ refresh: refresh ? 'true' : '' })}`);
      const quarantined = r.servers.flatMap((s) => s.tools.filter((t) => t.standing !== 'approved').map((t) => ({ server: s.name, ...t })));
      const health = (x) => h('span', { class: x.status === 'ok' ? 'ok' : x.status === 'error' ? 'bad' : 'muted' },
        x.status, x.error ? `: ${x.error}` : '', x.checked_ms ? ` (${fmt.time(x.checked_ms)})` : '');
      return h('div', {},
        h('section', { class: 'card' }, h('h2', {}, `Quarantined tools (${quarantined.length})`),
          table([
            { label: 'Server', value: (t) => t.server }, { label: 'Tool', value: (t) => t.name },
            { label: 'Standing', value: (t) => standing(t.standing) },
            { label: 'Definition sha256', value: (t) => h('span', { class: 'mono' }, (t.sha256 || '').slice(0, 16)) },
            { label: 'Action', value: (t) => h('button', { type: 'button', 'aria-label': `Approve ${t.server}/${t.name}`, onclick: () => approve(t.server, t.name) }, 'Approve') },
          ], quarantined, { caption: 'Quarantined tools', empty: 'No tool is quarantined.' })),
        h('section', { class: 'card' }, h('h2', {}, 'Servers'),
          table([
            { label: 'Server', value: (s) => s.name }, { label: 'Transport', value: (s) => s.transport },
            { label: 'Target', value: (s) => h('span', { class: 'mono' }, s.target || '') },
            { label: 'Health', value: (s) => health(s.health || {}) },
            { label: 'Tools', value: (s) => h('ul', {}, s.tools.map((t) => h('li', {}, t.name, ' ', standing(t.standing)))) },
          ], r.servers, { caption: 'MCP servers', empty: 'No MCP server is configured.' })),
        (r.virtual_servers || []).length ? h('section', { class: 'card' }, h('h2', {}, 'Virtual servers'),
          table([
            { label: 'Name', value: (v) => v.name }, { label: 'Servers', value: (v) => (v.servers || []).join(', ') },
            { label: 'Tools', value: (v) => (v.tools || []).map((t) => t.name).join(', ') },
          ], r.virtual_servers, { caption: 'Virtual MCP servers' })) : null,
        h('p', { class: 'muted' }, `Client sessions open: ${r.sessions ?? 0}.`));
    });
  }
  await draw(false);
}
