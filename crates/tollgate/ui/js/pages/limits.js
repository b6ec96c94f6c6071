// Rate-limit counters and budget accounts as they stand, with headroom,
// and the recent budget events (a team admin sees its team's only).

import { admin } from '../api.js';
import { h, put, fmt, table, load } from '../dom.js';
import { meter } from '../charts.js';

export const title = 'Limits and budgets';

const unitFmt = (unit) => (unit === 'usd' ? fmt.usd : (v) => fmt.int(Math.round(v)));

export async function render(root) {
  const body = h('div');
  put(root,
    h('div', { class: 'row' }, h('h1', {}, 'Limits and budgets'),
      h('button', { type: 'button', class: 'secondary', onclick: () => draw() }, 'Refresh')),
    body);
  async function draw() {
    await load(body, 'usage against limits', async () => {
      const u = await admin('/admin/usage');
      return h('div', {},
        h('section', { class: 'card' }, h('h2', {}, 'Rate limits'),
          h('p', { class: 'muted' }, 'One counter per rule and key (rule@unit|values), over its sliding window.'),
          table([
            { label: 'Counter', value: (c) => h('span', { class: 'mono' }, c.key) },
            { label: 'Used', num: true, value: (c) => fmt.int(c.used) },
            { label: 'Limit', num: true, value: (c) => (c.limit == null ? '–' : fmt.int(c.limit)) },
            { label: 'Headroom', num: true, value: (c) => (c.limit == null ? '–' : fmt.int(Math.max(0, c.limit - c.used))) },
            { label: 'Use', value: (c) => (c.limit == null ? '' : meter(c.used, c.limit)) },
          ], u.rate_limits, { caption: 'Rate-limit counters', empty: 'No counter has counted anything yet.' })),
        h('section', { class: 'card' }, h('h2', {}, 'Budgets'),
          table([
            { label: 'Account', value: (b) => h('span', { class: 'mono' }, b.key) },
            { label: 'Spent', num: true, value: (b) => unitFmt(b.unit)(b.spent) },
            { label: 'Reserved', num: true, value: (b) => unitFmt(b.unit)(b.reserved) },
            { label: 'Limit', num: true, value: (b) => (b.limit == null ? '–' : unitFmt(b.unit)(b.limit)) },
            { label: 'Headroom', num: true, value: (b) => (b.limit == null ? '–' : unitFmt(b.unit)(Math.max(0, b.limit - b.spent - b.reserved))) },
            { label: 'Use', value: (b) => (b.limit == null ? '' : meter(b.spent + b.reserved, b.limit)) },
          ], u.budgets, { caption: 'Budget accounts', empty: 'No budget account has been charged yet.' })),
        h('section', { class: 'card' }, h('h2', {}, 'Budget events'),
          table([
            { label: 'When', value: (e) => fmt.secs(e.at) },
            { label: 'Kind', value: (e) => e.kind },
            { label: 'Rule', value: (e) => e.rule },
            { label: 'Account', value: (e) => h('span', { class: 'mono' }, e.key) },
            { label: 'Threshold', num: true, value: (e) => (e.threshold == null ? '–' : fmt.pct(e.threshold)) },
          ], u.events.slice().reverse(), { caption: 'Budget events', empty: 'No budget event since the gateway started.' })));
    });
  }
  await draw();
}
