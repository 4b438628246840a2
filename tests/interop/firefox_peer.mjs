#!/usr/bin/env node
// Firefox (Debian /usr/bin/firefox-esr, driven by puppeteer-core over WebDriver
// BiDi) implementation of the `rtcmesh connect` interop protocol. See
// aiortc_peer.py for the protocol; this peer takes the same flags as
// chromium_peer.mjs, without --selftest:
//
//   node firefox_peer.mjs [connect] (--offer | --answer) [--label L] [--protocol P] [--unordered]
//        [--max-retransmits N | --max-packet-life-time MS] [--negotiated-id N] [--echo]
//        [--ice-server URL]... [--ice-username U] [--ice-credential C] [--relay-only] [--loopback]
//        [--timeout S]
//
// The RTCPeerConnection lives in a headless about:blank page; node bridges
// stdin/stdout and the page over BiDi (page.evaluate one way, exposeFunction
// the other). Non-trickle: the description is printed once iceGatheringState
// is complete. --echo sends every received message back with the same type.
//
// Firefox gathers nothing in a namespace that has only loopback or no default
// route (it thinks it is offline), and it gathers only on the default-route
// interface, never on 127.0.0.1: run it in a namespace with an address and a
// default route, e.g. pair.py --isolate-veth (10.66.0.1 on rtm0). --loopback
// keeps only the UDP host candidates on loopback or, when Firefox gathered
// none there (always, so far), all UDP host candidates: an rtcmesh --loopback
// on 127.0.0.1 reaches 10.66.0.1 over lo, and Firefox accepts the remote
// 127.0.0.1 candidate thanks to media.peerconnection.ice.loopback.
// Each run gets a fresh temporary profile, removed at exit; Firefox is killed
// whenever this process exits. RTCMESH_FIREFOX overrides the executable.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  makeOutput, parseConnectArgs, parseIceServerUrl, StdinLines, withTimeout, readDescription,
} from './peerlib.mjs';
import { pageMain } from './browser_page.mjs';

const NAME = 'firefox-peer';
const require = createRequire(import.meta.url);
const { log, status, outLine, outJson } = makeOutput(NAME);

function loadPuppeteer() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../node_modules/puppeteer-core'), 'puppeteer-core'];
  for (const c of candidates) {
    try { return require(c); } catch { /* next */ }
  }
  throw new Error('puppeteer-core not found (run npm ci in the repository root)');
}

// --loopback: UDP host candidates on loopback if there are any, else all UDP
// host candidates (Firefox gathers only on the default-route interface).
function filterLoopback(sdp) {
  const lines = sdp.split('\r\n');
  const isCand = (l) => l.startsWith('a=candidate:');
  const fields = (l) => l.split(' ');
  const isUdpHost = (l) => { const f = fields(l); return f[2].toLowerCase() === 'udp' && f[7] === 'host'; };
  const isLoop = (l) => isUdpHost(l) && (fields(l)[4] === '127.0.0.1' || fields(l)[4] === '::1');
  let keep = lines.some((l) => isCand(l) && isLoop(l)) ? isLoop : isUdpHost;
  if (!lines.some((l) => isCand(l) && keep(l))) {
    log('warning: --loopback but no UDP host candidate was gathered; keeping all candidates');
    keep = () => true;
  } else if (keep === isUdpHost) {
    log('--loopback: no loopback candidate (Firefox gathers none there); keeping the UDP host candidates');
  }
  return lines.filter((l) => !isCand(l) || keep(l)).join('\r\n');
}

function checkCandidates(sdp) {
  if (!/^a=candidate:/m.test(sdp)) {
    log('warning: Firefox gathered no ICE candidates: it needs an interface other than loopback and a ' +
      'default route (it thinks it is offline otherwise); run it under pair.py --isolate-veth');
  }
  return sdp;
}


// ---------------------------------------------------------------- browser

