// rtcmesh browser client: docs/signaling-protocol.md (hub protocol, mesh rules,
// application messages) on top of the browser's own RTCPeerConnection.
//
//   import { RtcMesh } from './rtcmesh-client.js';
//   const mesh = new RtcMesh();
//   mesh.addEventListener('chat', (e) => console.log(e.detail.from, e.detail.text));
//   await mesh.join({ room: 'demo', peer: 'alice', metadata: { name: 'Alice' } });
//   mesh.sendChat('hi');
//   await mesh.sendFile('bob', fileInput.files[0]);
//
// Events (CustomEvent, payload in `detail`): joined, hub, peer-joined, peer-left,
// peer-announced, broadcast, connection-state, channel-open, channel-closed, hello,
// chat, file-offer, file-progress, file-received, file-sent, error.

import { Sha256 } from './sha256.js';

export { Sha256, sha256Hex } from './sha256.js';

export const AGENT = 'rtcmesh-web/0.1.0';
const CAPABILITIES = ['chat', 'file', 'ping'];
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const CHUNK = 65536;
const READ_BLOCK = 16 * CHUNK; // bytes per File read when sending
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const PROGRESS_MS = 250;
// Received chunks are folded into one Blob every so often so that the browser
// may move them out of the JS heap (large Blobs are backed by disk in Chromium).
const FOLD_BYTES = 8 * 1024 * 1024;

const EARLY_CANDIDATES_MAX = 64;
const EARLY_CANDIDATES_TTL_MS = 30000;
const DISCONNECTED_RESTART_MS = 10000;
const RESTART_GIVE_UP_MS = 15000;
const POLITE_FAILED_CLOSE_MS = 45000;
const RELAY_AFTER_MS = 20000;
const PING_INTERVAL_MS = 5000;
const STATS_INTERVAL_MS = 1000;

export function randomId(len = 12) {
  const r = new Uint8Array(len);
  crypto.getRandomValues(r);
  let s = '';
  for (const b of r) s += ID_ALPHABET[b % ID_ALPHABET.length];
  return s;
}

export function isValidId(s) {
  return typeof s === 'string' && ID_RE.test(s);
}

// Byte-wise comparison: ids are ASCII (ID_RE), where UTF-16 order is byte order.
function isImpolite(me, other) {
  return me < other;
}

