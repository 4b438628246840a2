#!/usr/bin/env node
// The browser client served by the hub, in headless Chromium, meshing with a
// native `rtcmesh peer` through a real hub on 127.0.0.1.
//
//   node web_test.mjs RTCMESH_BINARY CASE
//
// Cases:
//   browser_and_native  two tabs of the hub's page + one `rtcmesh peer --json`:
//                       the 3-peer mesh forms (native offers to tab A, tab B
//                       offers to tab A and to the native peer), chat goes
//                       tab->native, tab->tab and native->tabs, a 3 MB file goes
//                       tab A->native (SHA-256 checked on disk) and another
//                       native->tab B (the page reports ok and the same SHA-256).
//
// Chromium is Debian's /usr/bin/chromium (RTCMESH_CHROMIUM overrides), driven by
// playwright-core from the repository's node_modules; it is never downloaded.
// Run inside a loopback-only network namespace (scripts/netns.sh). Exit 0 on
// pass, 1 on failure (with the state of every participant on stderr).
// RTCMESH_TEST_HUB_CMD replaces the hub command line (development only).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const T0 = Date.now();
const log = (...a) => process.stderr.write(`web_test [${((Date.now() - T0) / 1000).toFixed(1)}s]: ${a.join(' ')}\n`);

const [binary, testCase] = process.argv.slice(2);
if (!binary || !testCase) {
  process.stderr.write('usage: web_test.mjs RTCMESH_BINARY CASE\n');
  process.exit(2);
}

const children = [];
let browser = null;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rtcmesh-web-'));
const diagnostics = [];
const openPages = new Map(); // id -> page, for the state dump on failure

async function cleanup() {
  if (browser) { try { await browser.close(); } catch { /* gone */ } browser = null; }
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGCONT'); // a case that failed while a peer was frozen
      c.kill('SIGTERM');
    }
  }
  await Promise.all(children.map((c) => waitExit(c, 5000).then((ok) => { if (!ok) c.kill('SIGKILL'); })));
  fs.rmSync(tmp, { recursive: true, force: true });
}

function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn (sync or async) until it returns a truthy value.
async function waitFor(what, ms, fn) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); } catch (e) { last = undefined; if (Date.now() > deadline) throw new Error(`${what}: ${e.message}`); }
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

function sha256File(p) {
  return crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

function loadPlaywright() {
  for (const c of [path.resolve(here, '../../node_modules/playwright-core'), 'playwright-core']) {
    try { return require(c); } catch { /* next */ }
  }
  throw new Error('playwright-core not found (run npm ci in the repository root)');
}

// ------------------------------------------------------------------ processes

async function startHub(port = 0) {
  const cmd = process.env.RTCMESH_TEST_HUB_CMD
    ? ['/bin/sh', ['-c', process.env.RTCMESH_TEST_HUB_CMD.replaceAll('{port}', String(port))]]
    : [binary, ['hub', '--listen', `127.0.0.1:${port}`]];
  const hub = spawn(cmd[0], cmd[1], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(hub);
  const lines = readline.createInterface({ input: hub.stderr });
  const url = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the hub did not print its listening line within 10 s')), 10000);
    hub.once('exit', (code) => { clearTimeout(t); reject(new Error(`the hub exited early (code ${code})`)); });
    lines.on('line', (line) => {
      diagnostics.push(`hub: ${line}`);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/) \(signaling (ws:\/\/127\.0\.0\.1:\d+\/signaling)\)/.exec(line);
      if (m) { clearTimeout(t); resolve({ http: m[1], ws: m[2] }); }
    });
  });
  log(`hub at ${url.http}`);
  return { proc: hub, ...url };
}

