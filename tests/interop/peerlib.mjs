// Shared code of the Node.js interop peers (ndc_peer.mjs, werift_peer.mjs, ...):
// the `rtcmesh connect` line protocol described at the top of aiortc_peer.py.
//
// API (all plain functions/classes, no global state besides process.std*):
//
//   makeOutput(name) -> { log(msg), status(msg), outLine(str|Buffer), outJson(obj) }
//       log: "<name>: msg" on stderr; status: "rtcmesh: msg" on stderr (the lines
//       pair.py reads); outLine/outJson: one line on stdout (synchronous on pipes).
//   parseConnectArgs(argv, { name, selftest = false }) -> opts
//       [connect] (--offer|--answer) [--label L] [--protocol P] [--unordered]
//       [--max-retransmits N | --max-packet-life-time MS] [--negotiated-id N] [--echo]
//       [--ice-server URL]... [--ice-username U] [--ice-credential C] [--relay-only]
//       [--loopback] [--timeout S]  (+ --selftest/--close-after/--expect-remote-close
//       when selftest is true). Returns { role: 'offer'|'answer', label, protocol,
//       unordered, maxRetransmits, maxPacketLifeTime, negotiatedId, echo, iceServers
//       (URL strings), iceUsername, iceCredential, relayOnly, loopback, timeout (s),
//       selftest, closeAfter, expectRemoteClose }; numbers are null when not given.
//       Bad usage prints a message and exits 2.
//   parseIceServerUrl(url, username, credential) -> { urls, username?, credential? }
//       stun:host[:port] or turn[s]:[user:pass@]host[:port][?transport=...], W3C shape.
//   class StdinLines { next() -> Promise<Buffer | null> }   null = end of input (sticky)
//   withTimeout(promise, seconds, what) -> promise that rejects "timed out <what>"
//   readDescription(stdin, 'offer'|'answer', seconds) -> Promise<sdp string>
//   filterLoopback(sdp, log) -> sdp with only the UDP 127.0.0.1 candidates (unchanged,
//       with a warning, when there is none)
//   parseInputLine(buffer) -> string (text) | Buffer (binary) | null (bad base64)
//       "binary:" + base64 is binary ("binary:" alone is 0 bytes), anything else text.
//   formatMessage(string | Buffer | ArrayBuffer | Uint8Array) -> the stdout line
//   runConnect(name, opts, createPeer) -> Promise<exit code>
//       The whole protocol for a stack with a direct JS API. createPeer(opts, events)
//       returns an object with
//         async offer() -> sdp         create the connection and channel, gather, give
//                                      the complete offer (non-trickle)
//         async acceptAnswer(sdp)
//         async answer(offerSdp) -> sdp
//         send(string | Buffer)        may throw (logged, line dropped)
//         bufferedAmount() -> number
//         closeChannel()               start a graceful channel close
//         async shutdown()             close the connection and free the stack
//       (send, bufferedAmount and closeChannel may also return promises, e.g. for
//       a peer inside a browser page; sends are issued one at a time, in order)
//       and calls events.open(label, id), events.message(data: string | Buffer),
//       events.closed(), events.failed(reason), events.log(msg) as things happen.
//       --echo, printing, stdin, closing, signals and exit codes are done here:
//       the channel is closed gracefully (after bufferedAmount drained, up to
//       10 s) on end of stdin or SIGINT/SIGTERM, an "interop-check:" line is
//       printed when the remote does not complete the close within 5 s, and the
//       result is 0 (closed by either side), 1 (failure before or after open).

const MAX_DRAIN_MS = 10000;
const CLOSE_WAIT_MS = 5000;

export function makeOutput(name) {
  return {
    log: (msg) => process.stderr.write(`${name}: ${msg}\n`),
    status: (msg) => process.stderr.write(`rtcmesh: ${msg}\n`),
    outLine: (s) => process.stdout.write(Buffer.isBuffer(s) ? Buffer.concat([s, Buffer.from('\n')]) : `${s}\n`),
    outJson: (o) => process.stdout.write(`${JSON.stringify(o)}\n`),
  };
}

