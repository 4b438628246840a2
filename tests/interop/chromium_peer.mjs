#!/usr/bin/env node
// Chromium (Debian /usr/bin/chromium, driven by playwright-core) implementation
// of the `rtcmesh connect` interop protocol. See aiortc_peer.py for the
// protocol; this peer takes the same flags:
//
//   node chromium_peer.mjs [connect] (--offer | --answer) [--label L] [--protocol P] [--unordered]
//        [--max-retransmits N | --max-packet-life-time MS] [--negotiated-id N] [--echo]
//        [--ice-server URL]... [--ice-username U] [--ice-credential C] [--relay-only] [--loopback]
//        [--selftest [--close-after | --expect-remote-close]] [--timeout S]
//
// The RTCPeerConnection lives in a headless page; node bridges stdin/stdout and
// the page over playwright (page.evaluate one way, exposeFunction the other).
// Non-trickle: the description is printed once iceGatheringState is complete.
// --loopback keeps only the UDP 127.0.0.1 candidates in the printed description.
// --selftest sends text and binary messages of 0 B, 1 B, 64 KiB and 256 KiB
// (sizes above the connection's maxMessageSize are skipped and listed) to a
// remote running --echo and checks type and bytes; the result is one JSON line
// on stdout, exit 0 on pass and 1 on fail. On a partially reliable channel a
// case whose echo is missing after 2 s is re-sent with fresh content (up to 5
// attempts, "resent" in the result): Chromium-to-Chromium on loopback loses the
// first 256 KiB message fairly often once the congestion window has grown.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import {
  filterLoopback, makeOutput, parseConnectArgs, parseIceServerUrl, readDescription, StdinLines, withTimeout,
} from './peerlib.mjs';
import { pageMain } from './browser_page.mjs';

const NAME = 'chromium-peer';
const PAGE_URL = 'http://localhost/rtcmesh-interop-peer';
const require = createRequire(import.meta.url);

const { log, status, outLine, outJson } = makeOutput(NAME);

function loadPlaywright() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    path.resolve(here, '../../node_modules/playwright-core'),
    'playwright-core',
  ];
  for (const c of candidates) {
    try { return require(c); } catch { /* next */ }
  }
  throw new Error('playwright-core not found (run npm ci in the repository root)');
}


// ---------------------------------------------------------------- node side

