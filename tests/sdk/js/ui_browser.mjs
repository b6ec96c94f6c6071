// Drives the admin console in headless Chromium (playwright-core on the
// system's /usr/bin/chromium; no browser is downloaded). Called by
// tests/sdk/test_ui_browser.py with one JSON argument; prints one JSON line
// of findings, and exits non-zero on the first expectation that fails.
//
//   node ui_browser.mjs '{"admin":"http://127.0.0.1:4001","data":"http://127.0.0.1:4000","master":"…",
//                         "member":"…","teamAdmin":"…","fellBack":"req_…","shots":"/tmp/shots",
//                         "chromium":"/usr/bin/chromium"}'
//
// With "mode":"newcomer" it only signs in and reads the dashboard.

import { chromium } from 'playwright-core';

const args = JSON.parse(process.argv[2]);
const TIMEOUT = 15000;

const browser = await chromium.launch({
  executablePath: args.chromium,
  // Containers run tests as root, where Chromium's sandbox cannot start.
  args: ['--no-sandbox'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(TIMEOUT);
page.on('dialog', (d) => d.accept());

// Every console error and uncaught exception. Refusals the test provokes
// on purpose (a wrong credential, a role without permission) make Chromium
// log the failed fetch; those, and only while expected, are set aside.
const consoleErrors = [];
let expectedRefusals = null;
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  const text = m.text();
  if (expectedRefusals && new RegExp(`status of (${expectedRefusals})`).test(text)) return;
  consoleErrors.push(text);
});
page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));

const result = { consoleErrors };
function expect(cond, what) {
  if (!cond) throw new Error(`expectation failed: ${what}`);
}
const shot = (name) => page.screenshot({ path: `${args.shots}/${name}.png`, fullPage: true });
const go = async (hash) => {
  await page.goto(`${args.admin}/ui/#/${hash}`);
  await page.waitForSelector('[aria-busy="true"]', { state: 'detached' });
};

/** A newcomer on the embedded defaults: the printed key, the traffic made so far. */
async function newcomer() {
  await page.goto(`${args.admin}/ui/`);
  await page.getByLabel('Credential').fill(args.master);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Top models' }).waitFor();
  const tile = await page.locator('.tile', { hasText: 'Requests' }).locator('.v').textContent();
  result.dashboardRequests = Number(tile.replace(/,/g, ''));
  await page.locator('.card', { hasText: 'Top models' }).getByText('mock/echo').waitFor();
}

