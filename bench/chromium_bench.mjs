#!/usr/bin/env node
// Reference benchmark: Chromium's data channels (libwebrtc + dcSCTP), two
// RTCPeerConnections in one cross-origin-isolated page, loopback only.
//
// Prints ONE JSON object on stdout with the same keys as `rtcmesh bench --json`
// (plus a few informative extra keys).  Progress and errors go to stderr.
//
// Usage: node bench/chromium_bench.mjs [--chromium /usr/bin/chromium]
//          [--duration 3] [--warmup 0.5] [--rtt-count 2000] [--setup-count 15]
//          [--connections 100] [--quick]
//
// Run it inside a network namespace that has only `lo` (bench/run does that),
// otherwise Chromium may gather candidates on other interfaces.

import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function parseArgs(argv) {
  const o = {
    chromium: '/usr/bin/chromium',
    duration: 3.0,
    warmup: 0.5,
    msgSize: 65536,
    lowWater: 256 * 1024,
    highWater: 1024 * 1024,
    rttCount: 2000,
    rttWarmup: 100,
    rttSize: 100,
    setupCount: 15,
    connections: 100,
    timeout: 120,
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    switch (a) {
      case '--chromium': o.chromium = next(); break;
      case '--duration': o.duration = Number(next()); break;
      case '--warmup': o.warmup = Number(next()); break;
      case '--message-size': o.msgSize = Number(next()); break;
      case '--rtt-count': o.rttCount = Number(next()); break;
      case '--setup-count': o.setupCount = Number(next()); break;
      case '--connections': o.connections = Number(next()); break;
      case '--timeout': o.timeout = Number(next()); break;
      case '--quick':
        o.duration = 1; o.warmup = 0.2; o.rttCount = 300; o.setupCount = 5; o.connections = 20;
        break;
      case '-h': case '--help':
        process.stdout.write(
          'usage: chromium_bench.mjs [--chromium PATH] [--duration S] [--warmup S]\n' +
          '        [--message-size B] [--rtt-count N] [--setup-count N] [--connections N]\n' +
          '        [--timeout S] [--quick]\n');
        process.exit(0);
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  if (o.connections % 2 !== 0) throw new Error('--connections must be even (pairs)');
  return o;
}

// ---------------------------------------------------------------------------
// The page.  Everything WebRTC runs here; Node only drives the steps and reads
// /proc for memory.
const PAGE = String.raw`<!doctype html>
<html><head><meta charset="utf-8"><title>rtcmesh chromium bench</title></head>
<body><script>
'use strict';
const CFG = { iceServers: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(what + ' timed out after ' + ms + ' ms')), ms); }),
  ]).finally(() => clearTimeout(t));
}

// Trickle candidates in memory; queue them until the remote description is set.
// Only UDP candidates on 127.0.0.1 are handed over.
function wireCandidates(from, to) {
  const queue = [];
  from.onicecandidate = (e) => {
    if (!e.candidate) return;
    if (e.candidate.address !== '127.0.0.1' || e.candidate.protocol !== 'udp') return;
    if (to.remoteDescription) to.addIceCandidate(e.candidate).catch(() => {});
    else queue.push(e.candidate);
  };
  return () => { for (const c of queue.splice(0)) to.addIceCandidate(c).catch(() => {}); };
}

// Connect one pair; the time runs from createOffer to "open" on both sides.
async function connectPair(label) {
  const pc1 = new RTCPeerConnection(CFG);
  const pc2 = new RTCPeerConnection(CFG);
  const flushTo2 = wireCandidates(pc1, pc2);
  const flushTo1 = wireCandidates(pc2, pc1);
  const dc1 = pc1.createDataChannel(label, { ordered: true });
  dc1.binaryType = 'arraybuffer';
  const open1 = new Promise((res) => dc1.addEventListener('open', res, { once: true }));
  const open2 = new Promise((res) => {
    pc2.ondatachannel = (e) => {
      const c = e.channel;
      c.binaryType = 'arraybuffer';
      if (c.readyState === 'open') res(c);
      else c.addEventListener('open', () => res(c), { once: true });
    };
  });
  const t0 = performance.now();
  const offer = await pc1.createOffer();
  await pc1.setLocalDescription(offer);
  await pc2.setRemoteDescription(offer);
  flushTo2();
  const answer = await pc2.createAnswer();
  await pc2.setLocalDescription(answer);
  await pc1.setRemoteDescription(answer);
  flushTo1();
  let dc2;
  try {
    [, dc2] = await withTimeout(Promise.all([open1, open2]), 15000, 'connection setup');
  } catch (e) {
    pc1.close(); pc2.close();
    throw e;
  }
  const ms = performance.now() - t0;
  return { pc1, pc2, dc1, dc2, ms };
}

function closePair(p) {
  try { p.dc1.close(); } catch (e) {}
  try { p.dc2.close(); } catch (e) {}
  p.pc1.close();
  p.pc2.close();
}

function runGc() { if (typeof window.gc === 'function') window.gc(); }

const held = [];

window.bench = {
  isolated: () => window.crossOriginIsolated === true,

  // Chromium gathers only default-route addresses (none in a loopback-only
  // namespace) until the page has media permission; a fake microphone grants it.
  async grantMedia() {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const t of s.getTracks()) t.stop();
    return true;
  },

  // Connection setup: n pairs, one after the other, each closed afterwards.
  async setup(n) {
    const ms = [];
    for (let i = 0; i < n; i++) {
      const p = await connectPair('setup' + i);
      ms.push(p.ms);
      closePair(p);
      await sleep(20);
    }
    return ms;
  },

  // Memory: open "pairs" connected pairs with an open channel each, keep them.
  async openMany(pairs) {
    for (let i = 0; i < pairs; i++) held.push(await connectPair('mem' + i));
    // make sure every channel still works (one message each way)
    await Promise.all(held.map((p) => new Promise((res) => {
      p.dc2.onmessage = () => { p.dc2.onmessage = null; res(); };
      p.dc1.send('x');
    })));
    return held.length;
  },
  closeMany() { for (const p of held.splice(0)) closePair(p); },
  gc: runGc,

  // One-way bulk throughput, bufferedAmountLow-driven.
  async throughput(msgSize, low, high, warmupMs, durationMs) {
    const p = await connectPair('bulk');
    const { dc1, dc2 } = p;
    const payload = new ArrayBuffer(msgSize);
    let rx = 0, msgs = 0;
    dc2.onmessage = (e) => { rx += e.data.byteLength; msgs++; };
    dc1.bufferedAmountLowThreshold = low;
    let sending = true;
    const fill = () => {
      while (sending && dc1.readyState === 'open' && dc1.bufferedAmount < high) dc1.send(payload);
    };
    dc1.onbufferedamountlow = fill;
    fill();
    await sleep(warmupMs);
    const rx0 = rx, t0 = performance.now();
    await sleep(durationMs);
    const rx1 = rx, t1 = performance.now();
    sending = false;
    closePair(p);
    if (rx1 === rx0) throw new Error('no data received during the measurement');
    return { MBps: (rx1 - rx0) / ((t1 - t0) / 1000) / 1e6, bytes: rx1 - rx0, seconds: (t1 - t0) / 1000, messages: msgs };
  },

  // Ping-pong RTT of "size"-byte messages; returns the samples in microseconds.
  async rtt(warm, n, size) {
    const p = await connectPair('ping');
    const { dc1, dc2 } = p;
    const msg = new Uint8Array(size);
    dc2.onmessage = (e) => dc2.send(e.data);
    const samples = new Array(n);
    let i = 0, t = 0;
    await withTimeout(new Promise((res) => {
      dc1.onmessage = () => {
        const now = performance.now();
        if (i >= warm) samples[i - warm] = (now - t) * 1000;
        i++;
        if (i >= warm + n) { res(); return; }
        t = performance.now();
        dc1.send(msg);
      };
      t = performance.now();
      dc1.send(msg);
    }), 120000, 'rtt');
    closePair(p);
    return samples;
  },
};
</script></body></html>`;

// ---------------------------------------------------------------------------
// /proc helpers

function readProcs() {
  const procs = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      procs.set(Number(d), { pid: Number(d), ppid, cmdline });
    } catch { /* process went away */ }
  }
  return procs;
}