class NativePeer {
  constructor(hubWs, room, id, env = {}) {
    this.id = id;
    this.events = [];
    this.stderr = [];
    this.downloads = path.join(tmp, `downloads-${id}`);
    this.proc = spawn(binary, ['peer', '--hub', hubWs, '--room', room, '--id', id, '--name', 'Native',
      '--json', '--download-dir', this.downloads], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    children.push(this.proc);
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let ev;
      try { ev = JSON.parse(line); } catch { diagnostics.push(`native stdout (not JSON): ${line}`); return; }
      diagnostics.push(`native: ${line}`);
      this.events.push(ev);
    });
    readline.createInterface({ input: this.proc.stderr }).on('line', (line) => {
      diagnostics.push(`native stderr: ${line}`);
      this.stderr.push(line);
    });
  }

  find(pred) { return this.events.find(pred); }

  write(line) { this.proc.stdin.write(`${line}\n`); }

  channelOpen(peer) {
    // the last channel-open/closed event for that peer decides
    let open = false;
    for (const e of this.events) {
      if (e.peer === peer && e.event === 'channel-open') open = true;
      if (e.peer === peer && e.event === 'channel-closed') open = false;
    }
    return open;
  }
}

// ------------------------------------------------------------------ browser

async function launchBrowser() {
  const { chromium } = loadPlaywright();
  return chromium.launch({
    executablePath: process.env.RTCMESH_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
      // With media permission (auto-granted by the fake UI) Chromium gathers on
      // every interface, loopback included; without it only on the default-route
      // address, which a loopback-only namespace does not have.
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
  });
}