function baseName(name) {
  const parts = String(name || '').split(/[\\/]/);
  const b = parts[parts.length - 1].replace(/[\u0000-\u001f]/g, '');
  return b && b !== '.' && b !== '..' ? b : 'file';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves the hub argument into the signaling WebSocket URL and the HTTP base.
// Accepts ws(s)://host/signaling, http(s)://host[/], or nothing (this page's origin).
function hubUrls(hub) {
  let base = hub;
  if (!base) {
    if (typeof location === 'undefined') throw new Error('join: hub URL is required outside a page');
    base = location.origin;
  }
  const u = new URL(base, typeof location !== 'undefined' ? location.href : undefined);
  let ws; let http;
  if (u.protocol === 'ws:' || u.protocol === 'wss:') {
    ws = u.href;
    http = `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
  } else if (u.protocol === 'http:' || u.protocol === 'https:') {
    http = `${u.protocol}//${u.host}`;
    ws = `${u.protocol === 'https:' ? 'wss:' : 'ws:'}//${u.host}/signaling`;
  } else {
    throw new Error(`join: unsupported hub URL ${hub}`);
  }
  return { ws, http };
}

// One RTCPeerConnection to one remote peer, identified by its session (2.2).
class Conn {
  constructor(mesh, peer, session, offerer) {
    this.mesh = mesh;
    this.peer = peer;
    this.session = session;
    this.offerer = offerer;
    this.polite = !isImpolite(mesh.peerId, peer);
    this.pc = new RTCPeerConnection({ iceServers: mesh.iceServers });
    this.channel = null;
    this.hello = null;
    this.makingOffer = false;
    this.initialOfferSent = false;
    this.closed = false;
    this.createdAt = Date.now();
    this.openedAt = 0;
    this.timers = new Map();
    this.restarting = false;
    this.stats = { pair: null, rttMs: null, bytesSent: 0, bytesReceived: 0, localType: null, remoteType: null };
    this.appRttMs = null;
    this.pings = new Map();

    const pc = this.pc;
    pc.onicecandidate = (e) => {
      const c = e.candidate;
      if (c && c.candidate) {
        this.endOfCandidatesSent = false;
        const payload = c.toJSON ? c.toJSON() : {
          candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment,
        };
        mesh.signal({ type: 'candidate', to: peer, session: this.session, candidate: payload });
      } else if (!this.endOfCandidatesSent) {
        // null, or Chromium's empty end-of-generation candidate: one marker (2.2)
        this.endOfCandidatesSent = true;
        mesh.signal({ type: 'candidate', to: peer, session: this.session, candidate: null });
      }
    };
    pc.onconnectionstatechange = () => this.onConnectionState();
    pc.onnegotiationneeded = () => this.onNegotiationNeeded();
    pc.ondatachannel = (e) => this.onDataChannel(e.channel);
  }

  get state() { return this.closed ? 'closed' : this.pc.connectionState; }

  channelOpen() { return !!this.channel && this.channel.readyState === 'open'; }

  // A connection is worth keeping (2.1) when it works or is on its way: an answered
  // negotiation that has not failed. A lone unanswered offer is not (its peer may
  // never have received it, e.g. the hub went away in between).
  isLive() {
    if (this.closed) return false;
    const s = this.pc.connectionState;
    if (s === 'failed' || s === 'closed') return false;
    if (s === 'connected' || this.channelOpen()) return true;
    return !!this.pc.remoteDescription && Date.now() - this.createdAt < 30000;
  }

  setTimer(name, ms, fn) {
    this.clearTimer(name);
    this.timers.set(name, setTimeout(() => { this.timers.delete(name); if (!this.closed) fn(); }, ms));
  }

  clearTimer(name) {
    const t = this.timers.get(name);
    if (t !== undefined) { clearTimeout(t); this.timers.delete(name); }
  }

  async makeOffer() {
    this.channel = this.pc.createDataChannel('rtcmesh', { ordered: true });
    this.setupChannel(this.channel);
    await this.sendOffer();
    this.initialOfferSent = true;
  }

  async sendOffer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      if (this.closed) return;
      this.mesh.signal({ type: 'offer', to: this.peer, session: this.session, sdp: this.pc.localDescription.sdp });
    } finally {
      this.makingOffer = false;
    }
  }

  // Only the impolite side renegotiates, and only to restart ICE (2.4); the
  // initial offer is sent by makeOffer().
  onNegotiationNeeded() {
    if (this.closed || this.polite || !this.pc.currentRemoteDescription) return;
    if (this.pc.signalingState !== 'stable' || this.makingOffer) return;
    this.mesh.serial(this.peer, () => (this.closed ? null : this.sendOffer())).catch((e) => {
      this.mesh.emitError(`renegotiation with ${this.peer} failed: ${e.message}`);
    });
  }

  onConnectionState() {
    if (this.closed) return;
    const s = this.pc.connectionState;
    this.mesh.emit('connection-state', { peer: this.peer, state: s, session: this.session });
    if (s === 'connected') {
      this.clearTimer('disconnected');
      this.clearTimer('restart-deadline');
      this.clearTimer('polite-failed');
      this.restarting = false;
      this.mesh.refreshStatsSoon();
    } else if (s === 'disconnected') {
      this.setTimer('disconnected', DISCONNECTED_RESTART_MS, () => this.onBroken());
    } else if (s === 'failed') {
      this.clearTimer('disconnected');
      this.onBroken();
    }
  }

  // failed, or disconnected for 10 s (2.4).
  onBroken() {
    const inRoom = this.mesh.roster.has(this.peer);
    if (!inRoom && this.pc.connectionState === 'failed') {
      // The peer left the hub and the path is gone too: nothing can revive it.
      this.mesh.dropConn(this, 'failed');
      return;
    }
    if (this.polite) {
      // The impolite side restarts; if it never does, give up on this connection.
      this.setTimer('polite-failed', POLITE_FAILED_CLOSE_MS, () => {
        if (this.pc.connectionState !== 'connected') this.mesh.dropConn(this, 'failed');
      });
      return;
    }
    if (this.restarting) return;
    this.restarting = true;
    this.mesh.serial(this.peer, async () => {
      if (this.closed) return;
      await this.mesh.refreshIceServers(true);
      try { this.pc.setConfiguration({ iceServers: this.mesh.iceServers }); } catch { /* keep the old ones */ }
      this.pc.restartIce();
    }).catch((e) => this.mesh.emitError(`ICE restart with ${this.peer} failed: ${e.message}`));
    this.setTimer('restart-deadline', RESTART_GIVE_UP_MS, () => {
      if (this.pc.connectionState === 'connected') { this.restarting = false; return; }
      const peer = this.peer;
      this.mesh.dropConn(this, 'restart timed out');
      if (this.mesh.roster.has(peer)) this.mesh.offerTo(peer);
    });
  }

  onDataChannel(ch) {
    if (ch.label === 'rtcmesh') {
      if (this.channel && this.channel !== ch && this.channel.readyState === 'open') {
        ch.close();
        return;
      }
      this.channel = ch;
      this.setupChannel(ch);
    } else if (ch.label.startsWith('file:')) {
      this.mesh.files.acceptChannel(this, ch);
    } else {
      ch.close();
    }
  }

  setupChannel(ch) {
    ch.binaryType = 'arraybuffer';
    ch.onopen = () => {
      if (this.closed || this.channel !== ch) return;
      this.openedAt = Date.now();
      this.send({ type: 'hello', peer: this.mesh.peerId, agent: AGENT, capabilities: CAPABILITIES });
      this.mesh.emit('channel-open', { peer: this.peer, session: this.session });
      this.mesh.refreshStatsSoon();
    };
    ch.onclose = () => {
      if (this.channel !== ch) return;
      this.mesh.emit('channel-closed', { peer: this.peer, session: this.session });
    };
    ch.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
      this.mesh.onAppMessage(this.peer, msg, false);
    };
    if (ch.readyState === 'open') ch.onopen();
  }

  send(obj) {
    if (!this.channelOpen()) return false;
    try {
      this.channel.send(JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }

  ping() {
    const nonce = randomId(8);
    const ts = Date.now();
    if (!this.send({ type: 'ping', nonce, ts })) return;
    this.pings.set(nonce, performance.now());
    if (this.pings.size > 16) this.pings.delete(this.pings.keys().next().value);
  }

  onPong(msg) {
    const t0 = this.pings.get(msg.nonce);
    if (t0 === undefined) return;
    this.pings.delete(msg.nonce);
    this.appRttMs = Math.round((performance.now() - t0) * 100) / 100;
  }

  async updateStats() {
    if (this.closed) return;
    const report = await this.pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || pair;
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.nominated || s.selected) && !pair) pair = s;
      });
    }
    const st = this.stats;
    if (pair) {
      const local = report.get(pair.localCandidateId);
      const remote = report.get(pair.remoteCandidateId);
      st.localType = local ? local.candidateType : null;
      st.remoteType = remote ? remote.candidateType : null;
      st.pair = st.localType && st.remoteType ? `${st.localType}/${st.remoteType}` : null;
      st.rttMs = typeof pair.currentRoundTripTime === 'number'
        ? Math.round(pair.currentRoundTripTime * 100000) / 100 : null;
      st.bytesSent = pair.bytesSent || 0;
      st.bytesReceived = pair.bytesReceived || 0;
      st.localAddress = local ? `${local.address || local.ip}:${local.port}` : null;
      st.remoteAddress = remote ? `${remote.address || remote.ip}:${remote.port}` : null;
      st.protocol = local ? local.protocol : null;
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    try { this.pc.close(); } catch { /* already closed */ }
  }
}

