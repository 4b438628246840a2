#!/usr/bin/python3
"""A third-party rtcmesh client: aiortc + websockets, written only from
docs/signaling-protocol.md.

Usage: aiortc_client.py --hub ws://127.0.0.1:8000/signaling --room demo --id alice
                        [--name NAME] [--token T] [--loopback | --no-loopback]

It joins the room, builds the mesh (Part 2) and speaks the application
protocol (Part 3: hello, chat, ping; no files, so it does not advertise them).

stdin:  a plain line is a chat to every peer; "/ping" pings every peer;
        "/quit" (or end of input) leaves and exits 0.
stdout: one JSON object per line, each with "event" (the shapes of
        `rtcmesh peer --json` where they exist):
  joined, peer-joined, peer-left, connection, channel-open, channel-closed,
  hello {"from","agent","capabilities"}, chat {"from","text","relayed"},
  pong {"from","rtt_ms"}, error {"message"}.

aiortc limits, each handled as the protocol allows:
  * aiortc does not trickle: its descriptions carry every candidate, and it
    sends "candidate": null right after each description.
  * aiortc cannot restart ICE or renegotiate; an offer on a known session is
    answered by dropping the connection and, when we are the impolite side,
    offering a new session (2.4's fallback).
  * aioice never gathers 127.0.0.1; with a loopback hub (or --loopback) the
    host address list is replaced by 127.0.0.1, as `rtcmesh peer` does.
"""

import argparse
import asyncio
import ipaddress
import json
import os
import re
import secrets
import string
import sys
import time
import urllib.parse

import aioice.ice
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

AGENT = "rtcmesh-aiortc-example/0.1"
CAPABILITIES = ["chat", "ping"]
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EARLY_MAX = 64
EARLY_TTL = 30.0


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write(f"aiortc-client: {msg}\n")
    sys.stderr.flush()


def random_session():
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


class Conn:
    """One RTCPeerConnection to one remote peer, under one session (2.2)."""

    def __init__(self, client, peer, session, offerer):
        self.client = client
        self.peer = peer
        self.session = session
        self.offerer = offerer
        self.impolite = client.me < peer  # ids are ASCII: str order is byte order
        # Empty iceServers: aiortc would otherwise ask a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = None
        self.closed = False
        self.pings = {}

        @self.pc.on("connectionstatechange")
        async def on_state():
            if self.closed:
                return
            state = self.pc.connectionState
            out({"event": "connection", "peer": peer, "state": state})
            if state == "failed":
                await client.on_failed(self)

        @self.pc.on("datachannel")
        def on_datachannel(channel):
            if channel.label == "rtcmesh" and self.channel is None:
                self.attach(channel)
            # file:<id> channels: we never advertised "file", nobody should open one.

    def attach(self, channel):
        self.channel = channel

        def opened():
            out({"event": "channel-open", "peer": self.peer})
            self.send({"type": "hello", "peer": self.client.me, "agent": AGENT,
                       "capabilities": CAPABILITIES})

        if channel.readyState == "open":
            opened()
        else:
            channel.on("open", opened)

        @channel.on("close")
        def on_close():
            if not self.closed:
                out({"event": "channel-closed", "peer": self.peer})

        @channel.on("message")
        def on_message(message):
            if not isinstance(message, str):
                return
            try:
                msg = json.loads(message)
            except ValueError:
                return
            if isinstance(msg, dict) and isinstance(msg.get("type"), str):
                self.client.on_app_message(self, msg)

    def send(self, obj):
        if self.channel is None or self.channel.readyState != "open":
            return False
        self.channel.send(json.dumps(obj, separators=(",", ":")))
        return True

    async def close(self):
        if self.closed:
            return
        self.closed = True
        await self.pc.close()


