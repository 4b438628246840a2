"""Helpers for tests/hub/hub_test.py: asyncio WebSocket clients (websockets
10.4), a raw RFC 6455 client on a plain socket (for frames the library would
never send), raw HTTP, JWTs. The hub process itself is rtcmesh_testlib.hub.Hub.

Standard library + websockets only. Everything talks to 127.0.0.1.
"""
import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import time

import websockets

# tests/lib is on sys.path (hub_test.py puts it there).
from rtcmesh_testlib.failures import TestFailure, require
from rtcmesh_testlib.process import HOST


def log(message):
    print(message, flush=True)


async def check_rejected(hub, before, reason=None, what="", wait=3.0):
    """/api/health answers and rtcmesh_hub_rejections_total counted the rejection:
    reason given: that label grew; None: the sum over all reasons grew (the
    protocol doc names no reason for it). Retries for up to 3 s (the count may
    be written as the connection is torn down)."""
    deadline = time.monotonic() + wait
    while True:
        await asyncio.to_thread(hub.health)
        after = await asyncio.to_thread(hub.rejections)
        grown = {r: after[r] - before.get(r, 0) for r in after if after[r] > before.get(r, 0)}
        ok = grown.get(reason, 0) >= 1 if reason else sum(grown.values()) >= 1
        if ok:
            log(f"{what}: /api/health ok, rejections grew {grown}")
            return grown
        if time.monotonic() > deadline:
            raise TestFailure(f"{what}: rtcmesh_hub_rejections_total"
                              f"{'{reason=' + repr(reason) + '}' if reason else ' (any reason)'}"
                              f" did not grow: before {before}, after {after}")
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- asyncio clients

CLOSED = object()


class Client:
    """A websockets client whose reader task queues every message (parsed JSON,
    or bytes for binary) so a test can demand the exact sequence it receives."""

    def __init__(self, ws, name):
        self.ws, self.name = ws, name
        self.queue = asyncio.Queue()
        self.ignore = set()  # message types dropped by the reader (e.g. heartbeat-ack)
        self.close_code = self.close_reason = None
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, hub, name="client", **kw):
        kw.setdefault("ping_interval", None)   # never send pings: only our messages are activity
        kw.setdefault("compression", None)
        kw.setdefault("max_size", None)
        kw.setdefault("close_timeout", 2)
        kw.setdefault("open_timeout", 5)
        if hub.tls:
            kw.setdefault("ssl", hub.tls)
        try:
            ws = await websockets.connect(hub.ws, **kw)
        except Exception as e:
            raise TestFailure(f"{name}: cannot open {hub.ws}: {type(e).__name__}: {e}") from e
        return cls(ws, name)

    async def _read(self):
        try:
            while True:
                m = await self.ws.recv()
                if isinstance(m, str):
                    try:
                        m = json.loads(m)
                    except ValueError:
                        m = {"type": "<not json>", "text": m}
                    if isinstance(m, dict) and m.get("type") in self.ignore:
                        continue
                await self.queue.put(m)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason
            await self.queue.put(CLOSED)

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def recv(self, timeout=5, what="a message"):
        try:
            m = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.name}: no message within {timeout} s (waiting for {what})") from None
        if m is CLOSED:
            await self.queue.put(CLOSED)
            raise TestFailure(f"{self.name}: connection closed ({self.close_code} {self.close_reason!r}) "
                              f"while waiting for {what}")
        return m

    async def expect(self, type_, timeout=5, **fields):
        """The next message: it must have this type and these member values."""
        m = await self.recv(timeout, f"{type_} {fields or ''}")
        require(isinstance(m, dict) and m.get("type") == type_,
                f"{self.name}: expected {type_} {fields or ''}, got {m!r}")
        for k, v in fields.items():
            require(m.get(k) == v, f"{self.name}: {type_}.{k} = {m.get(k)!r}, expected {v!r}: {m}")
        return m

    async def expect_error(self, code, ref=None, timeout=5, **fields):
        m = await self.expect("error", timeout, code=code, **fields)
        require(isinstance(m.get("message"), str), f"{self.name}: error without a message text: {m}")
        if ref is not None:
            require(m.get("ref") == ref, f"{self.name}: error {code} has ref {m.get('ref')!r}, expected {ref!r}")
        return m

    async def silence(self, t=0.3):
        """Nothing arrives for t seconds."""
        try:
            m = await asyncio.wait_for(self.queue.get(), t)
        except asyncio.TimeoutError:
            return
        if m is CLOSED:
            await self.queue.put(CLOSED)
            raise TestFailure(f"{self.name}: unexpectedly closed ({self.close_code} {self.close_reason!r})")
        raise TestFailure(f"{self.name}: unexpected message {m!r}")

    def pending(self):
        """Everything queued so far (without waiting), CLOSED excluded."""
        out = []
        while not self.queue.empty():
            m = self.queue.get_nowait()
            if m is CLOSED:
                self.queue.put_nowait(CLOSED)
                break
            out.append(m)
        return out

    async def closed(self, timeout=5):
        """Waits for the hub to close; returns (code, reason, messages received before)."""
        before = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                m = await asyncio.wait_for(self.queue.get(), max(left, 0.01))
            except asyncio.TimeoutError:
                raise TestFailure(f"{self.name}: still open after {timeout} s (got {before[-5:]})") from None
            if m is CLOSED:
                await self.queue.put(CLOSED)
                return self.close_code, self.close_reason, before
            before.append(m)

    async def join(self, room, peer, ref=None, **extra):
        msg = {"type": "join", "room": room, "peer": peer, **extra}
        if ref is not None:
            msg["id"] = ref
        await self.send(msg)
        w = await self.expect("welcome", room=room, peer=peer)
        if ref is not None:
            require(w.get("ref") == ref, f"{self.name}: welcome ref {w.get('ref')!r}, expected {ref!r}")
        return w

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass
        self.reader.cancel()