async function openTab(context, hubHttp, room, id, name) {
  const page = await context.newPage();
  openPages.set(id, page);
  page.on('pageerror', (e) => diagnostics.push(`${id} page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') diagnostics.push(`${id} console: ${m.text()}`); });
  const url = `${hubHttp}?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}&peer=${encodeURIComponent(id)}`;
  const resp = await page.goto(url);
  if (!resp || resp.status() !== 200) throw new Error(`GET ${url} answered ${resp ? resp.status() : 'nothing'}`);
  await page.waitForFunction(() => window.rtcmeshApp !== undefined, null, { timeout: 10000 });
  // prefilled from the query
  const fields = await page.evaluate(() => ({ room: document.getElementById('room').value, name: document.getElementById('name').value }));
  if (fields.room !== room || fields.name !== name) throw new Error(`${id}: the form was not prefilled from the URL: ${JSON.stringify(fields)}`);
  await page.evaluate(async () => {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const t of s.getTracks()) t.stop();
  });
  await page.click('#join');
  await page.waitForFunction(() => window.rtcmeshApp.joined, null, { timeout: 10000 });
  log(`${id} joined`);
  return page;
}

const tabPeers = (page) => page.evaluate(() => window.rtcmeshApp.mesh.peers());

async function tabHasOpen(page, others) {
  const list = await tabPeers(page);
  return others.every((o) => list.some((p) => p.peer === o && p.channel === 'open' && p.state === 'connected'));
}

async function tabChats(page) {
  return page.evaluate(() => window.rtcmeshApp.chats.filter((c) => !c.mine));
}

async function sendTabChat(page, text) {
  await page.fill('#chat-input', text);
  await page.click('#chat-send');
}

function writeRandomFile(name, size) {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, crypto.randomBytes(size));
  return { path: p, sha256: sha256File(p), size };
}

// ------------------------------------------------------------------ the case

async function browserAndNative() {
  const room = `web-${crypto.randomBytes(3).toString('hex')}`;
  const hub = await startHub();
  browser = await launchBrowser();
  const context = await browser.newContext({ acceptDownloads: true });
  const pages = {};

  // A first, then the native peer (it offers to A), then B (it offers to A and
  // to the native peer): the browser both offers and answers, with each kind.
  pages['tab-a'] = await openTab(context, hub.http, room, 'tab-a', 'Tab A');
  const native = new NativePeer(hub.ws, room, 'nat-1');
  await waitFor('the native peer to join', 15000, () => native.find((e) => e.event === 'joined'));
  log('native peer joined');
  await waitFor('native <-> tab-a channel', 20000,
    async () => native.channelOpen('tab-a') && tabHasOpen(pages['tab-a'], ['nat-1']));
  pages['tab-b'] = await openTab(context, hub.http, room, 'tab-b', 'Tab B');

  await waitFor('the 3-peer mesh', 30000, async () =>
    native.channelOpen('tab-a') && native.channelOpen('tab-b')
      && await tabHasOpen(pages['tab-a'], ['nat-1', 'tab-b'])
      && await tabHasOpen(pages['tab-b'], ['nat-1', 'tab-a']));
  log('mesh formed');

  // hello was exchanged both ways on every channel
  for (const [id, page] of Object.entries(pages)) {
    const agents = await page.evaluate(() => window.rtcmeshApp.mesh.peers().map((p) => [p.peer, p.agent]));
    for (const [p, agent] of agents) if (!agent) throw new Error(`${id} got no hello from ${p}`);
  }

  // getStats: pair type and RTT appear in peers()
  const stats = await waitFor('candidate pair and RTT in tab-a peers()', 10000, async () => {
    const list = await tabPeers(pages['tab-a']);
    return list.every((p) => p.pair && typeof p.rtt_ms === 'number') ? list : null;
  });
  for (const p of stats) {
    if (p.pair !== 'host/host') throw new Error(`tab-a -> ${p.peer}: expected a host/host pair, got ${p.pair}`);
  }
  log(`tab-a peers: ${stats.map((p) => `${p.peer} ${p.state} ${p.pair} ${p.rtt_ms} ms`).join(', ')}`);

  // ---- chat
  const nonce = crypto.randomBytes(4).toString('hex');
  const fromA = `hello from tab A ${nonce} \u00e9\u4e2d`;
  await sendTabChat(pages['tab-a'], fromA);
  await waitFor('tab A chat at the native peer', 10000,
    () => native.find((e) => e.event === 'chat' && e.from === 'tab-a' && e.text === fromA && e.relayed === false));
  await waitFor('tab A chat at tab B', 10000,
    async () => (await tabChats(pages['tab-b'])).some((c) => c.from === 'tab-a' && c.text === fromA && !c.relayed));
  const fromB = `hello from tab B ${nonce}`;
  await sendTabChat(pages['tab-b'], fromB);
  await waitFor('tab B chat at tab A', 10000,
    async () => (await tabChats(pages['tab-a'])).some((c) => c.from === 'tab-b' && c.text === fromB));
  await waitFor('tab B chat at the native peer', 10000,
    () => native.find((e) => e.event === 'chat' && e.from === 'tab-b' && e.text === fromB));
  const fromNative = `hello from native ${nonce}`;
  native.write(fromNative);
  for (const id of ['tab-a', 'tab-b']) {
    await waitFor(`native chat at ${id}`, 10000,
      async () => (await tabChats(pages[id])).some((c) => c.from === 'nat-1' && c.text === fromNative && !c.relayed));
  }
  log('chat ok in every direction');

  // ---- file tab A -> native, through the page's file picker
  const f1 = writeRandomFile('from-tab.bin', 3 * 1000 * 1000 + 123);
  // Tab B was opened last: tab A is a background page, where Chromium throttles
  // animation frames and Playwright's click waited ~1.8 s for them.
  await pages['tab-a'].bringToFront();
  const tSend = Date.now();
  await pages['tab-a'].setInputFiles('#file-input', f1.path);
  await pages['tab-a'].selectOption('#file-peer', 'nat-1');
  await pages['tab-a'].click('#file-send');
  const got = await waitFor('the file at the native peer', 30000,
    () => native.find((e) => e.event === 'file-received' && e.from === 'tab-a'));
  if (!got.ok) throw new Error(`native peer reports a failed transfer: ${JSON.stringify(got)}`);
  if (got.size !== f1.size || got.sha256 !== f1.sha256) throw new Error(`native peer got ${got.size} B ${got.sha256}, sent ${f1.size} B ${f1.sha256}`);
  if (path.basename(got.path) !== 'from-tab.bin') throw new Error(`saved under an unexpected name: ${got.path}`);
  const onDisk = sha256File(got.path);
  if (onDisk !== f1.sha256) throw new Error(`file on disk has sha256 ${onDisk}, sent ${f1.sha256}`);
  const sentA = await waitFor('tab A to see file-result', 10000,
    () => pages['tab-a'].evaluate(() => window.rtcmeshApp.sent.find((s) => s.to === 'nat-1')));
  if (!sentA.ok || sentA.sha256 !== f1.sha256) throw new Error(`tab A reports ${JSON.stringify(sentA)}`);
  log(`tab A -> native: ${f1.size} B in ${((Date.now() - tSend) / 1000).toFixed(2)} s (${sentA.seconds} s in the page), sha256 ok on disk`);

  // ---- file native -> tab B, via the native peer's /send
  const f2 = writeRandomFile('from-native.bin', 3 * 1000 * 1000 + 77);
  const tRecv = Date.now();
  native.write(`/send tab-b ${f2.path}`);
  const rec = await waitFor('the file at tab B', 30000,
    () => pages['tab-b'].evaluate(() => window.rtcmeshApp.received.find((r) => r.from === 'nat-1')));
  if (!rec.ok || rec.sha256 !== f2.sha256 || rec.size !== f2.size || rec.name !== 'from-native.bin') {
    throw new Error(`tab B reports ${JSON.stringify(rec)}, expected ${f2.size} B ${f2.sha256}`);
  }
  const sentN = await waitFor('file-sent at the native peer', 10000,
    () => native.find((e) => e.event === 'file-sent' && e.to === 'tab-b'));
  if (!sentN.ok || sentN.sha256 !== f2.sha256) throw new Error(`native peer reports ${JSON.stringify(sentN)}`);
  // the page offers the download link; it yields the same bytes
  const link = await pages['tab-b'].evaluate((id) => {
    const a = document.querySelector(`#received li[data-id="${id}"] a`);
    return a ? { href: a.href, download: a.download } : null;
  }, rec.id);
  if (!link || !link.href.startsWith('blob:') || link.download !== 'from-native.bin') throw new Error(`no download link: ${JSON.stringify(link)}`);
  const linkSha = await pages['tab-b'].evaluate(async (href) => {
    const buf = new Uint8Array(await (await fetch(href)).arrayBuffer());
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    return [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
  }, link.href);
  if (linkSha !== f2.sha256) throw new Error(`the download link holds sha256 ${linkSha}, sent ${f2.sha256}`);
  log(`native -> tab B: ${f2.size} B in ${((Date.now() - tRecv) / 1000).toFixed(2)} s, page reports ok, link bytes match`);

  // the pages raised no error
  for (const [id, page] of Object.entries(pages)) {
    const errs = await page.evaluate(() => window.rtcmeshApp.errors);
    if (errs.length) log(`${id} client errors (not fatal): ${errs.join(' | ')}`);
  }
  native.write('/quit');
  await waitExit(native.proc, 5000);
}

