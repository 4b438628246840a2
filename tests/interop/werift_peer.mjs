#!/usr/bin/env node
// werift (npm werift, pure TypeScript, its RTCPeerConnection API) implementation
// of the `rtcmesh connect` interop protocol. See aiortc_peer.py for the protocol
// and peerlib.mjs for the flags:
//
//   node werift_peer.mjs [connect] (--offer | --answer) [--label L] [--protocol P] [--unordered]
//        [--max-retransmits N | --max-packet-life-time MS] [--negotiated-id N] [--echo]
//        [--ice-server URL]... [--ice-username U] [--ice-credential C] [--relay-only]
//        [--loopback] [--timeout S]
//
// Non-trickle: werift gathers inside setLocalDescription; the description is
// printed once iceGatheringState is complete. werift's default configuration has
// a public STUN server: iceServers is always given explicitly (empty unless
// --ice-server), so nothing is ever sent off the host. --loopback gathers on
// 127.0.0.1 only (werift skips loopback interfaces unless told). We advertise
// a=max-message-size 262144 like Chromium and libdatachannel (werift's default is
// 65536), so 256 KiB messages can be tried.
//
// werift 0.25.2 drops empty messages: its SCTP layer cuts a message into
// ceil(length / max payload) DATA chunks, which is none for 0 bytes, and does not
// use the RFC 8831 section 6.6 empty-message PPIDs. To keep empty lines in the
// protocol (and in --echo), an empty message is queued here the way werift queues
// any message, with PPID 56 (text) or 57 (binary) and one 0 byte, as Chromium
// sends it. Everything else goes through RTCDataChannel.send().

import { RTCPeerConnection } from 'werift';
import { parseConnectArgs, parseIceServerUrl, runConnect } from './peerlib.mjs';

const NAME = 'werift-peer';
const PPID_STRING_EMPTY = 56;
const PPID_BINARY_EMPTY = 57;
const MAX_MESSAGE_SIZE = 262144;

function createPeer(opts, events) {
  const config = {
    iceServers: opts.iceServers.map((u) => parseIceServerUrl(u, opts.iceUsername, opts.iceCredential)),
    maxMessageSize: MAX_MESSAGE_SIZE,
  };
  if (opts.loopback) {
    // no interface addresses at all, plus 127.0.0.1, with sockets bound to it
    Object.assign(config, {
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ['127.0.0.1'],
      iceInterfaceAddresses: { udp4: '127.0.0.1' },
    });
  }
  if (opts.relayOnly) config.iceTransportPolicy = 'relay';
  const pc = new RTCPeerConnection(config);
  let dc = null;
  let down = false;

  pc.connectionStateChange.subscribe((s) => {
    events.log(`connection state ${s}`);
    if (s === 'failed') events.failed('connection failed');
  });

  const attach = (channel) => {
    if (dc) { events.log(`ignoring extra data channel ${channel.label}`); return; }
    dc = channel;
    channel.stateChanged.subscribe((s) => {
      if (s === 'open') events.open(channel.label, channel.id);
      else if (s === 'closed') events.closed();
    });
    channel.onMessage.subscribe((m) => events.message(m));
    if (channel.readyState === 'open') events.open(channel.label, channel.id);
  };

  const makeChannel = () => {
    const init = { ordered: !opts.unordered, protocol: opts.protocol };
    if (opts.maxRetransmits !== null) init.maxRetransmits = opts.maxRetransmits;
    if (opts.maxPacketLifeTime !== null) init.maxPacketLifeTime = opts.maxPacketLifeTime;
    if (opts.negotiatedId !== null) { init.negotiated = true; init.id = opts.negotiatedId; }
    attach(pc.createDataChannel(opts.label, init));
  };

  const localSdp = async () => {
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) => {
        const sub = pc.iceGatheringStateChange.subscribe((s) => {
          if (s === 'complete') { sub.unSubscribe(); resolve(); }
        });
      });
    }
    return pc.localDescription.sdp;
  };

  return {
    async offer() {
      makeChannel();
      await pc.setLocalDescription(await pc.createOffer());
      return localSdp();
    },
    async acceptAnswer(sdp) {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    },
    async answer(offer) {
      if (opts.negotiatedId === null) pc.onDataChannel.subscribe((channel) => attach(channel));
      await pc.setRemoteDescription({ type: 'offer', sdp: offer });
      if (opts.negotiatedId !== null) makeChannel();
      await pc.setLocalDescription(await pc.createAnswer());
      return localSdp();
    },
    send(data) {
      if (!dc || dc.readyState !== 'open') throw new Error('channel not open');
      if (data.length === 0) {
        // see the top of this file
        const sctp = pc.sctpTransport;
        dc.addBufferedAmount(1); // taken off again when the queue is flushed
        sctp.dataChannelQueue.push([dc, typeof data === 'string' ? PPID_STRING_EMPTY : PPID_BINARY_EMPTY,
          Buffer.alloc(1)]);
        sctp.dataChannelFlush();
        return;
      }
      dc.send(data);
    },
    bufferedAmount: () => (dc && dc.readyState === 'open' ? dc.bufferedAmount : 0),
    closeChannel() { if (dc) dc.close(); },
    async shutdown() {
      if (down) return;
      down = true;
      await pc.close();
    },
  };
}

const opts = parseConnectArgs(process.argv.slice(2), { name: NAME });
runConnect(NAME, opts, createPeer)
  .then((code) => process.exit(code))
  .catch((e) => { process.stderr.write(`${NAME}: error: ${e && e.stack ? e.stack : e}\n`); process.exit(1); });
