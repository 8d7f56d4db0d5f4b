// The web UI in a real browser: headless Debian chromium driven by playwright-core, against a
// real `v6lab serve` (a free port, its own state directory, checks every 2 s) and the Docker
// engine, with a class of two ipv6-basics labs. Run: bash tests/browser/run.sh
//
// Flows: the trainer signs in and sees the class and its board; a student opens their link and
// uses a terminal on a host (the planned address shows up); the board turns green after
// `v6lab solve`; a student's session or token opens no other lab's page, data or terminal;
// another student's link asks before replacing a session, and signing out ends it on the server;
// the terminal closes when the class is deleted from the dashboard.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.V6LAB_BIN || path.join(root, 'target/debug/v6lab');
const topology = path.join(root, 'topologies/ipv6-basics.yaml');
const shots = path.join(root, '.artifacts/screenshots');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const CLASS = `web${process.pid % 100000}`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, timeoutMs, fn, everyMs = 500) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

const S = {}; // shared state of the run

function cli(args, opts = {}) {
  return execFileSync(bin, args, {
    env: { ...process.env, V6LAB_CONTROLLER: S.base, V6LAB_STATE_DIR: S.dir },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
    ...opts,
  });
}

async function api(pathname, token, init = {}) {
  const r = await fetch(S.base + pathname, {
    ...init,
    headers: { ...(init.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
  });
  const text = await r.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body, text };
}

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    document.getElementById('toast')?.setAttribute('hidden', '');
  });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/// A WebSocket handshake by hand: the HTTP status the server answers (101 when upgraded).
function handshake(pathname, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: S.port, path: pathname,
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers,
      },
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: 101, body: '' }); });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/// The visible text of a node's terminal (xterm.js renders rows into the DOM).
const termText = (page, node) =>
  page.locator(`.term-box[data-node="${node}"] .xterm-rows`).innerText();

async function typeInTerminal(page, node, text) {
  await page.locator(`.term-box[data-node="${node}"]`).click();
  await page.keyboard.type(text);
}