// File transfers (3.3): one `file:<id>` channel per transfer.
class Files {
  constructor(mesh) {
    this.mesh = mesh;
    this.incoming = new Map(); // `${peer}/${id}` -> transfer
    this.outgoing = new Map(); // id -> transfer
  }

  key(peer, id) { return `${peer}/${id}`; }

  incomingFor(peer, id) {
    const k = this.key(peer, id);
    let t = this.incoming.get(k);
    if (!t) {
      t = {
        peer, id, name: baseName(id), size: null, received: 0, parts: [], folded: [], foldedBytes: 0,
        sha: new Sha256(), done: false, lastProgress: 0, startedAt: Date.now(),
      };
      this.incoming.set(k, t);
    }
    return t;
  }

  onOffer(peer, msg) {
    if (!isValidId(msg.id) || typeof msg.size !== 'number' || msg.size < 0) return;
    const t = this.incomingFor(peer, msg.id);
    t.name = baseName(typeof msg.name === 'string' ? msg.name : msg.id);
    t.size = msg.size;
    this.mesh.emit('file-offer', { peer, id: t.id, name: t.name, size: t.size });
  }

  acceptChannel(conn, ch) {
    const id = ch.label.slice(5);
    if (!isValidId(id)) { ch.close(); return; }
    const peer = conn.peer;
    const t = this.incomingFor(peer, id);
    t.channel = ch;
    ch.binaryType = 'arraybuffer';
    ch.onmessage = (e) => {
      if (t.done) return;
      if (typeof e.data === 'string') {
        let msg;
        try { msg = JSON.parse(e.data); } catch { return; }
        if (msg && msg.type === 'file-end') this.finish(conn, t, msg);
        return;
      }
      const bytes = new Uint8Array(e.data);
      t.sha.update(bytes);
      t.parts.push(e.data);
      t.received += bytes.length;
      t.foldedBytes += bytes.length;
      if (t.foldedBytes >= FOLD_BYTES) {
        t.folded.push(new Blob(t.parts));
        t.parts = [];
        t.foldedBytes = 0;
      }
      const now = Date.now();
      if (now - t.lastProgress >= PROGRESS_MS) {
        t.lastProgress = now;
        this.mesh.emit('file-progress', {
          peer, id, name: t.name, bytes: t.received, size: t.size, direction: 'receive',
        });
      }
    };
    ch.onclose = () => {
      if (t.done) return;
      this.fail(t, 'the transfer channel closed before file-end');
    };
  }