async function main() {
  const opts = parseConnectArgs(process.argv.slice(2), { name: 'chromium_peer.mjs', selftest: true });
  const pageOpts = {
    role: opts.role, label: opts.label, protocol: opts.protocol, unordered: opts.unordered,
    maxRetransmits: opts.maxRetransmits, maxPacketLifeTime: opts.maxPacketLifeTime,
    negotiatedId: opts.negotiatedId, echo: opts.echo, relayOnly: opts.relayOnly,
    iceServers: opts.iceServers.map((u) => parseIceServerUrl(u, opts.iceUsername, opts.iceCredential)), timeout: opts.timeout,
    closeAfter: opts.closeAfter, expectRemoteClose: opts.expectRemoteClose,
  };
  const t0 = Date.now();
  const stdin = new StdinLines();
  const { chromium } = loadPlaywright();

  let browser = null;
  let exiting = false;
  const finish = async (code) => {
    if (exiting) return;
    exiting = true;
    if (browser) {
      try { await withTimeout(browser.close(), 5, 'closing the browser'); } catch (e) { log(`warning: ${e.message}`); }
    }
    process.exit(code);
  };

  // state driven by page events
  let opened = false;
  let closed = false;
  let failed = false;
  let onChange = () => {};
  const changed = () => { const f = onChange; onChange = () => {}; f(); };
  const waitChange = () => new Promise((r) => { onChange = r; });
  let selftesting = false;

  // page events arrive in order thanks to the sequence number
  let nextSeq = 0;
  const pending = new Map();
  const handleEvent = (type, a, b) => {
    switch (type) {
      case 'open':
        if (!opened) { opened = true; status(`channel open label=${a} id=${b}`); }
        break;
      case 'closed': closed = true; break;
      case 'failed': failed = true; break;
      case 'state': log(`connection state ${a}`); break;
      case 'log': log(a); break;
      case 'text': outLine(a); break;
      case 'binary': outLine(`binary:${a}`); break;
      case 'checked': outJson({ selftest: 'checked', checked: a }); break;
      default: log(`unknown page event ${type}`);
    }
    changed();
  };

  let stopRequested = false;
  const onSignal = () => { stopRequested = true; changed(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let page;
  try {
    browser = await chromium.launch({
      executablePath: process.env.RTCMESH_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      timeout: opts.timeout * 1000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
        // With media permission (auto-granted by the fake UI) on a secure
        // origin, Chromium enumerates all interfaces, loopback included;
        // without it, it gathers only on the default-route address, which a
        // loopback-only network namespace does not have.
        '--use-fake-ui-for-media-stream'],
    });
    const tLaunch = Date.now() - t0;
    browser.on('disconnected', () => { if (!exiting) { log('error: the browser went away'); process.exit(1); } });
    page = await browser.newPage();
    page.on('crash', () => { log('error: the page crashed'); process.exit(1); });
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    await page.exposeFunction('__rtEvent', (seq, type, a, b) => {
      pending.set(seq, [type, a, b]);
      while (pending.has(nextSeq)) {
        const ev = pending.get(nextSeq);
        pending.delete(nextSeq);
        nextSeq++;
        handleEvent(...ev);
      }
    });
    // http://localhost is a secure context; the request never leaves the
    // browser (answered by page.route, no server).
    await page.route(PAGE_URL, (route) => route.fulfill({
      status: 200, contentType: 'text/html', body: '<!doctype html><title>rtcmesh interop peer</title>',
    }));
    await page.goto(PAGE_URL);
    await page.evaluate(`(${pageMain.toString()})()`);
    log(`browser ready after ${Date.now() - t0} ms (playwright loaded + chromium launched at ${tLaunch} ms)`);

    let remoteSdp;
    if (opts.role === 'offer') {
      let sdp = await withTimeout(page.evaluate((o) => window.__rt.offer(o), pageOpts), opts.timeout, 'creating the offer');
      if (opts.loopback) sdp = filterLoopback(sdp, log);
      outJson({ type: 'offer', sdp });
      log(`offer printed after ${Date.now() - t0} ms`);
      remoteSdp = await readDescription(stdin, 'answer', opts.timeout);
      await page.evaluate((s) => window.__rt.acceptAnswer(s), remoteSdp);
    } else {
      remoteSdp = await readDescription(stdin, 'offer', opts.timeout);
      const t1 = Date.now();
      let sdp = await withTimeout(page.evaluate(([o, s]) => window.__rt.answer(o, s), [pageOpts, remoteSdp]),
        opts.timeout, 'creating the answer');
      if (opts.loopback) sdp = filterLoopback(sdp, log);
      outJson({ type: 'answer', sdp });
      log(`answer printed ${Date.now() - t1} ms after the offer arrived`);
    }

    const openDeadline = Date.now() + opts.timeout * 1000;
    while (!opened) {
      if (stopRequested) { log('interrupted before the channel opened'); return finish(0); }
      if (failed) throw new Error('connection failed before the channel opened');
      if (closed) throw new Error('channel closed before it opened');
      const left = openDeadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the channel to open');
      const w = waitChange();
      await Promise.race([w, new Promise((r) => setTimeout(r, Math.min(left, 200)))]);
    }
  } catch (e) {
    log(`error: ${e.message}`);
    return finish(1);
  }

  // ---- channel open: bridge lines / run the selftest
  let exitCode = 0;
  let localClose = false;
  let selftestPromise = null;
  let selftestDone = false;
  let selftestResult = null;
  if (opts.selftest) {
    selftesting = true;
    selftestPromise = page.evaluate((ms) => window.__rt.selftest(ms), opts.timeout * 1000)
      .catch((e) => ({ selftest: 'fail', reason: `page: ${e.message}` }))
      .then((r) => { selftestDone = true; selftestResult = r; changed(); return r; });
  }

  let stdinLine = null;
  let stdinEof = false;
  let stdinWaiting = false;
  const pullStdin = () => {
    if (stdinWaiting || stdinEof) return;
    stdinWaiting = true;
    stdin.next().then((l) => { stdinWaiting = false; stdinLine = l; if (l === null) stdinEof = true; changed(); });
  };

  try {
    for (;;) {
      if (selftestDone) {
        outJson(selftestResult);
        exitCode = selftestResult.selftest === 'pass' ? 0 : 1;
        localClose = true;
        break;
      }
      if (closed) {
        if (selftesting) { await selftestPromise; continue; }
        break;
      }
      if (failed) {
        log('error: connection failed');
        if (selftesting) outJson({ selftest: 'fail', reason: 'connection failed' });
        exitCode = 1;
        break;
      }
      if (stopRequested) { localClose = true; break; }
      if (stdinLine !== null) {
        const line = stdinLine;
        stdinLine = null;
        const s = line.toString('utf8');
        if (s.startsWith('binary:')) {
          const b = s.slice(7);
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b) || b.length % 4 !== 0) {
            log("error: bad base64 after 'binary:' on stdin, line ignored");
          } else {
            await page.evaluate(([k, d]) => window.__rt.send(k, d), ['binary', b]);
          }
        } else {
          await page.evaluate(([k, d]) => window.__rt.send(k, d), ['text', s]);
        }
        continue;
      }
      if (stdinEof && !selftesting) { localClose = true; break; }
      const w = waitChange();
      pullStdin();
      if (stdinLine !== null || (stdinEof && !selftesting)) continue;
      await w;
    }

    if (localClose && !closed) {
      const acked = await withTimeout(page.evaluate(() => window.__rt.close()), 20, 'closing the channel');
      if (!acked) {
        // read by pair.py, which fails the pair on any 'interop-check:' line
        process.stderr.write('interop-check: our channel close was not completed within 5 s: the remote did ' +
          'not reset its outgoing stream in turn (RFC 8831 section 6.7), so no close event fired here\n');
      }
    } else {
      await page.evaluate(() => window.__rt.pc && window.__rt.pc.close());
    }
  } catch (e) {
    log(`error: ${e.message}`);
    exitCode = 1;
  }
  status('channel closed');
  return finish(exitCode);
}

main().catch((e) => { log(`error: ${e && e.stack ? e.stack : e}`); process.exit(1); });