before(async () => {
  assert.ok(fs.existsSync(bin), `${bin} is missing: cargo build -p v6lab`);
  assert.ok(fs.existsSync(chromiumPath), `${chromiumPath} is missing: bash deploy/setup-browser.sh`);
  S.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v6lab-web-'));
  S.port = await freePort();
  S.sshPort = await freePort();
  S.base = `http://127.0.0.1:${S.port}`;
  const log = fs.openSync(path.join(S.dir, 'serve.log'), 'a');
  // Should this process die before `after` runs, the controller does not outlive it.
  process.on('exit', () => S.serve?.kill('SIGTERM'));
  S.serve = spawn(bin, [
    'serve', '--listen', `127.0.0.1:${S.port}`, '--state-dir', S.dir, '--check-interval', '2s',
  ], {
    // The SSH gateway on a free port too (2222 may be taken); the access sheet follows it.
    env: { ...process.env, V6LAB_SSH_LISTEN: `127.0.0.1:${S.sshPort}`, RUST_LOG: 'info' },
    stdio: ['ignore', log, log],
  });
  await until('the controller to answer /healthz', 300_000, async () => (await fetch(`${S.base}/healthz`)).ok);
  S.admin = fs.readFileSync(path.join(S.dir, 'admin.token'), 'utf8').trim();

  const plan = JSON.parse(cli(['plan', topology, '--output', 'json']));
  const h1 = plan.nodes.find((n) => n.name === 'h1').interfaces[0];
  S.h1LinkLocal = h1.link_local;
  S.h1Slaac = h1.ipv6.expected;
  assert.ok(S.h1LinkLocal && S.h1Slaac, 'the plan gives h1 a link-local and a SLAAC address');

  const cls = JSON.parse(cli(['class', 'create', topology, '--students', '2', '--lifetime', '30m',
    '--name', CLASS, '--output', 'json']));
  S.labs = cls.labs.map((l) => ({ name: l.name, student: l.student, token: l.token }));
  assert.equal(S.labs.length, 2);
  await until('both labs to be ready', 300_000, async () => {
    const r = await api(`/api/classes/${CLASS}`, S.admin);
    return r.status === 200 && r.body.labs.every((l) => l.state === 'ready');
  }, 1000);

  S.browser = await chromium.launch({
    executablePath: chromiumPath,
    // playwright starts chromium with a fresh, temporary user-data directory of its own.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await S.browser?.close().catch(() => {});
  if (S.serve && S.base && S.admin) {
    // Whatever a failed test left: the class, then the labs on the engine.
    await api(`/api/classes/${CLASS}`, S.admin, { method: 'DELETE' }).catch(() => {});
    const gone = async () => S.labs.every((l) => execFileSync('docker',
      ['ps', '-aq', '--filter', `label=dev.v6lab.lab=${l.name}`], { encoding: 'utf8' }).trim() === '');
    await until('the labs to be removed', 120_000, gone, 1000).catch((e) => console.error(e.message));
  }
  if (S.serve) {
    S.serve.kill('SIGTERM');
    await new Promise((r) => { S.serve.once('exit', r); setTimeout(r, 10_000); });
  }
  for (const l of S.labs || []) {
    try { execFileSync(bin, ['down', l.name], { stdio: 'ignore' }); } catch { /* gone */ }
  }
  if (S.dir) {
    if (process.env.KEEP_STATE) console.error(`state kept in ${S.dir}`);
    else fs.rmSync(S.dir, { recursive: true, force: true });
  }
});

test('the trainer signs in and sees the class, its board and the access sheet', async () => {
  const ctx = await S.browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${S.base}/`);
  await shot(page, '01-sign-in');
  await page.getByLabel('Trainer token or student access code').fill(S.admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/dashboard');
  assert.ok(!page.url().includes(S.admin), 'no token in the URL');
  const cookie = (await ctx.cookies()).find((c) => c.name === 'v6lab_admin');
  assert.ok(cookie, 'an administrator session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(!cookie.value.includes(S.admin), 'the cookie does not carry the token');

  const card = page.locator(`article.card[data-class="${CLASS}"]`);
  await card.waitFor();
  assert.match(await card.innerText(), /2 ready/);
  await shot(page, '02-dashboard');

  await card.getByRole('link', { name: 'Progress board' }).click();
  await page.waitForURL(`**/classes/${CLASS}`);
  const rows = page.locator('#board-table tbody tr');
  assert.equal(await rows.count(), 2);
  for (const l of S.labs) {
    const row = page.locator(`#board-table tr[data-lab="${l.name}"]`);
    assert.match(await row.innerText(), new RegExp(l.student));
    assert.equal(await row.locator('td[data-exercise]').count(), 2, 'slaac and static-address');
  }
  assert.equal(await page.locator('figure.topology svg').count(), 1, 'the topology picture');
  await shot(page, '03-board');

  // Extend the class from the board (the JSON API, with the session cookie).
  const before = (await api(`/api/classes/${CLASS}`, S.admin)).body.expires;
  await page.locator('#extend-30').click();
  await page.locator('#toast', { hasText: 'now ends at' }).waitFor();
  const after = (await api(`/api/classes/${CLASS}`, S.admin)).body.expires;
  assert.ok(after >= before + 1800, `extended by 30 min (${before} -> ${after})`);
  S.trainer = { ctx, page };

  const sheet = await ctx.newPage();
  await sheet.goto(`${S.base}/classes/${CLASS}/sheet`);
  assert.equal(await sheet.locator('.slip').count(), 2);
  const text = await sheet.locator('.slips').innerText();
  for (const l of S.labs) {
    assert.ok(text.includes(`${S.base}/s/${l.token}`), 'the link of each student');
    assert.ok(text.includes(`ssh -p ${S.sshPort} ${l.student}@127.0.0.1`), 'the SSH command');
  }
  assert.equal(await sheet.locator('.slip .qr svg').count(), 2, 'a QR code per slip');
  await shot(sheet, '04-access-sheet');
  await sheet.close();
});

test('a student opens their link, sees their lab and uses a terminal on a host', async () => {
  const me = S.labs[0];
  const ctx = await S.browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await ctx.newPage();
  await page.goto(`${S.base}/s/${me.token}`);
  await page.waitForURL(`**/labs/${me.name}`);
  assert.ok(!page.url().includes(me.token), 'the token left the address bar');
  const cookie = (await ctx.cookies()).find((c) => c.name === 'v6lab_student');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'a strict, HttpOnly student cookie');

  assert.match(await page.locator('h1').innerText(), new RegExp(me.student));
  for (const n of ['r1', 'h1', 'h2']) {
    await page.locator(`.open-term[data-node="${n}"]`).waitFor();
  }
  assert.match(await page.locator('#ex-slaac').innerText(), /radvd/, 'instructions rendered');
  assert.ok(await page.locator('#ex-slaac code').count() > 0, 'Markdown code spans');

  await page.locator('.open-term[data-node="h1"]').click();
  await page.locator('#term-h1[data-connected="true"]').waitFor({ timeout: 20_000 });
  await typeInTerminal(page, 'h1', 'ip -6 addr\n');
  await until(`h1's planned link-local address ${S.h1LinkLocal}`, 20_000,
    async () => (await termText(page, 'h1')).includes(S.h1LinkLocal));

  // UTF-8 output, and the terminal's size follows the page.
  await typeInTerminal(page, 'h1', "clear; printf '\\342\\234\\223 gr\\303\\274\\303\\237e\\n'; stty size\n");
  await until('UTF-8 text', 10_000, async () => (await termText(page, 'h1')).includes('✓ grüße'));
  const size = async () => {
    const m = (await termText(page, 'h1')).match(/^(\d+) (\d+)$/m);
    return m && { rows: Number(m[1]), cols: Number(m[2]) };
  };
  const wide = await until('stty size', 10_000, size);
  assert.ok(wide.cols !== 80 || wide.rows !== 24,
    `the terminal took the panel's size, not 80x24 (${wide.cols}x${wide.rows})`);
  await page.setViewportSize({ width: 1150, height: 1000 });
  await sleep(500);
  await typeInTerminal(page, 'h1', 'clear; stty size\n');
  await until('a resize to reach the shell', 10_000, async () => {
    const s = await size();
    return s && s.cols < wide.cols;
  });
  await page.setViewportSize({ width: 1440, height: 1000 });

  // Copy and paste with the shortcuts the page shows.
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: S.base });
  await typeInTerminal(page, 'h1', 'clear; echo copy-me-42\n');
  const row = await until('the echoed line', 10_000, async () => {
    const rows = page.locator('.term-box[data-node="h1"] .xterm-rows > div');
    for (let i = 0; i < await rows.count(); i++) {
      if ((await rows.nth(i).innerText()).trim() === 'copy-me-42') return rows.nth(i);
    }
    return null;
  });
  const box = await row.boundingBox();
  await page.mouse.move(box.x + 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + 95, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.keyboard.press('Control+Shift+C');
  await until('the selection on the clipboard', 5000,
    async () => (await page.evaluate(() => navigator.clipboard.readText())) === 'copy-me-42');
  await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((6*7))'));
  await page.locator('.term-box[data-node="h1"]').click();
  await page.keyboard.press('Control+Shift+V');
  await page.keyboard.press('Enter');
  await until('the pasted command to run', 10_000,
    async () => /^pasted-42$/m.test(await termText(page, 'h1')));

  // The terminal takes Tab; a shortcut leaves it, so keyboard users are never trapped.
  await page.keyboard.press('Control+Shift+L');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Copy selection');

  await typeInTerminal(page, 'h1', 'clear; ip -6 addr show dev eth1\n');
  await sleep(500);
  await shot(page, '05-student');
  S.student = { ctx, page };

  const phone = await S.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p2 = await phone.newPage();
  await p2.goto(`${S.base}/s/${me.token}`);
  await p2.waitForURL(`**/labs/${me.name}`);
  await shot(p2, '08-student-phone');
  await phone.close();
});