function rssKB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch { return null; }
}

// All processes of our Chromium instance: the browser process is the one whose
// command line carries our fresh --user-data-dir and no --type=; everything
// else is its descendant.
function chromiumProcesses(userDataDir) {
  const procs = readProcs();
  const roots = [...procs.values()].filter(
    (p) => p.cmdline.includes(`--user-data-dir=${userDataDir}`) && !p.cmdline.includes('--type='));
  const out = new Map();
  const stack = roots.map((r) => r.pid);
  while (stack.length) {
    const pid = stack.pop();
    if (out.has(pid)) continue;
    const p = procs.get(pid);
    if (!p) continue;
    const m = /--type=(\S+)/.exec(p.cmdline);
    out.set(pid, { pid, type: m ? m[1] : 'browser', cmdline: p.cmdline });
    for (const c of procs.values()) if (c.ppid === pid) stack.push(c.pid);
  }
  return out;
}

// CPU seconds (user + system) used so far by every Chromium process.
function chromiumCpuSeconds(userDataDir) {
  const hz = 100;  // USER_HZ on Linux
  let ticks = 0;
  for (const p of chromiumProcesses(userDataDir).values()) {
    try {
      const stat = fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);  // utime, stime
    } catch { /* gone */ }
  }
  return ticks / hz;
}

function snapshotRss(userDataDir) {
  const snap = new Map();
  for (const p of chromiumProcesses(userDataDir).values()) {
    const kb = rssKB(p.pid);
    if (kb !== null) snap.set(p.pid, { ...p, kB: kb });
  }
  return snap;
}

// Same definition everywhere in bench/: linear interpolation between ranks.
function percentile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

