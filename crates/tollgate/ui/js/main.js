// The console's shell: sign-in, navigation (hash routes, so the server
// serves one page) and the page modules.

import { session, signIn, ApiError } from './api.js';
import { h, put, errorBox, setRoleSource } from './dom.js';
import * as dashboard from './pages/dashboard.js';
import * as requests from './pages/requests.js';
import * as keys from './pages/keys.js';
import * as usage from './pages/usage.js';
import * as limits from './pages/limits.js';
import * as config from './pages/config.js';
import * as mcp from './pages/mcp.js';
import * as playground from './pages/playground.js';

const PAGES = { dashboard, requests, keys, usage, limits, config, mcp, playground };

const $ = (id) => document.getElementById(id);
setRoleSource(() => session.settings && session.settings.role);

function showSignedIn(signedIn) {
  $('sign-in').hidden = signedIn;
  $('nav').hidden = !signedIn;
  $('who').hidden = !signedIn;
  if (!signedIn) put($('page'));
}

let current = null;

async function route() {
  if (!session.settings) return;
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const page = PAGES[name] || dashboard;
  // Within a page (a request opened in the explorer), keep what is on it.
  if (current && current.page === page && page.update && document.body.contains(current.root)) {
    await page.update(current.root, rest.map(decodeURIComponent));
    return;
  }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#/${name || 'dashboard'}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = put($('page'), h('section', { 'aria-live': 'polite' }));
  current = { page, root: root.firstChild };
  document.title = `${page.title} · tollgate`;
  try {
    await page.render(root.firstChild, rest.map(decodeURIComponent));
  } catch (e) {
    put(root, errorBox(e, page.title.toLowerCase()));
  }
}

async function start() {
  const s = session.settings;
  put($('who-text'), `${s.subject} · ${s.role}${s.team ? ` · team ${s.team}` : ''}`);
  showSignedIn(true);
  await route();
}

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('sign-in-error');
  err.hidden = true;
  try {
    await signIn($('credential').value.trim());
    $('credential').value = '';
    await start();
  } catch (ex) {
    err.hidden = false;
    err.textContent = ex instanceof ApiError && ex.status === 401
      ? 'The gateway does not accept this credential.'
      : ex.message;
  }
});

$('sign-out').addEventListener('click', () => {
  session.clear();
  current = null;
  showSignedIn(false);
  $('credential').focus();
});

window.addEventListener('hashchange', route);

// A credential kept from earlier in this tab: check it again, quietly.
(async () => {
  if (session.credential) {
    try {
      await signIn(session.credential);
      await start();
      return;
    } catch { /* fall through to the form */ }
  }
  showSignedIn(false);
})();