  fail(t, error) {
    t.done = true;
    t.parts = []; t.folded = [];
    this.incoming.delete(this.key(t.peer, t.id));
    this.mesh.emit('file-received', {
      from: t.peer, id: t.id, name: t.name, size: t.received, sha256: null, ok: false, error,
    });
  }

  finish(conn, t, end) {
    t.done = true;
    this.incoming.delete(this.key(t.peer, t.id));
    const sha256 = t.sha.hexDigest();
    let error = null;
    if (typeof end.size === 'number' && end.size !== t.received) error = `size mismatch: got ${t.received}, file-end says ${end.size}`;
    else if (t.size !== null && t.size !== t.received) error = `size mismatch: got ${t.received}, offer said ${t.size}`;
    else if (typeof end.sha256 !== 'string' || end.sha256.toLowerCase() !== sha256) error = 'sha256 mismatch';
    const ok = error === null;
    const result = { type: 'file-result', id: t.id, ok, sha256 };
    if (!ok) result.error = error;
    conn.send(result);
    this.mesh.emit('file-progress', {
      peer: t.peer, id: t.id, name: t.name, bytes: t.received, size: t.size ?? t.received, direction: 'receive',
    });
    let blob = null;
    let url = null;
    if (ok) {
      blob = new Blob([...t.folded, ...t.parts], { type: 'application/octet-stream' });
      if (typeof URL !== 'undefined' && URL.createObjectURL) url = URL.createObjectURL(blob);
    }
    t.parts = []; t.folded = [];
    const seconds = (Date.now() - t.startedAt) / 1000;
    this.mesh.emit('file-received', {
      from: t.peer, id: t.id, name: t.name, size: t.received, sha256, ok, error, blob, url, seconds,
    });
  }

  onResult(peer, msg) {
    const t = this.outgoing.get(msg.id);
    if (!t || t.peer !== peer) return;
    t.resolveResult(msg);
  }

  async send(conn, file) {
    const id = `f${randomId(15)}`;
    const name = baseName(file.name);
    const size = file.size;
    const peer = conn.peer;
    const maxMsg = Math.min(CHUNK, (conn.pc.sctp && conn.pc.sctp.maxMessageSize) || CHUNK);
    const t = { peer, id, name, size };
    const result = new Promise((resolve) => { t.resolveResult = resolve; });
    this.outgoing.set(id, t);
    const sha = new Sha256();
    let ch = null;
    const t0 = Date.now();
    try {
      if (!conn.send({ type: 'file-offer', id, name, size })) throw new Error(`no open channel to ${peer}`);
      ch = conn.pc.createDataChannel(`file:${id}`, { ordered: true });
      ch.binaryType = 'arraybuffer';
      ch.bufferedAmountLowThreshold = LOW_WATER;
      let closedEarly = false;
      const closed = new Promise((resolve) => {
        ch.addEventListener('close', () => { closedEarly = true; resolve(); }, { once: true });
      });
      await Promise.race([
        new Promise((resolve) => ch.addEventListener('open', resolve, { once: true })),
        closed,
      ]);
      if (closedEarly) throw new Error('the transfer channel closed before it opened');

      let offset = 0;
      let lastProgress = 0;
      // One Blob read per READ_BLOCK, not per message: each read is a round trip
      // to the browser process, and they dominated the sending tab's main thread.
      const readBlock = (at) => (at < size ? file.slice(at, Math.min(at + READ_BLOCK, size)).arrayBuffer() : null);
      let next = readBlock(0);
      while (offset < size) {
        const block = await next;
        if (block.byteLength === 0) throw new Error(`${name} shrank while being sent`);
        next = readBlock(offset + block.byteLength); // read ahead while this block is sent
        sha.update(block);
        for (let at = 0; at < block.byteLength; at += maxMsg) {
          if (ch.bufferedAmount > HIGH_WATER) {
            await Promise.race([
              new Promise((resolve) => ch.addEventListener('bufferedamountlow', resolve, { once: true })),
              closed,
            ]);
          }
          if (closedEarly || ch.readyState !== 'open') throw new Error('the transfer channel closed during the transfer');
          const piece = new Uint8Array(block, at, Math.min(maxMsg, block.byteLength - at));
          ch.send(piece);
          offset += piece.byteLength;
          const now = Date.now();
          if (now - lastProgress >= PROGRESS_MS || offset === size) {
            lastProgress = now;
            this.mesh.emit('file-progress', { peer, id, name, bytes: offset, size, direction: 'send' });
          }
        }
      }
      if (size === 0) this.mesh.emit('file-progress', { peer, id, name, bytes: 0, size, direction: 'send' });
      const sha256 = sha.hexDigest();
      ch.send(JSON.stringify({ type: 'file-end', id, size, sha256 }));
      const reply = await Promise.race([result, closed.then(() => null)]);
      if (!reply) throw new Error('the transfer channel closed before file-result');
      const ok = reply.ok === true && reply.sha256 === sha256;
      const out = {
        to: peer, id, name, size, sha256, ok, seconds: (Date.now() - t0) / 1000,
        error: ok ? undefined : (reply.error || 'the receiver reported a mismatch'),
      };
      this.mesh.emit('file-sent', out);
      return out;
    } catch (e) {
      const out = { to: peer, id, name, size, sha256: null, ok: false, error: e.message };
      this.mesh.emit('file-sent', out);
      return out;
    } finally {
      this.outgoing.delete(id);
      if (ch) try { ch.close(); } catch { /* gone */ }
    }
  }
}