// Two tabs only (no native peer): the browser against itself.
async function twoTabs() {
  const room = `web-${crypto.randomBytes(3).toString('hex')}`;
  const hub = await startHub();
  browser = await launchBrowser();
  const context = await browser.newContext();
  const a = await openTab(context, hub.http, room, 'tab-a', 'Tab A');
  const b = await openTab(context, hub.http, room, 'tab-b', 'Tab B');
  await waitFor('the two tabs to connect', 20000, async () => (await tabHasOpen(a, ['tab-b'])) && (await tabHasOpen(b, ['tab-a'])));
  await sendTabChat(a, 'ping from a');
  await sendTabChat(b, 'pong from b');
  await waitFor('chat a->b', 10000, async () => (await tabChats(b)).some((c) => c.from === 'tab-a' && c.text === 'ping from a'));
  await waitFor('chat b->a', 10000, async () => (await tabChats(a)).some((c) => c.from === 'tab-b' && c.text === 'pong from b'));
  const f = writeRandomFile('tab-to-tab.bin', 5 * 1024 * 1024 + 3);
  const t0 = Date.now();
  await b.setInputFiles('#file-input', f.path);
  await b.selectOption('#file-peer', 'tab-a');
  await b.click('#file-send');
  const rec = await waitFor('the file at tab A', 30000,
    () => a.evaluate(() => window.rtcmeshApp.received.find((r) => r.from === 'tab-b')));
  if (!rec.ok || rec.sha256 !== f.sha256 || rec.size !== f.size) throw new Error(`tab A reports ${JSON.stringify(rec)}, expected ${f.size} B ${f.sha256}`);
  const sent = await waitFor('file-result at tab B', 10000, () => b.evaluate(() => window.rtcmeshApp.sent.find((s) => s.to === 'tab-a')));
  if (!sent.ok) throw new Error(`tab B reports ${JSON.stringify(sent)}`);
  log(`tab B -> tab A: ${f.size} B in ${((Date.now() - t0) / 1000).toFixed(2)} s, sha256 ok`);
}