// ---------------------------------------------------------------- arguments

export function parseConnectArgs(argv, { name, selftest = false }) {
  const usage = (msg) => {
    process.stderr.write(`${name}: ${msg}\nusage: ${name} [connect] (--offer|--answer) ` +
      '[--label L] [--protocol P] [--unordered] [--max-retransmits N|--max-packet-life-time MS] ' +
      '[--negotiated-id N] [--echo] [--ice-server URL]... [--ice-username U] [--ice-credential C] ' +
      `[--relay-only] [--loopback] ${selftest ? '[--selftest [--close-after|--expect-remote-close]] ' : ''}` +
      '[--timeout S]\n');
    process.exit(2);
  };
  const o = {
    role: null, label: 'data', protocol: '', unordered: false, maxRetransmits: null,
    maxPacketLifeTime: null, negotiatedId: null, echo: false, iceServers: [], iceUsername: null,
    iceCredential: null, relayOnly: false, loopback: false, timeout: 30,
    selftest: false, closeAfter: false, expectRemoteClose: false,
  };
  const value = (i, flag) => {
    const v = argv[i];
    if (v === undefined) usage(`${flag} needs a value`);
    return v;
  };
  const int = (i, flag, max) => {
    const v = value(i, flag);
    if (!/^\d+$/.test(v) || Number(v) > max) usage(`${flag} needs an integer 0..${max}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case 'connect': if (i !== 0) usage('unexpected "connect"'); break;
      case '--offer': case '--answer':
        if (o.role) usage('give only one of --offer / --answer');
        o.role = a.slice(2); break;
      case '--label': o.label = value(++i, a); break;
      case '--protocol': o.protocol = value(++i, a); break;
      case '--unordered': o.unordered = true; break;
      case '--max-retransmits': o.maxRetransmits = int(++i, a, 65535); break;
      case '--max-packet-life-time': o.maxPacketLifeTime = int(++i, a, 65535); break;
      case '--negotiated-id': o.negotiatedId = int(++i, a, 65534); break;
      case '--echo': o.echo = true; break;
      case '--ice-server': o.iceServers.push(value(++i, a)); break;
      case '--ice-username': o.iceUsername = value(++i, a); break;
      case '--ice-credential': o.iceCredential = value(++i, a); break;
      case '--relay-only': o.relayOnly = true; break;
      case '--loopback': o.loopback = true; break;
      case '--timeout': {
        const v = Number(value(++i, a));
        if (!(v > 0)) usage('--timeout needs a positive number');
        o.timeout = v; break;
      }
      case '--selftest': case '--close-after': case '--expect-remote-close':
        if (!selftest) usage(`${a} is not supported by this peer`);
        o[{ '--selftest': 'selftest', '--close-after': 'closeAfter', '--expect-remote-close': 'expectRemoteClose' }[a]] = true;
        break;
      case '-h': case '--help': usage('help'); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!o.role) usage('one of --offer / --answer is required');
  if (o.maxRetransmits !== null && o.maxPacketLifeTime !== null) {
    usage('--max-retransmits and --max-packet-life-time exclude each other');
  }
  if ((o.closeAfter || o.expectRemoteClose) && !o.selftest) usage('--close-after / --expect-remote-close need --selftest');
  if (o.closeAfter && o.expectRemoteClose) usage('--close-after and --expect-remote-close exclude each other');
  return o;
}

export function parseIceServerUrl(url, username = null, credential = null) {
  const m = /^(stuns?|turns?):(?:([^:@]*):([^@]*)@)?(.+)$/.exec(url);
  if (!m) throw new Error(`bad --ice-server URL: ${url}`);
  const [, scheme, user, pass, rest] = m;
  if (user !== undefined) return { urls: `${scheme}:${rest}`, username: user, credential: pass };
  if (scheme.startsWith('turn') && (username !== null || credential !== null)) {
    return { urls: url, username: username ?? '', credential: credential ?? '' };
  }
  return { urls: url };
}

// ---------------------------------------------------------------- stdin

export class StdinLines {
  constructor() {
    this.lines = [];
    this.waiters = [];
    this.partial = [];
    this.eof = false;
    process.stdin.on('data', (chunk) => this.onData(chunk));
    process.stdin.on('end', () => this.onEnd());
    process.stdin.on('error', () => this.onEnd());
  }

  onData(chunk) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      this.partial.push(chunk.subarray(start, nl));
      let line = Buffer.concat(this.partial);
      this.partial = [];
      if (line.length && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
      this.push(line);
      start = nl + 1;
    }
    if (start < chunk.length) this.partial.push(chunk.subarray(start));
  }

  onEnd() {
    if (this.eof) return;
    if (this.partial.length) { this.push(Buffer.concat(this.partial)); this.partial = []; }
    this.eof = true;
    this.push(null);
  }

  push(v) {
    const w = this.waiters.shift();
    if (w) w(v); else this.lines.push(v);
  }

  next() {
    if (this.lines.length) {
      const v = this.lines.shift();
      if (v === null) this.lines.unshift(null);
      return Promise.resolve(v);
    }
    return new Promise((resolve) => this.waiters.push((v) => {
      if (v === null) this.lines.push(null);
      resolve(v);
    }));
  }
}

export function withTimeout(promise, seconds, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out ${what}`)), seconds * 1000); }),
  ]).finally(() => clearTimeout(timer));
}