test('the board turns green after `v6lab solve`, and the student sees it too', async () => {
  const me = S.labs[0];
  const other = S.labs[1];
  const { page: board } = S.trainer;
  const cellOf = (lab, ex) => board.locator(`#board-table tr[data-lab="${lab}"] td[data-exercise="${ex}"]`);
  assert.notEqual(await cellOf(me.name, 'slaac').getAttribute('data-status'), 'passed');

  cli(['solve', me.name, 'slaac']);
  // Updated through the event stream: the page is not reloaded.
  await cellOf(me.name, 'slaac').and(board.locator('[data-status="passed"]'))
    .waitFor({ timeout: 60_000 });
  assert.notEqual(await cellOf(other.name, 'slaac').getAttribute('data-status'), 'passed',
    'only the solved lab turns green');
  await board.locator('.events li', { hasText: 'exercise slaac passes' }).first().waitFor();
  await shot(board, '06-board-green');

  const { page } = S.student;
  await page.locator('#ex-slaac[data-status="passed"]').waitFor({ timeout: 30_000 });
  await page.locator('#check-now').click();
  await page.locator('#toast', { hasText: 'Checked: 1 of 2 exercises pass' }).waitFor({ timeout: 60_000 });
  // h1 now forms its planned SLAAC address from r1's Router Advertisements.
  await until(`h1's planned SLAAC address ${S.h1Slaac}`, 40_000, async () => {
    await typeInTerminal(page, 'h1', 'clear; ip -6 addr show dev eth1\n');
    await sleep(1500);
    return (await termText(page, 'h1')).includes(S.h1Slaac);
  }, 100);
  await shot(page, '05-student');
});