// The hub goes away and comes back on the same port: the tabs keep their data
// channel meanwhile (chat still flows), reconnect with backoff, rejoin, and keep
// the same connection (no new session) once the hub is back.
async function hubRestart() {
  const room = `web-${crypto.randomBytes(3).toString('hex')}`;
  let hub = await startHub();
  const port = Number(new URL(hub.http).port);
  browser = await launchBrowser();
  const context = await browser.newContext();
  const a = await openTab(context, hub.http, room, 'tab-a', 'Tab A');
  const b = await openTab(context, hub.http, room, 'tab-b', 'Tab B');
  await waitFor('the two tabs to connect', 20000, async () => (await tabHasOpen(a, ['tab-b'])) && (await tabHasOpen(b, ['tab-a'])));
  const session = (await tabPeers(a))[0].session;

  hub.proc.kill('SIGTERM');
  if (!(await waitExit(hub.proc, 10000))) throw new Error('the hub did not exit within 10 s of SIGTERM');
  log(`hub stopped (exit ${hub.proc.exitCode ?? hub.proc.signalCode})`);
  for (const [id, page] of [['tab-a', a], ['tab-b', b]]) {
    await waitFor(`${id} to notice the hub is gone`, 10000,
      () => page.evaluate(() => window.rtcmeshApp.mesh.hubState !== 'connected'));
  }
  await sendTabChat(a, 'while the hub is down');
  await waitFor('chat a->b without a hub', 10000,
    async () => (await tabChats(b)).some((c) => c.from === 'tab-a' && c.text === 'while the hub is down'));

  hub = await startHub(port);
  for (const [id, page] of [['tab-a', a], ['tab-b', b]]) {
    await waitFor(`${id} to rejoin`, 20000, () => page.evaluate(() => window.rtcmeshApp.mesh.hubState === 'connected'));
  }
  await waitFor('both tabs in the new hub\'s room', 10000, async () =>
    (await tabPeers(a)).some((p) => p.peer === 'tab-b' && p.inRoom) && (await tabPeers(b)).some((p) => p.peer === 'tab-a' && p.inRoom));
  // let any (wrong) renegotiation happen before looking
  await sleep(1500);
  const after = await tabPeers(a);
  if (after.length !== 1 || after[0].session !== session || after[0].channel !== 'open') {
    throw new Error(`the connection did not survive the hub restart: before ${session}, after ${JSON.stringify(after)}`);
  }
  await sendTabChat(b, 'after the restart');
  await waitFor('chat b->a after the restart', 10000,
    async () => (await tabChats(a)).some((c) => c.from === 'tab-b' && c.text === 'after the restart'));
  const reconnects = await a.evaluate(() => window.rtcmeshApp.mesh.counters.reconnects);
  log(`the connection survived the hub restart (session ${session}; tab-a reconnect attempts: ${reconnects})`);
}