export async function readDescription(stdin, type, timeout) {
  for (;;) {
    const line = await withTimeout(stdin.next(), timeout, `waiting for the ${type} line on stdin`);
    if (line === null) throw new Error(`end of stdin before the ${type} line`);
    const s = line.toString('utf8');
    if (!s.trim()) continue;
    let obj;
    try { obj = JSON.parse(s); } catch (e) { throw new Error(`bad ${type} line (not JSON: ${e.message})`); }
    if (!obj || obj.type !== type || typeof obj.sdp !== 'string') {
      throw new Error(`bad ${type} line: expected {"type":"${type}","sdp":...}`);
    }
    return obj.sdp;
  }
}

export function filterLoopback(sdp, log) {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(eol);
  const isCand = (l) => l.startsWith('a=candidate:');
  const isLoop = (l) => { const f = l.split(' '); return f[2].toLowerCase() === 'udp' && f[4] === '127.0.0.1'; };
  if (!lines.some((l) => isCand(l) && isLoop(l))) {
    log('warning: --loopback but no loopback candidate was gathered; keeping all candidates');
    return sdp;
  }
  return lines.filter((l) => !isCand(l) || isLoop(l)).join(eol);
}

// ---------------------------------------------------------------- lines <-> messages

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function parseInputLine(line) {
  if (line.length >= 7 && line.subarray(0, 7).toString('latin1') === 'binary:') {
    const b = line.subarray(7).toString('latin1');
    if (!BASE64.test(b) || b.length % 4 !== 0) return null;
    return Buffer.from(b, 'base64');
  }
  return line.toString('utf8');
}

export function formatMessage(data) {
  if (typeof data === 'string') return data;
  let buf;
  if (Buffer.isBuffer(data)) buf = data;
  else if (data instanceof ArrayBuffer) buf = Buffer.from(data);
  else buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return `binary:${buf.toString('base64')}`;
}