// Prefs for a headless Firefox that talks WebRTC inside a private network
// namespace (nothing here lets a packet leave it).
const FIREFOX_PREFS = {
  // Needed: host candidates with real addresses; with mDNS .local names
  // (the default) rtcmesh has nothing to check against and ICE fails.
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  // Needed: without it Firefox drops rtcmesh's 127.0.0.1 candidate and
  // never connects.
  'media.peerconnection.ice.loopback': true,
  // Firefox's link service calls a namespace without a default route
  // offline, and an offline Firefox gathers no candidates. With
  // --isolate-veth's default route it is online either way; this keeps
  // the link service out of the picture.
  'network.manage-offline-status': false,
  // defaults, spelled out: every host address, no proxy, no TURN-only
  'media.peerconnection.ice.default_address_only': false,
  'media.peerconnection.ice.proxy_only': false,
  'media.peerconnection.ice.relay_only': false,
  'network.proxy.type': 0,
  // nothing in the background (there is no network to talk to anyway)
  'app.update.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'toolkit.telemetry.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'extensions.update.enabled': false,
  'browser.search.update': false,
};

function firefoxExecutable() {
  const exe = process.env.RTCMESH_FIREFOX || '/usr/bin/firefox-esr';
  if (!existsSync(exe)) {
    throw new Error(`${exe} not found (apt-get install firefox-esr, or set RTCMESH_FIREFOX)`);
  }
  return exe;
}

// Firefox runs in a process group of its own and outlives a node that is
// SIGKILLed (pair.py's cleanup, a ctest timeout). setpriv --pdeathsig makes
// the kernel kill it when this process goes, however that happens.
function launchCommand(exe, profile) {
  const firefoxArgs = ['--profile', profile, '--headless', 'about:blank'];
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  if (!setpriv) {
    log('warning: no setpriv (util-linux): Firefox survives this process if it is SIGKILLed');
    return { executablePath: exe, args: firefoxArgs };
  }
  return { executablePath: setpriv, args: ['--pdeathsig', 'KILL', exe, ...firefoxArgs] };
}

// Profiles of runs that were SIGKILLed (so their 'exit' handler never ran):
// rtcmesh-firefox-<pid>-* whose process is gone.
const PROFILE_PREFIX = 'rtcmesh-firefox-';
function removeStaleProfiles() {
  let names = [];
  try { names = readdirSync(os.tmpdir()); } catch { return; }
  for (const name of names) {
    const m = new RegExp(`^${PROFILE_PREFIX}(\\d+)-`).exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue;  // still running (or a pid we may not signal): leave it
    } catch (e) {
      if (e.code !== 'ESRCH') continue;
    }
    try { rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true }); } catch { /* next */ }
  }
}

// ---------------------------------------------------------------- node side