async def joined(hub, room, peer, **kw):
    c = await Client.connect(hub, peer)
    c.welcome = await c.join(room, peer, **kw)
    return c


class Bystanders:
    """Two peers in a room that must keep working whatever another client does:
    check() demands that they received nothing but expected notices about the
    abusers, then they exchange an offer and an answer."""

    def __init__(self, hub, room="demo", ids=("by-a", "by-b")):
        self.hub, self.room, self.ids = hub, room, ids
        self.a = self.b = None

    async def start(self):
        self.a = await joined(self.hub, self.room, self.ids[0])
        self.b = await joined(self.hub, self.room, self.ids[1])
        await self.a.expect("peer-joined", peer=self.ids[1])
        return self

    async def see(self, type_, **fields):
        """Both bystanders receive this next."""
        for c in (self.a, self.b):
            await c.expect(type_, **fields)

    @staticmethod
    async def _next(c, allow, what):
        """The next message, skipping allowed ones still in flight from the abuse
        (replies the hub sent before the check began may arrive late on a slow run)."""
        while True:
            got = await c.recv(5, what)
            if allow is None or not allow(got):
                return got

    async def check(self, abusers=(), allow=None, what=""):
        for c in (self.a, self.b):
            for m in c.pending():
                ok = (isinstance(m, dict) and m.get("type") in ("peer-joined", "peer-left", "peer-announced")
                      and m.get("peer") in abusers) or (allow is not None and allow(m))
                require(ok, f"{what}: bystander {c.name} received an unexpected message: {m!r}")
        session = "bysess%d" % (time.monotonic_ns() % 100000)
        sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        await self.a.send({"type": "offer", "to": self.ids[1], "session": session, "sdp": sdp})
        got = await self._next(self.b, allow, "the bystander offer")
        require(got == {"type": "offer", "to": self.ids[1], "session": session, "sdp": sdp, "from": self.ids[0]},
                f"{what}: bystander {self.ids[1]} got {got!r} instead of the offer")
        await self.b.send({"type": "answer", "to": self.ids[0], "session": session, "sdp": sdp})
        got = await self._next(self.a, allow, "the bystander answer")
        require(got == {"type": "answer", "to": self.ids[0], "session": session, "sdp": sdp, "from": self.ids[1]},
                f"{what}: bystander {self.ids[0]} got {got!r} instead of the answer")
        await self.a.silence(0.15)
        await self.b.silence(0.0)
        log(f"{what}: bystanders {self.ids[0]} and {self.ids[1]} still exchange offer/answer, "
            f"nothing unexpected")

    async def close(self):
        for c in (self.a, self.b):
            if c:
                await c.close()