/** Every page, as an administrator, then as a member. */
async function tour() {
  // --- sign-in: a wrong credential is refused in words, the master key works.
  await page.goto(`${args.admin}/ui/`);
  await page.getByLabel('Credential').waitFor();
  expectedRefusals = '401';
  await page.getByLabel('Credential').fill('not-a-key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('The gateway does not accept this credential.').waitFor();
  expectedRefusals = null;
  await page.getByLabel('Credential').fill(args.master);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('master · admin').waitFor();
  expect(await page.evaluate(() => sessionStorage.getItem('tollgate.credential')) === args.master, 'credential kept in sessionStorage');

  // --- dashboard: the traffic made before the browser started.
  await page.getByRole('heading', { name: 'Top models' }).waitFor();
  const requestsTile = await page.locator('.tile', { hasText: 'Requests' }).locator('.v').textContent();
  expect(Number(requestsTile.replace(/,/g, '')) >= 5, `dashboard counts the requests (${requestsTile})`);
  expect(await page.locator('svg.chart').count() === 4, 'four charts');
  await page.locator('.card', { hasText: 'Top models' }).getByText('mock/echo').waitFor();
  await page.locator('.card', { hasText: 'Top teams' }).getByText('payments').waitFor();
  await shot('dashboard');

  // --- explorer: search, then the fallback request in full.
  await go('requests');
  await page.getByLabel('Model').fill('prod/chat');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: args.fellBack }).click();
  await page.locator('#rq-title', { hasText: args.fellBack }).waitFor();
  const attempts = page.locator('#request-detail table').first().locator('tbody tr');
  result.explorerAttempts = await attempts.count();
  expect(result.explorerAttempts >= 2, 'two attempts shown');
  await page.locator('#request-detail').getByText('fell_back').waitFor();
  await page.locator('#request-detail').getByText('503').first().waitFor();
  await page.locator('#request-detail').getByText('route me').first().waitFor(); // the logged body
  await page.locator('#request-detail').getByRole('cell', { name: 'pii-redaction', exact: true }).waitFor();
  await shot('requests');

  // --- keys: create (secret once), use it, revoke it.
  await go('keys');
  await page.getByLabel('Name').fill('ui-made');
  await page.getByLabel('Models (comma-separated; empty: all)').fill('mock/*');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = await page.locator('#new-secret').textContent();
  expect(secret.startsWith('tg-'), 'a new secret is shown');
  await page.getByRole('cell', { name: 'ui-made', exact: true }).waitFor();
  await shot('keys');
  const use = (key) => fetch(`${args.data}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
  result.newKeyWorked = await use(secret);
  await page.getByRole('button', { name: 'Done' }).click();
  expect(await page.locator('#new-secret').count() === 0, 'the secret is gone once dismissed');
  // Rotate without overlap (the prompt's empty answer): the old secret stops, the new one works.
  await page.getByRole('button', { name: /^Rotate ui-made / }).click();
  await page.getByText('Rotated “ui-made”.').waitFor();
  const rotated = await page.locator('#new-secret').textContent();
  expect(rotated !== secret && rotated.startsWith('tg-'), 'rotation shows a new secret');
  expect(await use(rotated) === 200, 'the rotated secret works');
  // Key times are whole seconds: the old secret stops within one.
  let old = await use(secret);
  for (let i = 0; i < 30 && old !== 401; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
    old = await use(secret);
  }
  expect(old === 401, `the old secret stopped (${old})`);
  const row = page.getByRole('row', { name: new RegExp(rotated.slice(0, 9)) });
  await row.getByRole('button', { name: /^Revoke ui-made / }).click();
  await row.getByText('revoked').waitFor();
  result.revokedKeyStatus = await use(rotated);

  // --- usage grouped by team and model.
  await go('usage');
  await page.getByRole('cell', { name: 'payments', exact: true }).first().waitFor();
  await page.getByRole('cell', { name: 'search', exact: true }).first().waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  expect(download.suggestedFilename().endsWith('.csv'), 'a CSV file is offered');
  await shot('usage');

  // --- limits and budgets, with headroom.
  await go('limits');
  await page.getByText('per-key-rpm@requests_per_minute|master').waitFor();
  await page.getByRole('cell', { name: '600', exact: true }).first().waitFor();
  await page.getByText(/team-daily/).first().waitFor();
  await shot('limits');

  // --- config: the version, and a reload that makes the next one.
  await go('config');
  const before = Number(await page.locator('#config-version').textContent());
  await page.getByRole('button', { name: 'Reload config' }).click();
  await page.getByText(`now version ${before + 1}`).waitFor();
  await page.locator('#config-version', { hasText: String(before + 1) }).waitFor();
  await shot('config');

  // --- MCP: every tool waits for approval; approve one.
  await go('mcp');
  await page.getByRole('button', { name: 'Read every server now' }).click();
  await page.getByRole('button', { name: 'Approve ops/search_docs' }).click();
  await page.getByText('ops/search_docs approved').waitFor();
  expect(await page.getByRole('button', { name: 'Approve ops/search_docs' }).count() === 0, 'approved tool left quarantine');
  await shot('mcp');

  // --- playground: a streamed answer from the mock, with the gateway's headers.
  await go('playground');
  await page.locator('#pg-model option[value="mock/echo"]').waitFor({ state: 'attached' });
  await page.getByLabel('Model').selectOption('mock/echo');
  await page.getByLabel('Message').fill('Hello from the browser');
  await page.getByRole('button', { name: 'Send' }).click();
  const answer = page.locator('.msg.assistant .text');
  await page.waitForFunction(() => document.querySelector('.msg.assistant .text')?.textContent.includes('Hello from the browser'));
  result.playgroundAnswer = await answer.textContent();
  await page.getByRole('cell', { name: 'x-tollgate-request-id', exact: true }).waitFor();
  await page.getByRole('cell', { name: 'x-tollgate-resolved-model', exact: true }).waitFor();
  await shot('playground');

  // --- a member's key: signed in, and told plainly what its role may not see.
  await page.getByRole('button', { name: 'Sign out' }).click();
  expect(await page.evaluate(() => sessionStorage.getItem('tollgate.credential')) === null, 'signing out forgets the credential');
  expectedRefusals = '403';
  await page.getByLabel('Credential').fill(args.member);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('key:ui-member · member').waitFor();
  await go('dashboard');
  await page.locator('.notice', { hasText: 'role member' }).first().waitFor();
  await go('keys');
  // A member sees its owner's keys, and may not make one.
  await page.getByRole('cell', { name: 'ui-member', exact: true }).waitFor();
  await page.getByLabel('Name').fill('not-allowed');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.locator('.notice', { hasText: 'role_forbidden' }).waitFor();
  expectedRefusals = null;

  // --- a team admin: its own team's budget, not another's.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Credential').fill(args.teamAdmin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('key:ui-payments-admin · team_admin · team payments').waitFor();
  await go('limits');
  await page.getByText('team-daily@cost_per_day|payments').waitFor();
  expect(await page.getByText('team-daily@cost_per_day|search').count() === 0, "another team's budget is not shown");
}

try {
  await (args.mode === 'newcomer' ? newcomer() : tour());
} catch (e) {
  await page.screenshot({ path: `${args.shots}/failure.png`, fullPage: true }).catch(() => {});
  console.error(e.stack || String(e));
  console.error('console errors so far:', JSON.stringify(consoleErrors));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(result));
