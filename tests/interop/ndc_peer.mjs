#!/usr/bin/env node
// libdatachannel (npm node-datachannel, its native PeerConnection/DataChannel
// API, not the W3C polyfill) implementation of the `rtcmesh connect` interop
// protocol. See aiortc_peer.py for the protocol and peerlib.mjs for the flags:
//
//   node ndc_peer.mjs [connect] (--offer | --answer) [--label L] [--protocol P] [--unordered]
//        [--max-retransmits N | --max-packet-life-time MS] [--negotiated-id N] [--echo]
//        [--ice-server URL]... [--ice-username U] [--ice-credential C] [--relay-only]
//        [--loopback] [--timeout S]
//
// Non-trickle: the description is printed once gathering is complete (it then
// holds the candidates and a=end-of-candidates). --loopback binds libdatachannel
// to 127.0.0.1 (without bindAddress it gathers nothing on loopback) and keeps only
// the loopback candidates. No --selftest: pair.py does the checking, this side echoes.
// libdatachannel's warnings and errors go to stderr ("libdatachannel Error: ...");
// RTCMESH_NDC_LOG=Verbose|Debug|Info sets a more talkative level.
//
// Known libdatachannel 0.24.5 race (seen here as offerer: "certificate verify
// failed" in its log, "tlsv1 alert unknown ca" at the remote, sometimes then
// "Got a remote candidate without ICE transport"):
// rtc::PeerConnection::setRemoteDescription() gives the ICE agent the remote
// description before it stores it for the DTLS fingerprint check, so a handshake
// that reaches the check in between fails ("Invalid fingerprint ..., expected
// [none]"). The remote answerer, as DTLS client, has been retransmitting its
// ClientHello since its own ICE checks succeeded; on loopback a busy machine is
// enough to lose the race now and then.

import ndc from 'node-datachannel';
import { parseConnectArgs, parseIceServerUrl, runConnect } from './peerlib.mjs';

const NAME = 'ndc-peer';
ndc.initLogger(process.env.RTCMESH_NDC_LOG || 'Warning',
  (level, message) => process.stderr.write(`libdatachannel ${level}: ${message}\n`));

// libdatachannel takes ICE servers as URL strings with the credentials inside.
function ndcIceServer(url, username, credential) {
  const s = parseIceServerUrl(url, username, credential);
  if (s.username === undefined) return s.urls;
  const m = /^(turns?):(.+)$/.exec(s.urls);
  if (!m) return s.urls;
  return `${m[1]}:${encodeURIComponent(s.username)}:${encodeURIComponent(s.credential)}@${m[2]}`;
}

function createPeer(opts, events) {
  const config = {
    iceServers: opts.iceServers.map((u) => ndcIceServer(u, opts.iceUsername, opts.iceCredential)),
  };
  if (opts.loopback) config.bindAddress = '127.0.0.1';
  if (opts.relayOnly) config.iceTransportPolicy = 'relay';
  const pc = new ndc.PeerConnection(NAME, config);
  let dc = null;
  let down = false;

  let gathered;
  const gatheredPromise = new Promise((r) => { gathered = r; });
  pc.onGatheringStateChange((s) => { if (s === 'complete') gathered(); });
  pc.onStateChange((s) => {
    events.log(`connection state ${s}`);
    if (s === 'failed') events.failed('connection failed');
  });

  const attach = (channel) => {
    if (dc) { events.log(`ignoring extra data channel ${channel.getLabel()}`); return; }
    dc = channel;
    channel.onOpen(() => events.open(channel.getLabel(), channel.getId()));
    channel.onClosed(() => events.closed());
    channel.onError((e) => events.log(`channel error: ${e}`));
    channel.onMessage((m) => events.message(m));
    // a channel the remote opened is handed over already open
    if (channel.isOpen()) events.open(channel.getLabel(), channel.getId());
  };

  const makeChannel = () => {
    const init = { protocol: opts.protocol, unordered: opts.unordered };
    if (opts.maxRetransmits !== null) init.maxRetransmits = opts.maxRetransmits;
    if (opts.maxPacketLifeTime !== null) init.maxPacketLifeTime = opts.maxPacketLifeTime;
    if (opts.negotiatedId !== null) { init.negotiated = true; init.id = opts.negotiatedId; }
    attach(pc.createDataChannel(opts.label, init));
  };

  const localSdp = async () => {
    await gatheredPromise;
    return pc.localDescription().sdp;
  };

  return {
    async offer() {
      makeChannel(); // auto-negotiation: creates the offer and starts gathering
      return localSdp();
    },
    async acceptAnswer(sdp) {
      pc.setRemoteDescription(sdp, 'answer');
    },
    async answer(offer) {
      if (opts.negotiatedId === null) pc.onDataChannel((channel) => attach(channel));
      pc.setRemoteDescription(offer, 'offer'); // auto-negotiation: creates the answer
      if (opts.negotiatedId !== null) makeChannel();
      return localSdp();
    },
    send(data) {
      if (!dc) throw new Error('no channel');
      if (typeof data === 'string') dc.sendMessage(data);
      else dc.sendMessageBinary(data);
    },
    bufferedAmount: () => (dc && dc.isOpen() ? dc.bufferedAmount() : 0),
    closeChannel() { if (dc) dc.close(); },
    async shutdown() {
      if (down) return;
      down = true;
      pc.close();
      ndc.cleanup();
    },
  };
}

const opts = parseConnectArgs(process.argv.slice(2), { name: NAME });
runConnect(NAME, opts, createPeer)
  .then((code) => process.exit(code))
  .catch((e) => { process.stderr.write(`${NAME}: error: ${e && e.stack ? e.stack : e}\n`); process.exit(1); });