# --------------------------------------------------------------------------- raw RFC 6455 client

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def http_exchange(port, request, timeout=5, rcvbuf=None, tls=None):
    """Sends raw request bytes; returns (socket, status code or None, head bytes, leftover)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    if tls:
        s = tls.wrap_socket(s, server_hostname="localhost")
    s.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return s, int(m.group(1)) if m else None, head, rest


def upgrade_request(port, origin=None, path="/signaling", key=None):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if origin:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def upgrade_status(port, origin=None):
    req, _ = upgrade_request(port, origin)
    s, status, head, _ = http_exchange(port, req)
    s.close()
    return status, head


class RawWS:
    """A WebSocket client on a plain blocking socket: no automatic pong, no
    reading unless asked, and it can send frames a real client must not."""

    def __init__(self, port, rcvbuf=None, timeout=5):
        req, key = upgrade_request(port)
        self.sock, status, head, self.buf = http_exchange(port, req, timeout, rcvbuf)
        require(status == 101, f"raw upgrade: status {status}: {head[:200]!r}")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        headers = dict((k.strip().lower(), v.strip()) for k, _, v in
                       (l.decode(errors="replace").partition(":") for l in head.split(b"\r\n")[1:]))
        require(headers.get("sec-websocket-accept") == accept, f"raw upgrade: bad Sec-WebSocket-Accept: {head!r}")

    def send_frame(self, opcode, payload, mask=True, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_json(self, obj, **kw):
        self.send_frame(1, json.dumps(obj), **kw)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def recv_frame(self, timeout=5):
        """(opcode, payload); EOFError at end of stream; socket.timeout."""
        self.sock.settimeout(timeout)
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        require(not b1 & 0x80, "the hub sent a masked frame (RFC 6455 5.1: servers must not mask)")
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(pos + n)
        payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
        return b0 & 0x0F, payload

    def recv_json(self, timeout=5):
        """The next text message as JSON (pings skipped, not answered)."""
        while True:
            op, payload = self.recv_frame(timeout)
            if op == 1:
                return json.loads(payload)
            if op == 8:
                raise TestFailure(f"raw client: closed by the hub: {close_info(payload)}")

    def read_until_close(self, timeout=5):
        """Reads everything up to the hub's close frame or EOF: (close code or None,
        text messages, bytes read, how it ended: 'close', 'eof' or 'reset')."""
        texts, total, deadline = [], 0, time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure(f"raw client: the hub neither closed nor sent a close frame within {timeout} s")
            try:
                op, payload = self.recv_frame(left)
            except EOFError:
                return None, texts, total, "eof"
            except ConnectionResetError:
                return None, texts, total, "reset"
            except socket.timeout:
                continue
            total += len(payload)
            if op == 1:
                texts.append(payload)
            elif op == 8:
                code = close_info(payload)[0]
                return code, texts, total, "close"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def close_info(payload):
    if len(payload) >= 2:
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode(errors="replace")
    return None, ""


# --------------------------------------------------------------------------- misc


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt(secret, payload, header=None, alg="sha256"):
    """A JWT signed with HMAC (alg=None: no signature)."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(payload, separators=(",", ":")).encode())
    if alg is None:
        return signing_input + "."
    import hmac as _hmac
    sig = _hmac.new(secret.encode(), signing_input.encode(), getattr(hashlib, alg)).digest()
    return signing_input + "." + b64url(sig)


def self_signed_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                       capture_output=True, text=True, timeout=30)
    require(r.returncode == 0, "openssl req failed: " + r.stderr)
    ctx = ssl.create_default_context(cafile=cert)
    return cert, key, ctx