const round = (x, d) => (x === null || x === undefined ? null : Number(x.toFixed(d)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`[chromium] ${a.join(' ')}\n`);

// ---------------------------------------------------------------------------

async function main() {
  const opt = parseArgs(process.argv);

  const server = http.createServer((req, res) => {
    if (req.url !== '/' && req.url !== '/index.html') {
      res.writeHead(204, { 'Cross-Origin-Resource-Policy': 'same-origin' });
      res.end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    });
    res.end(PAGE);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtcmesh-chromium-bench-'));
  let context;
  const killTimer = setTimeout(() => {
    log(`overall timeout (${opt.timeout} s)`);
    process.exit(3);
  }, opt.timeout * 1000);
  killTimer.unref();

  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: opt.chromium,
      headless: true,
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--allow-loopback-in-peer-connection',
        '--disable-features=WebRtcHideLocalIpsWithMdns',
        // media permission => Chromium enumerates every interface, including lo
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        // lets the page run a GC before each memory reading; no effect on WebRTC
        '--js-flags=--expose-gc',
      ],
    });
    const version = context.browser()?.version() ?? null;
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => log('page error:', e.message));
    page.on('console', (m) => { if (m.type() === 'error') log('console:', m.text()); });
    await page.goto(url);
    const isolated = await page.evaluate(() => window.bench.isolated());
    if (!isolated) log('warning: page is not cross-origin isolated (performance.now() at 100 us)');
    await page.evaluate(() => window.bench.grantMedia());

    // 1. connection setup
    log(`setup: ${opt.setupCount} connections`);
    const setup = await page.evaluate((n) => window.bench.setup(n), opt.setupCount);

    // 2. memory per connection (renderer process RSS)
    const pairs = opt.connections / 2;
    log(`memory: ${opt.connections} RTCPeerConnections (${pairs} pairs)`);
    await page.evaluate(() => window.bench.gc());
    await sleep(500);
    const before = snapshotRss(userDataDir);
    await page.evaluate((n) => window.bench.openMany(n), pairs);
    await page.evaluate(() => window.bench.gc());
    await sleep(1000);
    const after = snapshotRss(userDataDir);
    await page.evaluate(() => window.bench.closeMany());

    // the page's renderer is the renderer whose RSS grew most
    let renderer = null, allDelta = 0;
    for (const [pid, a] of after) {
      const b = before.get(pid);
      if (!b) continue;
      const d = a.kB - b.kB;
      allDelta += d;
      if (a.type === 'renderer' && (renderer === null || d > renderer.delta)) {
        renderer = { pid, delta: d, before: b.kB, after: a.kB };
      }
    }
    if (!renderer) throw new Error('could not find the renderer process in /proc');

    // 3. bulk throughput
    log(`throughput: ${opt.msgSize}-B messages, ${opt.warmup}+${opt.duration} s`);
    await sleep(200);
    const tp = await page.evaluate(
      ([a, b, c, d, e]) => window.bench.throughput(a, b, c, d, e),
      [opt.msgSize, opt.lowWater, opt.highWater, opt.warmup * 1000, opt.duration * 1000]);

    // 4. round-trip time
    log(`rtt: ${opt.rttWarmup} + ${opt.rttCount} round trips of ${opt.rttSize} B`);
    await sleep(200);
    const rtt = await page.evaluate(
      ([w, n, s]) => window.bench.rtt(w, n, s), [opt.rttWarmup, opt.rttCount, opt.rttSize]);

    const result = {
      throughput_MBps: round(tp.MBps, 2),
      rtt_p50_us: round(percentile(rtt, 0.5), 1),
      rtt_p99_us: round(percentile(rtt, 0.99), 1),
      setup_ms: round(percentile(setup, 0.5), 2),
      setup_p10_ms: round(percentile(setup, 0.1), 2),
      setup_p90_ms: round(percentile(setup, 0.9), 2),
      setup_max_ms: round(Math.max(...setup), 2),
      rss_per_connection_kB: round(renderer.delta / opt.connections, 1),
      // informative extras
      stack: 'chromium',
      version,
      cross_origin_isolated: isolated,
      message_size: opt.msgSize,
      throughput_seconds: round(tp.seconds, 3),
      rtt_count: rtt.length,
      setup_count: setup.length,
      setup_samples_ms: setup.map((x) => round(x, 2)),
      connections: opt.connections,
      renderer_rss_before_kB: renderer.before,
      renderer_rss_after_kB: renderer.after,
      rss_per_connection_all_processes_kB: round(allDelta / opt.connections, 1),
      chromium_cpu_seconds: round(chromiumCpuSeconds(userDataDir), 2),
    };
    // CPU of the whole bench (Chromium's processes are not all reaped by us,
    // so the caller's rusage misses part of it)
    const own = process.cpuUsage();
    result.cpu_seconds = round(result.chromium_cpu_seconds + (own.user + own.system) / 1e6, 2);
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    if (context) await context.close().catch(() => {});
    server.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => { log('error:', e && e.stack ? e.stack : String(e)); process.exit(1); });