class Client:
    def __init__(self, args):
        self.args = args
        self.me = args.id
        self.ws = None
        self.conns = {}
        self.roster = {}
        self.locks = {}
        self.early = {}  # (peer, session) -> (first seen, [candidates])
        self.done = asyncio.Event()

    # ------------------------------------------------------------- hub

    async def send_hub(self, msg):
        if self.ws is not None:
            await self.ws.send(json.dumps(msg, separators=(",", ":")))

    def lock(self, peer):
        if peer not in self.locks:
            self.locks[peer] = asyncio.Lock()
        return self.locks[peer]

    async def run(self):
        # max_size: the hub's frames are at most its max_frame (64 KiB by default).
        async with websockets.connect(self.args.hub, max_size=1 << 20) as ws:
            self.ws = ws
            join = {"type": "join", "id": 1, "room": self.args.room, "peer": self.me,
                    "metadata": {"name": self.args.name, "kind": "aiortc",
                                 "capabilities": CAPABILITIES}}
            if self.args.token:
                join["token"] = self.args.token
            await ws.send(json.dumps(join))
            reader = asyncio.ensure_future(self.read_hub(ws))
            stdin = asyncio.ensure_future(self.read_stdin())
            done_wait = asyncio.ensure_future(self.done.wait())
            finished, _ = await asyncio.wait({reader, stdin, done_wait},
                                             return_when=asyncio.FIRST_COMPLETED)
            for t in (reader, stdin, done_wait):
                if t not in finished:
                    t.cancel()
            for t in finished:
                if t.exception():
                    raise t.exception()
            try:
                await ws.send(json.dumps({"type": "leave"}))
            except websockets.ConnectionClosed:
                pass
        for c in list(self.conns.values()):
            await c.close()

    async def read_hub(self, ws):
        heartbeat = None
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    out({"event": "error", "message": "hub sent invalid JSON"})
                    continue
                if not isinstance(msg, dict):
                    continue
                t = msg.get("type")
                if t == "welcome":
                    heartbeat = asyncio.ensure_future(
                        self.heartbeat(msg.get("heartbeat_interval", 30000) / 1000.0))
                    await self.on_welcome(msg)
                elif t == "error":
                    out({"event": "error", "message": f"{msg.get('code')}: {msg.get('message', '')}"})
                    if msg.get("ref") == 1:  # our join was refused
                        raise RuntimeError(f"join refused: {msg.get('code')}")
                else:
                    # Per-peer work runs in its own task, in order (the lock), so
                    # that a slow aiortc description never stalls the hub reader.
                    asyncio.ensure_future(self.dispatch(msg))
        finally:
            if heartbeat:
                heartbeat.cancel()
        out({"event": "hub", "state": "disconnected"})

    async def heartbeat(self, interval):
        while True:
            await asyncio.sleep(interval)
            await self.send_hub({"type": "heartbeat"})

    async def on_welcome(self, msg):
        peers = msg.get("peers") or []
        for p in peers:
            self.roster[p["peer"]] = p.get("metadata") or {}
        out({"event": "joined", "room": msg.get("room"), "peer": self.me,
             "peers": [p["peer"] for p in peers], "resumed": bool(msg.get("resumed"))})
        for p in peers:  # 2.1: the newcomer offers
            asyncio.ensure_future(self.offer_to(p["peer"]))

    async def dispatch(self, msg):
        t = msg.get("type")
        sender = msg.get("from")
        try:
            if t == "peer-joined":
                self.roster[msg["peer"]] = msg.get("metadata") or {}
                out({"event": "peer-joined", "peer": msg["peer"]})
            elif t == "peer-left":
                self.roster.pop(msg["peer"], None)
                out({"event": "peer-left", "peer": msg["peer"], "reason": msg.get("reason")})
            elif t in ("offer", "answer", "candidate"):
                if not isinstance(sender, str) or not ID_RE.match(sender) \
                        or not isinstance(msg.get("session"), str):
                    return
                async with self.lock(sender):
                    if t == "offer":
                        await self.on_offer(sender, msg["session"], msg["sdp"])
                    elif t == "answer":
                        await self.on_answer(sender, msg["session"], msg["sdp"])
                    else:
                        await self.on_candidate(sender, msg["session"], msg.get("candidate"))
            elif t == "relay":
                data = msg.get("data")
                if isinstance(data, dict) and data.get("type") == "chat":
                    out({"event": "chat", "from": sender, "text": data.get("text"), "relayed": True})
        except Exception as e:  # noqa: BLE001 - one bad message must not stop the client
            out({"event": "error", "message": f"{t} from {sender}: {e!r}"})

    # ------------------------------------------------------------- mesh (Part 2)

    async def offer_to(self, peer):
        async with self.lock(peer):
            old = self.conns.get(peer)
            if old is not None and not old.closed and old.pc.connectionState not in ("failed", "closed"):
                return
            if old is not None:
                await old.close()
            c = Conn(self, peer, random_session(), offerer=True)
            self.conns[peer] = c
            c.attach(c.pc.createDataChannel("rtcmesh", ordered=True))  # before the offer (2.3)
            await c.pc.setLocalDescription(await c.pc.createOffer())  # gathers everything
            if c.closed:
                return
            await self.send_hub({"type": "offer", "to": peer, "session": c.session,
                                 "sdp": c.pc.localDescription.sdp})
            await self.send_hub({"type": "candidate", "to": peer, "session": c.session,
                                 "candidate": None})

    async def on_offer(self, sender, session, sdp):
        c = self.conns.get(sender)
        if c is not None and not c.closed:
            if c.session == session:
                # An ICE restart: aiortc cannot renegotiate. Drop it; the impolite
                # side (maybe us) starts a new session.
                log(f"{sender} restarts ICE on session {session}; aiortc cannot, dropping it")
                await c.close()
                if c.impolite and sender in self.roster:
                    asyncio.ensure_future(self.offer_to(sender))
                return
            glare = c.offerer and c.pc.signalingState == "have-local-offer"
            if glare and c.impolite:
                return  # 2.2: the impolite side ignores the incoming offer
            await c.close()  # polite side of a glare, or the remote started over
        c = Conn(self, sender, session, offerer=False)
        self.conns[sender] = c
        await c.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.flush_early(c)
        await c.pc.setLocalDescription(await c.pc.createAnswer())
        if c.closed:
            return
        await self.send_hub({"type": "answer", "to": sender, "session": session,
                             "sdp": c.pc.localDescription.sdp})
        await self.send_hub({"type": "candidate", "to": sender, "session": session,
                             "candidate": None})

    async def on_answer(self, sender, session, sdp):
        c = self.conns.get(sender)
        if c is None or c.closed or c.session != session or c.pc.signalingState != "have-local-offer":
            return  # 2.2: an answer never creates anything
        await c.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self.flush_early(c)

    async def on_candidate(self, sender, session, cand):
        c = self.conns.get(sender)
        if c is not None and not c.closed and c.session == session and c.pc.remoteDescription:
            await self.add_candidate(c, cand)
            return
        key = (sender, session)
        now = time.monotonic()
        for k in [k for k, (t0, _) in self.early.items() if now - t0 > EARLY_TTL]:
            del self.early[k]
        t0, items = self.early.setdefault(key, (now, []))
        if len(items) < EARLY_MAX:
            items.append(cand)

    async def flush_early(self, c):
        t0, items = self.early.pop((c.peer, c.session), (0, []))
        if time.monotonic() - t0 > EARLY_TTL:
            return
        for cand in items:
            await self.add_candidate(c, cand)

    async def add_candidate(self, c, cand):
        ice = c.pc.sctp.transport.transport if c.pc.sctp else None
        if ice is None:
            return
        if cand is None:
            # RTCPeerConnection.addIceCandidate has no end-of-candidates form in aiortc.
            await ice.addRemoteCandidate(None)
            return
        line = cand.get("candidate") if isinstance(cand, dict) else None
        if not isinstance(line, str) or not line:
            return
        if line.startswith("candidate:"):
            line = line[len("candidate:"):]
        try:
            candidate = candidate_from_sdp(line)
        except (AssertionError, ValueError, IndexError):
            log(f"unparsable candidate from {c.peer}: {line!r}")
            return
        # Data channels only: one transport, so sdpMid/sdpMLineIndex name the only m-line.
        candidate.sdpMid = c.pc.sctp.mid
        candidate.sdpMLineIndex = 0
        await ice.addRemoteCandidate(candidate)

    async def on_failed(self, c):
        # 2.4 without ICE restart: the impolite side offers a new session.
        async with self.lock(c.peer):
            await c.close()
            if self.conns.get(c.peer) is c:
                del self.conns[c.peer]
        out({"event": "connection", "peer": c.peer, "state": "closed"})
        if c.impolite and c.peer in self.roster:
            await self.offer_to(c.peer)

    # ------------------------------------------------------------- Part 3

    def on_app_message(self, c, msg):
        t = msg["type"]
        if t == "hello":
            out({"event": "hello", "from": c.peer, "agent": msg.get("agent"),
                 "capabilities": msg.get("capabilities")})
        elif t == "chat":
            out({"event": "chat", "from": c.peer, "text": msg.get("text"), "relayed": False})
        elif t == "ping":
            c.send({"type": "pong", "nonce": msg.get("nonce"), "ts": msg.get("ts")})
        elif t == "pong":
            t0 = c.pings.pop(msg.get("nonce"), None)
            if t0 is not None:
                out({"event": "pong", "from": c.peer,
                     "rtt_ms": round((time.monotonic() - t0) * 1000, 2)})
        # file-offer etc.: unknown to us (we never advertised "file"); ignored (3.)

    async def read_stdin(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            raw = await reader.readline()
            if not raw:
                return  # end of input: leave
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == "/quit":
                return
            if line == "/ping":
                for c in self.conns.values():
                    nonce = secrets.token_hex(4)
                    if c.send({"type": "ping", "nonce": nonce, "ts": int(time.time() * 1000)}):
                        c.pings[nonce] = time.monotonic()
                continue
            sent = []
            for c in self.conns.values():
                if c.send({"type": "chat", "text": line, "ts": int(time.time() * 1000)}):
                    sent.append(c.peer)
            out({"event": "chat-sent", "text": line, "to": sorted(sent)})


def hub_is_loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hub", default="ws://127.0.0.1:8000/signaling")
    p.add_argument("--room", default="demo")
    p.add_argument("--id", default="aiortc-" + secrets.token_hex(4))
    p.add_argument("--name", default="aiortc")
    p.add_argument("--token")
    lb = p.add_mutually_exclusive_group()
    lb.add_argument("--loopback", dest="loopback", action="store_true", default=None)
    lb.add_argument("--no-loopback", dest="loopback", action="store_false")
    args = p.parse_args()
    for what in ("room", "id"):
        if not ID_RE.match(getattr(args, what)):
            p.error(f"--{what} must match {ID_RE.pattern}")
    if args.loopback is None:
        args.loopback = hub_is_loopback(args.hub)
    if args.loopback:
        aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    try:
        asyncio.run(Client(args).run())
    except (OSError, websockets.WebSocketException, RuntimeError) as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