// The native peer frozen (SIGSTOP) while connected to a tab (protocol 2.4). 'aa-native'
// sorts before 'tab-a': the native peer is the impolite side, the tab waits for it. The
// native peer stays frozen until the tab has seen the connection disconnected for longer
// than the 10 s after which an impolite side would restart (the tab must not); thawed,
// the native peer either finds its connection working again (same session) or, if its
// ICE agent declared the connection failed meanwhile (consent freshness), offers a new
// session at once. Either way: one connection, one open channel, chat both ways.
async function nativeStopped() {
  const room = `web-${crypto.randomBytes(3).toString('hex')}`;
  const hub = await startHub();
  browser = await launchBrowser();
  const context = await browser.newContext();
  const tab = await openTab(context, hub.http, room, 'tab-a', 'Tab A');
  const native = new NativePeer(hub.ws, room, 'aa-native', { RTCMESH_LOG: process.env.NATIVE_LOG || 'info' });
  await waitFor('native <-> tab channel', 20000, async () => native.channelOpen('tab-a') && tabHasOpen(tab, ['aa-native']));
  const session = (await tabPeers(tab))[0].session;
  const conn = (page) => page.evaluate(() => {
    const c = window.rtcmeshApp.mesh.conns.get('aa-native');
    return c ? { state: c.pc.connectionState, signaling: c.pc.signalingState, restarting: c.restarting, session: c.session } : null;
  });

  native.proc.kill('SIGSTOP');
  const tStop = Date.now();
  await waitFor('the tab to see the connection disconnected', 15000,
    async () => ['disconnected', 'failed'].includes((await conn(tab))?.state));
  const tDisconnected = Date.now();
  log(`tab: connection ${(await conn(tab)).state} ${((tDisconnected - tStop) / 1000).toFixed(1)} s after SIGSTOP`);
  await sleep(11000); // past the 10 s of 2.4
  const polite = await conn(tab);
  if (polite.restarting || polite.signaling !== 'stable' || polite.session !== session) {
    throw new Error(`the polite tab started a restart itself: ${JSON.stringify(polite)}`);
  }
  native.proc.kill('SIGCONT');
  const tCont = Date.now();
  await waitFor('the pair connected again', 15000, async () => {
    const rows = await tabPeers(tab);
    return rows.length === 1 && rows[0].state === 'connected' && rows[0].channel === 'open' && native.channelOpen('tab-a');
  });
  const after = (await tabPeers(tab))[0].session;
  log(`connected again ${((Date.now() - tCont) / 1000).toFixed(1)} s after SIGCONT, ${after === session ? 'same session' : 'new session'}`);
  await sendTabChat(tab, 'after the freeze');
  await waitFor('chat tab -> native', 10000,
    () => native.find((e) => e.event === 'chat' && e.from === 'tab-a' && e.text === 'after the freeze' && !e.relayed));
  native.write('native after the freeze');
  await waitFor('chat native -> tab', 10000,
    async () => (await tabChats(tab)).some((c) => c.from === 'aa-native' && c.text === 'native after the freeze' && !c.relayed));
  await sleep(1000); // a late duplicate offer would show now
  const rows = await tabPeers(tab);
  if (rows.length !== 1 || rows[0].channel !== 'open' || rows[0].session !== after) {
    throw new Error(`not one stable connection: ${JSON.stringify(rows)}`);
  }
  const opened = native.events.filter((e) => e.event === 'channel-open').length;
  const closed = native.events.filter((e) => e.event === 'channel-closed').length;
  if (after === session ? opened !== 1 || closed !== 0 : opened !== 2 || closed !== 1) {
    throw new Error(`native: ${opened} channel-open, ${closed} channel-closed events for ${after === session ? 'the same' : 'a new'} session`);
  }
  log(`one connection (session ${after}), chat both ways`);
}

const cases = { browser_and_native: browserAndNative, two_tabs: twoTabs, hub_restart: hubRestart, native_stopped: nativeStopped };

async function main() {
  const fn = cases[testCase];
  if (!fn) {
    process.stderr.write(`web_test: unknown case ${testCase} (known: ${Object.keys(cases).join(', ')})\n`);
    process.exit(2);
  }
  let code = 0;
  try {
    await fn();
    log(`${testCase}: pass`);
  } catch (e) {
    code = 1;
    log(`${testCase}: FAIL: ${e.message}`);
    process.stderr.write(`---- diagnostics (last 200)\n${diagnostics.slice(-200).join('\n')}\n`);
    for (const [id, page] of openPages) {
      try {
        const st = await page.evaluate(() => ({
          hub: window.rtcmeshApp.mesh.hubState,
          peers: window.rtcmeshApp.mesh.peers(),
          incoming: [...window.rtcmeshApp.mesh.files.incoming.values()].map((t) => ({ peer: t.peer, id: t.id, name: t.name, size: t.size, received: t.received, channel: t.channel ? t.channel.readyState : null })),
          received: window.rtcmeshApp.received,
          sent: window.rtcmeshApp.sent,
          errors: window.rtcmeshApp.errors,
        }));
        process.stderr.write(`---- ${id} state: ${JSON.stringify(st)}\n`);
      } catch (err) {
        process.stderr.write(`---- ${id} state unavailable: ${err.message}\n`);
      }
    }
  }
  await cleanup();
  process.exit(code);
}

main();