// ---------------------------------------------------------------- the protocol

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function runConnect(name, opts, createPeer) {
  const { log, status, outLine, outJson } = makeOutput(name);
  const stdin = new StdinLines();
  const t0 = Date.now();

  // Everything that can end a wait: a single "changed" wake-up.
  const st = { opened: false, closed: false, failed: null, stop: false };
  let wake = () => {};
  const changed = () => { const w = wake; wake = () => {}; w(); };
  const waitChange = (ms) => new Promise((r) => {
    const timer = setTimeout(r, ms);
    wake = () => { clearTimeout(timer); r(); };
  });

  let peer = null;
  // Sends (echoes and stdin lines) go out one at a time, in order, whether the
  // peer's send() is synchronous or returns a promise.
  let sending = Promise.resolve();
  const send = (data, what) => {
    sending = sending.then(() => peer.send(data)).catch((e) => log(`error: ${what} failed: ${e.message}`));
    return sending;
  };
  const events = {
    open: (label, id) => {
      if (st.opened) return;
      st.opened = true;
      status(`channel open label=${label} id=${id}`);
      changed();
    },
    message: (data) => {
      if (opts.echo && st.opened && !st.closed) send(data, 'echo');
      outLine(formatMessage(data));
    },
    closed: () => { st.closed = true; changed(); },
    failed: (reason) => { if (!st.failed) st.failed = reason || 'connection failed'; changed(); },
    log,
  };
  const onSignal = () => { st.stop = true; changed(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const finish = async (code) => {
    try {
      if (peer) await withTimeout(peer.shutdown(), 5, 'closing the connection');
    } catch (e) {
      log(`warning: ${e.message}`);
    }
    return code;
  };

  // ---- signalling and open
  try {
    peer = createPeer(opts, events);
    if (opts.role === 'offer') {
      let sdp = await withTimeout(peer.offer(), opts.timeout, 'creating the offer');
      if (opts.loopback) sdp = filterLoopback(sdp, log);
      outJson({ type: 'offer', sdp });
      log(`offer printed after ${Date.now() - t0} ms`);
      const answer = await readDescription(stdin, 'answer', opts.timeout);
      await peer.acceptAnswer(answer);
    } else {
      const offer = await readDescription(stdin, 'offer', opts.timeout);
      const t1 = Date.now();
      let sdp = await withTimeout(peer.answer(offer), opts.timeout, 'creating the answer');
      if (opts.loopback) sdp = filterLoopback(sdp, log);
      outJson({ type: 'answer', sdp });
      log(`answer printed ${Date.now() - t1} ms after the offer arrived`);
    }
    const deadline = Date.now() + opts.timeout * 1000;
    while (!st.opened) {
      if (st.stop) { log('interrupted before the channel opened'); return finish(0); }
      if (st.failed) throw new Error(`${st.failed} before the channel opened`);
      if (st.closed) throw new Error('channel closed before it opened');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the channel to open');
      await waitChange(Math.min(left, 200));
    }
  } catch (e) {
    log(`error: ${e.message}`);
    return finish(1);
  }

  // ---- open: stdin lines -> messages until EOF, remote close, failure or a signal
  let code = 0;
  let localClose = false;
  let line;
  let pulling = null;
  for (;;) {
    if (st.closed) break;
    if (st.failed) { log(`error: ${st.failed}`); code = 1; break; }
    if (st.stop) { localClose = true; break; }
    if (!pulling) pulling = stdin.next().then((l) => { line = l; pulling = 'done'; changed(); });
    if (pulling === 'done') {
      pulling = null;
      if (line === null) { localClose = true; break; }
      const msg = parseInputLine(line);
      if (msg === null) { log("error: bad base64 after 'binary:' on stdin, line ignored"); continue; }
      await send(msg, 'send');
      continue;
    }
    await waitChange(1000);
  }

  if (localClose && !st.closed && !st.failed) {
    await sending;
    const drainEnd = Date.now() + MAX_DRAIN_MS;
    while (!st.closed && (await peer.bufferedAmount()) > 0 && Date.now() < drainEnd) await sleep(5);
    if (!st.closed) {
      await peer.closeChannel();
      const end = Date.now() + CLOSE_WAIT_MS;
      while (!st.closed && !st.failed && Date.now() < end) await waitChange(end - Date.now());
      if (!st.closed) {
        // read by pair.py, which fails the pair on any 'interop-check:' line
        process.stderr.write(`interop-check: our channel close was not completed within ${CLOSE_WAIT_MS / 1000} s: ` +
          'the remote did not reset its outgoing stream in turn (RFC 8831 section 6.7)\n');
      }
    }
  }
  status('channel closed');
  return finish(code);
}