async function main() {
  const opts = parseConnectArgs(process.argv.slice(2), { name: NAME });
  const pageOpts = {
    role: opts.role, label: opts.label, protocol: opts.protocol, unordered: opts.unordered,
    maxRetransmits: opts.maxRetransmits, maxPacketLifeTime: opts.maxPacketLifeTime,
    negotiatedId: opts.negotiatedId, echo: opts.echo, relayOnly: opts.relayOnly,
    iceServers: opts.iceServers.map((u) => parseIceServerUrl(u, opts.iceUsername, opts.iceCredential)),
    timeout: opts.timeout,
  };
  const t0 = Date.now();
  const stdin = new StdinLines();

  let browser = null;
  let browserPid = null;
  let profileDir = null;
  let exiting = false;
  // Whatever way this process ends (process.exit, an uncaught error): kill
  // Firefox's process group and remove the profile. Synchronous on purpose.
  process.on('exit', () => {
    if (browserPid) {
      try { process.kill(-browserPid, 'SIGKILL'); } catch { /* gone */ }
      try { process.kill(browserPid, 'SIGKILL'); } catch { /* gone */ }
    }
    if (profileDir) {
      try { rmSync(profileDir, { recursive: true, force: true, maxRetries: 3 }); } catch { /* best effort */ }
    }
  });
  // The connection is closed in the page before this; a graceful
  // browser.close() would only add Firefox's shutdown (over 5 s here), so the
  // 'exit' handler above just kills it.
  const finish = async (code) => {
    if (exiting) return;
    exiting = true;
    process.exit(code);
  };

  // state driven by page events
  let opened = false;
  let closed = false;
  let failed = false;
  let onChange = () => {};
  const changed = () => { const f = onChange; onChange = () => {}; f(); };
  const waitChange = () => new Promise((r) => { onChange = r; });

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
      default: log(`unknown page event ${type}`);
    }
    changed();
  };

  let stopRequested = false;
  const onSignal = () => { stopRequested = true; changed(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  let page;
  try {
    const exe = firefoxExecutable();
    const puppeteer = loadPuppeteer();
    removeStaleProfiles();
    profileDir = mkdtempSync(path.join(os.tmpdir(), `${PROFILE_PREFIX}${process.pid}-`));
    browser = await puppeteer.launch({
      browser: 'firefox',
      ...launchCommand(exe, profileDir),
      ignoreDefaultArgs: true,  // the arguments are all in launchCommand()
      headless: true,
      extraPrefsFirefox: FIREFOX_PREFS,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      timeout: opts.timeout * 1000,
      // longer than our own waits, which say what they waited for
      protocolTimeout: (opts.timeout + 15) * 1000,
    });
    browserPid = browser.process()?.pid ?? null;
    const tLaunch = Date.now() - t0;
    browser.on('disconnected', () => { if (!exiting) { log('error: the browser went away'); process.exit(1); } });
    page = await browser.newPage();
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
    await page.evaluate(`(${pageMain.toString()})()`);
    log(`browser ready after ${Date.now() - t0} ms (firefox ${await browser.version()} launched at ${tLaunch} ms)`);

    let remoteSdp;
    if (opts.role === 'offer') {
      let sdp = checkCandidates(await withTimeout(page.evaluate((o) => window.__rt.offer(o), pageOpts),
        opts.timeout + 5, 'creating the offer'));
      if (opts.loopback) sdp = filterLoopback(sdp);
      outJson({ type: 'offer', sdp });
      log(`offer printed after ${Date.now() - t0} ms`);
      remoteSdp = await readDescription(stdin, 'answer', opts.timeout);
      await page.evaluate((s) => window.__rt.acceptAnswer(s), remoteSdp);
    } else {
      remoteSdp = await readDescription(stdin, 'offer', opts.timeout);
      const t1 = Date.now();
      let sdp = checkCandidates(await withTimeout(page.evaluate((o, s) => window.__rt.answer(o, s), pageOpts, remoteSdp),
        opts.timeout + 5, 'creating the answer'));
      if (opts.loopback) sdp = filterLoopback(sdp);
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

  // ---- channel open: bridge lines
  let exitCode = 0;
  let localClose = false;
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
      if (closed) break;
      if (failed) {
        log('error: connection failed');
        exitCode = 1;
        break;
      }
      if (stopRequested) { localClose = true; break; }
      if (stdinLine !== null) {
        const line = stdinLine;
        stdinLine = null;
        const s = line.toString('utf8');
        let sent;
        if (s.startsWith('binary:')) {
          const b = s.slice(7);
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b) || b.length % 4 !== 0) {
            log("error: bad base64 after 'binary:' on stdin, line ignored");
            continue;
          }
          sent = await page.evaluate((k, d) => window.__rt.send(k, d), 'binary', b);
        } else {
          sent = await page.evaluate((k, d) => window.__rt.send(k, d), 'text', s);
        }
        if (!sent) log('warning: the channel is not open, line dropped');
        continue;
      }
      if (stdinEof) { localClose = true; break; }
      const w = waitChange();
      pullStdin();
      if (stdinLine !== null || stdinEof) continue;
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
    // Messages received before the close may still be on their way from the
    // page (a 256 KiB one as base64 over BiDi takes a while): print them all.
    const total = await page.evaluate(() => window.__rt.emitted());
    const flushDeadline = Date.now() + 10000;
    while (nextSeq < total && Date.now() < flushDeadline) {
      const w = waitChange();
      await Promise.race([w, new Promise((r) => setTimeout(r, 100))]);
    }
    if (nextSeq < total) log(`warning: ${total - nextSeq} page events were not delivered in 10 s`);
  } catch (e) {
    log(`error: ${e.message}`);
    exitCode = 1;
  }
  status('channel closed');
  return finish(exitCode);
}

main().catch((e) => { log(`error: ${e && e.stack ? e.stack : e}`); process.exit(1); });