test("a student's session or token opens no other lab's page, data or terminal", async () => {
  const me = S.labs[0];
  const other = S.labs[1];
  const { ctx, page } = S.student;
  const p = await ctx.newPage();
  const r = await p.goto(`${S.base}/labs/${other.name}`);
  assert.equal(r.status(), 403);
  const body = await p.content();
  assert.ok(!body.includes(other.student) && !body.includes(other.token), 'nothing disclosed');
  await shot(p, '07-forbidden');
  const missing = await p.goto(`${S.base}/labs/${CLASS}-nobody`);
  assert.equal(missing.status(), 403, 'the same answer for a lab that does not exist');
  await p.close();

  // In the page, with the student's cookie: the WebSocket never opens.
  const outcome = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => { ws.close(); resolve('open'); };
    ws.onerror = () => resolve('error');
    ws.onclose = () => resolve('closed');
    setTimeout(() => resolve('timeout'), 10_000);
  }), `ws://127.0.0.1:${S.port}/labs/${other.name}/nodes/h1/terminal`);
  assert.notEqual(outcome, 'open');
  assert.notEqual(outcome, 'timeout');

  // The handshake itself is refused before any upgrade: with the cookie, and with the token.
  const cookies = (await ctx.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const origin = { Origin: S.base };
  const byCookie = await handshake(`/labs/${other.name}/nodes/h1/terminal`, { Cookie: cookies, ...origin });
  assert.equal(byCookie.status, 403);
  const byToken = await handshake(`/labs/${other.name}/nodes/h1/terminal`, { Authorization: `Bearer ${me.token}` });
  assert.equal(byToken.status, 403);
  const nobody = await handshake(`/labs/${CLASS}-nobody/nodes/h1/terminal`, { Authorization: `Bearer ${me.token}` });
  assert.deepEqual(nobody, byToken, 'the same refusal whether or not the lab exists');
  const own = await handshake(`/labs/${me.name}/nodes/h1/terminal`, { Cookie: cookies, ...origin });
  assert.equal(own.status, 101, 'the own lab upgrades');
  const foreign = await handshake(`/labs/${me.name}/nodes/h1/terminal`, { Cookie: cookies, Origin: 'http://evil.example' });
  assert.equal(foreign.status, 403, 'another site cannot open a terminal with the cookie');

  // The JSON API: the other lab and its checks are refused, as a missing lab is.
  for (const suffix of ['', '/checks']) {
    const a = await api(`/api/labs/${other.name}${suffix}`, me.token);
    const b = await api(`/api/labs/${CLASS}-nobody${suffix}`, me.token);
    assert.equal(a.status, 403);
    assert.deepEqual(a.body, b.body);
  }
  const fromPage = await page.evaluate(async (u) => (await fetch(u)).status, `/api/labs/${other.name}`);
  assert.equal(fromPage, 403);
  const classes = await page.evaluate(async () => (await fetch('/api/classes')).status);
  assert.equal(classes, 403, 'a student session is no administrator');
  const own2 = await page.evaluate(async (u) => (await fetch(u)).status, `/api/labs/${me.name}`);
  assert.equal(own2, 200);

  // An administrator token never works as a link.
  const adminLink = await fetch(`${S.base}/s/${S.admin}`, { redirect: 'manual' });
  assert.equal(adminLink.status, 404);
  assert.ok(!(adminLink.headers.get('set-cookie') || '').includes('v6lab_admin'));
});