export class RtcMesh extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = {
      reconnectInterval: options.reconnectInterval ?? 1000,
      maxReconnectInterval: options.maxReconnectInterval ?? 30000,
      allowHubRelay: !!options.allowHubRelay,
    };
    this.peerId = null;
    this.room = null;
    this.metadata = {};
    this.token = null;
    this.urls = null;
    this.ws = null;
    this.resumeSecret = null;
    this.hubState = 'disconnected';
    this.joined = false;
    this.leaving = false;
    this.roster = new Map(); // peer id -> metadata, from the hub
    this.conns = new Map(); // peer id -> Conn
    this.queues = new Map(); // peer id -> promise chain of signaling work
    this.early = new Map(); // `${peer}\n${session}` -> { items, at }
    this.iceServers = [];
    this.iceExpiresAt = 0;
    this.files = new Files(this);
    this.reconnectDelay = this.options.reconnectInterval;
    this.reconnectTimer = null;
    this.heartbeatTimer = null;
    this.lastHubMessage = 0;
    this.heartbeatInterval = 30000;
    this.peerTimeout = 60000;
    this.limits = null;
    this.msgSeq = 0;
    this.statsTimer = null;
    this.pingTimer = null;
    this.counters = { hubIn: 0, hubOut: 0, reconnects: 0, chatsIn: 0, chatsOut: 0 };
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  emitError(message) {
    this.emit('error', { message });
  }

  // Joins a room; resolves with the welcome once the hub accepted us.
  async join({ hub, room, peer, metadata, token } = {}) {
    if (this.ws || this.joined) throw new Error('join: already joined (call leave() first)');
    if (!isValidId(room)) throw new Error(`join: invalid room id ${JSON.stringify(room)}`);
    const me = peer === undefined || peer === null || peer === '' ? `web-${randomId(8)}` : peer;
    if (!isValidId(me)) throw new Error(`join: invalid peer id ${JSON.stringify(me)}`);
    this.urls = hubUrls(hub);
    this.room = room;
    this.peerId = me;
    this.metadata = { kind: 'browser', capabilities: CAPABILITIES, ...(metadata || {}) };
    this.token = token || null;
    this.leaving = false;
    this.resumeSecret = null;
    await this.refreshIceServers(false);
    const welcome = await this.connect(true);
    this.statsTimer = setInterval(() => this.refreshStats(), STATS_INTERVAL_MS);
    this.pingTimer = setInterval(() => { for (const c of this.conns.values()) c.ping(); }, PING_INTERVAL_MS);
    return welcome;
  }

  leave() {
    this.leaving = true;
    this.joined = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    clearInterval(this.statsTimer);
    clearInterval(this.pingTimer);
    if (this.ws) {
      try {
        if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'leave' }));
        this.ws.close(1000);
      } catch { /* closing anyway */ }
      this.ws = null;
    }
    for (const c of [...this.conns.values()]) this.dropConn(c, 'left');
    this.roster.clear();
    this.setHubState('disconnected');
  }

  async refreshIceServers(onlyIfStale) {
    if (onlyIfStale && this.iceExpiresAt && Date.now() / 1000 < this.iceExpiresAt - 300) return;
    if (onlyIfStale && !this.iceExpiresAt) return;
    try {
      const u = new URL('/api/ice-servers', this.urls.http);
      u.searchParams.set('peer', this.peerId);
      const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
      const r = await fetch(u.href, { headers, cache: 'no-store' });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const body = await r.json();
      this.iceServers = Array.isArray(body.iceServers) ? body.iceServers : [];
      this.iceExpiresAt = typeof body.expiresAt === 'number' ? body.expiresAt : 0;
    } catch (e) {
      this.emitError(`could not fetch /api/ice-servers (${e.message}); using no ICE servers`);
    }
  }

  setHubState(state) {
    if (this.hubState === state) return;
    this.hubState = state;
    this.emit('hub', { state });
  }

  // Opens the signaling socket and joins. first: reject instead of retrying.
  connect(first) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const ws = new WebSocket(this.urls.ws);
      this.ws = ws;
      const joinRef = ++this.msgSeq;
      ws.onopen = () => {
        const msg = { type: 'join', id: joinRef, room: this.room, peer: this.peerId, metadata: this.metadata };
        if (this.token) msg.token = this.token;
        if (this.resumeSecret) msg.resume = this.resumeSecret;
        this.sendHub(msg);
      };
      ws.onmessage = (e) => {
        if (this.ws !== ws) return;
        let msg;
        try { msg = JSON.parse(e.data); } catch { this.emitError('hub sent a frame that is not JSON'); return; }
        if (!msg || typeof msg !== 'object') return;
        this.counters.hubIn++;
        this.lastHubMessage = Date.now();
        if (msg.type === 'welcome') {
          settled = true;
          this.onWelcome(msg);
          resolve(msg);
          return;
        }
        if (msg.type === 'error' && !settled && msg.ref === joinRef) {
          settled = true;
          this.ws = null;
          ws.close(1000);
          const err = new Error(`join refused: ${msg.code}${msg.message ? ` (${msg.message})` : ''}`);
          err.code = msg.code;
          if (first) { reject(err); return; }
          this.emitError(err.message);
          if (msg.code === 'id_taken' || msg.code === 'unauthorized') {
            // Retrying cannot help while someone else holds our id or the token is bad.
            this.leaving = true;
            this.setHubState('disconnected');
          } else {
            this.scheduleReconnect();
          }
          return;
        }
        this.onHubMessage(msg);
      };
      ws.onclose = (e) => {
        if (this.ws !== ws) return;
        this.ws = null;
        clearInterval(this.heartbeatTimer);
        if (!settled && first) {
          settled = true;
          reject(new Error(`could not join: hub connection closed (${e.code}${e.reason ? ` ${e.reason}` : ''})`));
          return;
        }
        if (this.leaving) return;
        if (e.code === 4000) {
          this.emitError('another connection resumed this peer id; not reconnecting');
          this.leaving = true;
          this.setHubState('disconnected');
          return;
        }
        this.setHubState('disconnected');
        this.scheduleReconnect();
      };
      ws.onerror = () => { /* onclose follows */ };
    });
  }

  scheduleReconnect() {
    if (this.leaving) return;
    clearTimeout(this.reconnectTimer);
    const base = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, this.options.maxReconnectInterval);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.setHubState('reconnecting');
    this.reconnectTimer = setTimeout(() => {
      if (this.leaving) return;
      this.counters.reconnects++;
      this.connect(false).catch(() => this.scheduleReconnect());
    }, delay);
  }

  sendHub(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    this.counters.hubOut++;
    return true;
  }

  signal(msg) {
    return this.sendHub(msg);
  }

  onWelcome(msg) {
    this.joined = true;
    this.resumeSecret = typeof msg.resume === 'string' ? msg.resume : null;
    this.reconnectDelay = this.options.reconnectInterval;
    if (typeof msg.heartbeat_interval === 'number' && msg.heartbeat_interval > 0) this.heartbeatInterval = msg.heartbeat_interval;
    if (typeof msg.peer_timeout === 'number' && msg.peer_timeout > 0) this.peerTimeout = msg.peer_timeout;
    this.limits = msg.limits || null;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatInterval);
    this.setHubState('connected');
    const peers = Array.isArray(msg.peers) ? msg.peers : [];
    this.roster.clear();
    for (const p of peers) {
      if (p && isValidId(p.peer) && p.peer !== this.peerId) this.roster.set(p.peer, p.metadata || {});
    }
    this.emit('joined', { room: this.room, peer: this.peerId, peers: [...this.roster.keys()], resumed: !!msg.resumed });
    for (const p of this.roster.keys()) {
      const c = this.conns.get(p);
      if (!c || !c.isLive()) this.offerTo(p);
    }
  }

  heartbeat() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    // No frame at all for two intervals (our heartbeats are answered): the hub is
    // unreachable though the socket has not noticed yet.
    if (Date.now() - this.lastHubMessage > 2 * this.heartbeatInterval + 5000) {
      this.ws = null;
      try { ws.close(4002); } catch { /* gone */ }
      this.setHubState('disconnected');
      this.scheduleReconnect();
      return;
    }
    this.sendHub({ type: 'heartbeat' });
  }

  onHubMessage(msg) {
    const from = msg.from;
    switch (msg.type) {
      case 'heartbeat-ack':
        break;
      case 'peer-joined':
        if (!isValidId(msg.peer) || msg.peer === this.peerId) return;
        this.roster.set(msg.peer, msg.metadata || {});
        this.emit('peer-joined', { peer: msg.peer, metadata: msg.metadata || {} });
        break;
      case 'peer-left':
        if (!isValidId(msg.peer)) return;
        this.roster.delete(msg.peer);
        this.emit('peer-left', { peer: msg.peer, reason: msg.reason });
        {
          // Keep a working connection (2.1); one that never came up has no future.
          const c = this.conns.get(msg.peer);
          if (c && c.pc.connectionState !== 'connected' && !c.channelOpen() && !c.pc.remoteDescription) {
            this.dropConn(c, 'peer left before connecting');
          }
        }
        break;
      case 'peer-announced':
        if (!isValidId(msg.peer)) return;
        if (this.roster.has(msg.peer)) this.roster.set(msg.peer, msg.metadata || {});
        this.emit('peer-announced', { peer: msg.peer, metadata: msg.metadata || {} });
        break;
      case 'broadcast':
        this.emit('broadcast', { from, data: msg.data });
        break;
      case 'offer':
        if (!isValidId(from) || typeof msg.session !== 'string' || typeof msg.sdp !== 'string') return;
        this.serial(from, () => this.onOffer(from, msg.session, msg.sdp))
          .catch((e) => this.emitError(`offer from ${from}: ${e.message}`));
        break;
      case 'answer':
        if (!isValidId(from) || typeof msg.session !== 'string' || typeof msg.sdp !== 'string') return;
        this.serial(from, () => this.onAnswer(from, msg.session, msg.sdp))
          .catch((e) => this.emitError(`answer from ${from}: ${e.message}`));
        break;
      case 'candidate':
        if (!isValidId(from) || typeof msg.session !== 'string') return;
        this.serial(from, () => this.onCandidate(from, msg.session, msg.candidate ?? null))
          .catch((e) => this.emitError(`candidate from ${from}: ${e.message}`));
        break;
      case 'relay':
        if (!isValidId(from) || !msg.data || typeof msg.data !== 'object') return;
        this.onAppMessage(from, msg.data, true);
        break;
      case 'server-shutdown':
        this.emit('hub', { state: 'shutdown' });
        break;
      case 'error':
        this.emitError(`hub error ${msg.code}${msg.to ? ` (to ${msg.to})` : ''}: ${msg.message || ''}`);
        break;
      default:
        break;
    }
  }

  // Runs signaling work for one remote peer strictly in order: descriptions are
  // applied asynchronously and a candidate must not overtake its offer.
  serial(peer, fn) {
    const prev = this.queues.get(peer) || Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.queues.set(peer, tail);
    tail.then(() => { if (this.queues.get(peer) === tail) this.queues.delete(peer); });
    return next;
  }

  newConn(peer, session, offerer) {
    const c = new Conn(this, peer, session, offerer);
    this.conns.set(peer, c);
    return c;
  }

  dropConn(c, reason) {
    if (c.closed) return;
    const wasOpen = c.channelOpen();
    c.close();
    if (this.conns.get(c.peer) === c) this.conns.delete(c.peer);
    if (wasOpen) this.emit('channel-closed', { peer: c.peer, session: c.session });
    this.emit('connection-state', { peer: c.peer, state: 'closed', session: c.session, reason });
  }

  // Creates a connection with a new session and offers (2.1, 2.2).
  offerTo(peer) {
    return this.serial(peer, async () => {
      if (!this.roster.has(peer)) return;
      const old = this.conns.get(peer);
      if (old && old.isLive()) return;
      if (old) this.dropConn(old, 'replaced by a new session');
      await this.refreshIceServers(true);
      const c = this.newConn(peer, randomId(16), true);
      await c.makeOffer();
    }).catch((e) => this.emitError(`offer to ${peer}: ${e.message}`));
  }

  async onOffer(from, session, sdp) {
    let c = this.conns.get(from);
    if (c && c.session === session) {
      // Renegotiation of a known session: an ICE restart by the impolite side.
      const collision = c.makingOffer || c.pc.signalingState !== 'stable';
      if (collision && !c.polite) return;
      await c.pc.setRemoteDescription({ type: 'offer', sdp });
      await this.flushEarly(c);
      await c.pc.setLocalDescription();
      this.signal({ type: 'answer', to: from, session, sdp: c.pc.localDescription.sdp });
      return;
    }
    if (c) {
      const glare = c.offerer && (c.makingOffer || c.pc.signalingState === 'have-local-offer');
      if (glare && !c.polite) return; // impolite: our offer stands, theirs is dropped
      // Polite side of a glare, or the other side started over: its new session wins.
      this.dropConn(c, glare ? 'glare' : 'remote started a new session');
    }
    c = this.newConn(from, session, false);
    await c.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.flushEarly(c);
    await c.pc.setLocalDescription();
    if (c.closed) return;
    this.signal({ type: 'answer', to: from, session, sdp: c.pc.localDescription.sdp });
  }

  async onAnswer(from, session, sdp) {
    const c = this.conns.get(from);
    if (!c || c.session !== session || c.pc.signalingState !== 'have-local-offer') return;
    await c.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.flushEarly(c);
  }

  async onCandidate(from, session, candidate) {
    const c = this.conns.get(from);
    if (c && c.session === session && c.pc.remoteDescription) {
      await this.addCandidate(c, candidate);
      return;
    }
    // Before its description, or for a session not (yet) known: queue it, bounded.
    const k = `${from}\n${session}`;
    const now = Date.now();
    for (const [key, q] of this.early) if (now - q.at > EARLY_CANDIDATES_TTL_MS) this.early.delete(key);
    let q = this.early.get(k);
    if (!q) {
      if (this.early.size >= 256) return;
      q = { items: [], at: now };
      this.early.set(k, q);
    }
    if (q.items.length < EARLY_CANDIDATES_MAX) q.items.push(candidate);
  }

  async flushEarly(c) {
    const k = `${c.peer}\n${c.session}`;
    const q = this.early.get(k);
    if (!q) return;
    this.early.delete(k);
    if (Date.now() - q.at > EARLY_CANDIDATES_TTL_MS) return;
    for (const cand of q.items) await this.addCandidate(c, cand);
  }

  async addCandidate(c, candidate) {
    if (c.closed) return;
    try {
      if (candidate === null) await c.pc.addIceCandidate();
      else await c.pc.addIceCandidate(candidate);
    } catch (e) {
      // A candidate of an older ICE generation, or one this browser cannot parse:
      // not fatal for the connection.
      if (candidate !== null) this.emit('log', { message: `candidate from ${c.peer} ignored: ${e.message}` });
    }
  }

  onAppMessage(from, msg, relayed) {
    const c = this.conns.get(from);
    switch (msg.type) {
      case 'hello':
        if (c && !relayed) c.hello = msg;
        this.emit('hello', { from, agent: msg.agent, capabilities: msg.capabilities, relayed });
        break;
      case 'chat':
        if (typeof msg.text !== 'string') return;
        this.counters.chatsIn++;
        this.emit('chat', { from, text: msg.text, ts: msg.ts, relayed });
        break;
      case 'ping':
        if (relayed) this.sendRelay(from, { type: 'pong', nonce: msg.nonce, ts: msg.ts });
        else if (c) c.send({ type: 'pong', nonce: msg.nonce, ts: msg.ts });
        break;
      case 'pong':
        if (c && !relayed) c.onPong(msg);
        break;
      case 'file-offer':
        if (!relayed) this.files.onOffer(from, msg);
        break;
      case 'file-result':
        if (!relayed) this.files.onResult(from, msg);
        break;
      default:
        break;
    }
  }

  sendRelay(to, data) {
    return this.sendHub({ type: 'relay', to, data });
  }

  // Sends a chat line to every peer, each on its own channel (3.1). Returns the
  // ids it went to, directly or (with allowHubRelay) through the hub.
  sendChat(text) {
    const msg = { type: 'chat', text: String(text), ts: Date.now() };
    const sent = [];
    const targets = new Set([...this.conns.keys(), ...this.roster.keys()]);
    for (const p of targets) {
      const c = this.conns.get(p);
      if (c && c.send(msg)) { sent.push(p); continue; }
      if (this.options.allowHubRelay && this.roster.has(p)) {
        const stuck = !c || c.pc.connectionState === 'failed' || Date.now() - c.createdAt > RELAY_AFTER_MS;
        if (stuck && this.sendRelay(p, msg)) sent.push(p);
      }
    }
    this.counters.chatsOut++;
    return sent;
  }

  announce(metadata) {
    this.metadata = { ...metadata };
    return this.sendHub({ type: 'announce', metadata: this.metadata });
  }

  broadcast(data) {
    return this.sendHub({ type: 'broadcast', data });
  }

  // Streams a File/Blob to one peer; resolves with { ok, sha256, ... } once the
  // receiver confirmed (file-result) or the transfer failed.
  async sendFile(peer, file) {
    const c = this.conns.get(peer);
    if (!c || !c.channelOpen()) throw new Error(`no open channel to ${peer}`);
    return this.files.send(c, file);
  }

  // A snapshot of the mesh; pair and RTT come from the last getStats poll.
  peers() {
    const ids = new Set([...this.roster.keys(), ...this.conns.keys()]);
    return [...ids].sort().map((p) => {
      const c = this.conns.get(p);
      return {
        peer: p,
        metadata: this.roster.get(p) ?? null,
        inRoom: this.roster.has(p),
        state: c ? c.state : 'new',
        channel: c && c.channelOpen() ? 'open' : 'closed',
        session: c ? c.session : null,
        polite: c ? c.polite : null,
        pair: c ? c.stats.pair : null,
        rtt_ms: c ? c.stats.rttMs : null,
        app_rtt_ms: c ? c.appRttMs : null,
        bytes_sent: c ? c.stats.bytesSent : 0,
        bytes_received: c ? c.stats.bytesReceived : 0,
        local: c ? c.stats.localAddress ?? null : null,
        remote: c ? c.stats.remoteAddress ?? null : null,
        agent: c && c.hello ? c.hello.agent ?? null : null,
        relayed: false,
      };
    });
  }

  refreshStatsSoon() {
    setTimeout(() => this.refreshStats(), 200);
  }

  async refreshStats() {
    await Promise.all([...this.conns.values()].map((c) => c.updateStats().catch(() => {})));
    this.emit('stats', { peers: this.peers() });
  }
}