test("another student's link asks before replacing a session; signing out ends it on the server", async () => {
  const [me, other] = S.labs;
  const ctx = await S.browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${S.base}/s/${me.token}`);
  await page.waitForURL(`**/labs/${me.name}`);
  // The other student's link in the same browser: a question first, nothing replaced yet.
  await page.goto(`${S.base}/s/${other.token}`);
  await page.getByRole('heading', { name: 'Open another lab?' }).waitFor();
  assert.match(await page.locator('.message').innerText(), new RegExp(`lab ${me.name}`));
  const status = (u) => page.evaluate(async (x) => (await fetch(x)).status, u);
  assert.equal(await status(`/api/labs/${me.name}`), 200, 'the session is unchanged until the answer');
  await page.getByRole('button', { name: `Open lab ${other.name}` }).click();
  await page.waitForURL(`**/labs/${other.name}`);
  assert.equal(await status(`/api/labs/${me.name}`), 403, 'the previous session was replaced');
  assert.equal(await status(`/api/labs/${other.name}`), 200);
  // Signing out ends the session on the server: a copy of the cookie opens nothing afterwards.
  const cookies = (await ctx.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${S.base}/`);
  const copied = await fetch(`${S.base}/api/labs/${other.name}`, { headers: { Cookie: cookies } });
  assert.equal(copied.status, 401, 'the session ended on the server');
  await ctx.close();
});

test('the terminal closes when the trainer deletes the class', async () => {
  const { page: board } = S.trainer;
  const { page } = S.student;
  await board.goto(`${S.base}/dashboard`);
  board.once('dialog', (d) => d.accept());
  await board.locator(`#delete-${CLASS}`).click();
  await board.locator(`article.card[data-class="${CLASS}"]`).waitFor({ state: 'detached', timeout: 20_000 });
  await page.locator('#term-h1.ended').waitFor({ timeout: 30_000 });
  assert.match(await page.locator('#term-h1 .term-status').innerText(), /closed|ended/i);
  await page.locator('.ended[role="alert"], #status .warn').first().waitFor({ timeout: 30_000 });
  const r = await page.reload();
  assert.equal(r.status(), 401, 'the session ended with the lab');
});
