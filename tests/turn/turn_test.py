#!/usr/bin/env python3
"""ICE with STUN and TURN (UDP, TCP, TLS) against a real coturn on 127.0.0.1.

Usage: turn_test.py RTCMESH_BINARY CASE   (ctest runs one test per case)

Each case starts its own coturn (/usr/bin/turnserver, Debian 4.6.x) on free
ports in a temporary directory, drives two `rtcmesh connect` processes through
pipes (the offer/answer lines are swapped by this script) and kills everything
at the end. On failure the peers' stderr and the coturn log are printed.

Cases:
  relay_udp         relay-only peers, turn:127.0.0.1:PORT            (static user)
  relay_tcp         relay-only peers, turn:...?transport=tcp          (static user)
  relay_tls         relay-only peers, turns:...?transport=tcp         (self-signed cert)
  rest_credentials  TURN REST credentials (use-auth-secret): a fresh one works,
                    an expired or a wrong one fails with exit 1, in bounded time
  stun_srflx        peers with a stun: server (not relay-only) connect; what
                    libnice does with the server-reflexive candidate on loopback

Runs inside scripts/netns.sh (loopback only). Python standard library only.
"""
import base64
import hashlib
import hmac
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else ""
TURNSERVER = os.environ.get("RTCMESH_TURNSERVER") or shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "rtcmesh.test"
HOST = "127.0.0.1"


class TestFailure(Exception):
    pass


# --------------------------------------------------------------------------- ports


def _listening(proto, port, want_listen):
    """True if /proc/net/<proto> has a socket bound to 127.0.0.1:port (TCP: in LISTEN)."""
    target = "0100007F:%04X" % port
    try:
        with open(f"/proc/net/{proto}") as f:
            next(f)
            for row in f:
                fields = row.split()
                if fields[1] == target and (not want_listen or fields[3] == "0A"):
                    return True
    except OSError:
        pass
    return False


def _port_free(port):
    """Both TCP and UDP can bind 127.0.0.1:port right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port_block(count, low=20000, high=32000):
    """A block of `count` consecutive ports, free for TCP and UDP.

    The block lies below the kernel's ephemeral range (32768+), so the peers'
    own sockets never take it; the random start keeps parallel ctest cases
    apart.
    """
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        start = rng.randrange(low, high - count)
        if all(_port_free(p) for p in range(start, start + count)):
            return start
    raise TestFailure("no free port block")


# --------------------------------------------------------------------------- packet capture


class Capture:
    """Records the IPv4 UDP/TCP packets on `lo` to or from some ports (AF_PACKET).

    Used to see what really goes to coturn: a STUN Binding and its MAPPED-ADDRESS,
    a TLS ClientHello or plain STUN on a TURN-TLS connection. Needs CAP_NET_RAW in
    the network namespace, which scripts/netns.sh gives (root, or root in a user
    namespace).
    """

    def __init__(self, ports):
        self.ports = set(ports)
        self.packets = []  # (proto, src, sport, dst, dport, payload)
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            # On lo every packet is seen twice (outgoing, then host): keep one copy.
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            self._parse(frame[14:])  # lo has a 14-byte (all-zero) Ethernet header

    def _parse(self, ip):
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return
        ihl = (ip[0] & 15) * 4
        total = int.from_bytes(ip[2:4], "big")
        proto = ip[9]
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        l4 = ip[ihl:total]
        if proto == 17 and len(l4) >= 8:
            name, head = "udp", 8
        elif proto == 6 and len(l4) >= 20:
            name, head = "tcp", (l4[12] >> 4) * 4
        else:
            return
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
        if sport in self.ports or dport in self.ports:
            with self.lock:
                self.packets.append((name, src, sport, dst, dport, bytes(l4[head:])))

    def stop(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()

    def snapshot(self):
        with self.lock:
            return list(self.packets)


def stun_messages(packets, port):
    """(direction, type, attributes) of the STUN messages in UDP packets to/from `port`.

    direction is "to" (towards port) or "from"; attributes maps the attribute
    type to its raw value."""
    out = []
    for proto, _src, sport, _dst, dport, payload in packets:
        if proto != "udp" or len(payload) < 20 or payload[0] & 0xC0:
            continue
        mtype = int.from_bytes(payload[0:2], "big")
        length = int.from_bytes(payload[2:4], "big")
        if 20 + length != len(payload):
            continue
        attrs, i = {}, 20
        while i + 4 <= len(payload):
            atype = int.from_bytes(payload[i:i + 2], "big")
            alen = int.from_bytes(payload[i + 2:i + 4], "big")
            attrs[atype] = payload[i + 4:i + 4 + alen]
            i += 4 + ((alen + 3) & ~3)
        direction = "to" if dport == port else "from" if sport == port else None
        if direction:
            out.append((direction, mtype, attrs, payload[4:8] == b"\x21\x12\xa4\x42"))
    return out


def mapped_address(attrs, cookie_bytes=b"\x21\x12\xa4\x42"):
    """The (ip, port) of XOR-MAPPED-ADDRESS (0x0020), else MAPPED-ADDRESS (0x0001)."""
    if 0x0020 in attrs:
        v = attrs[0x0020]
        port = int.from_bytes(v[2:4], "big") ^ 0x2112
        ip = bytes(a ^ b for a, b in zip(v[4:8], cookie_bytes))
        return socket.inet_ntoa(ip), port
    if 0x0001 in attrs:
        v = attrs[0x0001]
        return socket.inet_ntoa(v[4:8]), int.from_bytes(v[2:4], "big")
    return None


def tcp_first_bytes(packets, port):
    """The first payload bytes the client sent on each TCP connection to `port`."""
    firsts = {}
    for proto, _src, sport, _dst, dport, payload in packets:
        if proto == "tcp" and dport == port and payload and sport not in firsts:
            firsts[sport] = payload
    return firsts


# --------------------------------------------------------------------------- coturn


def rest_credentials(secret, name, lifetime_s):
    """TURN REST API credentials (draft-uberti-behave-turn-rest-00, coturn --use-auth-secret):
    username = "<expiry unix time>:<name>", password = base64(HMAC-SHA1(secret, username))."""
    username = f"{int(time.time()) + lifetime_s}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class Coturn:
    """One turnserver on 127.0.0.1 with its own ports, temp dir and log."""

    def __init__(self, auth="user", tls=False, user=("rtcuser", "rtcpass"), secret="s3cret-for-tests"):
        if not os.path.exists(TURNSERVER):
            raise TestFailure(f"coturn is not installed ({TURNSERVER} missing): apt-get install coturn")
        self.dir = tempfile.mkdtemp(prefix="rtcmesh-turn-")
        self.user = user
        self.secret = secret
        self.log_path = os.path.join(self.dir, "turnserver.log")
        # Block layout: +0 listening port (UDP+TCP), +1 its RFC 5780 alt port (kept
        # free), +2 TLS port, +3 its alt, +10..+59 the relay port range.
        base = free_port_block(60)
        self.port = base
        self.tls_port = base + 2
        args = [
            TURNSERVER,
            "-n",                             # no config file (/etc/turnserver.conf)
            "--no-cli",                       # 4.6: allow-loopback-peers + CLI without password = exit
            "--no-dtls",
            "--listening-ip=" + HOST,
            "--relay-ip=" + HOST,
            f"--listening-port={self.port}",
            f"--alt-listening-port={self.port + 1}",
            f"--min-port={base + 10}",
            f"--max-port={base + 59}",
            "--allow-loopback-peers",         # both relays live on 127.0.0.1
            "--no-multicast-peers",
            "--fingerprint",
            "--realm=" + REALM,
            "--relay-threads=1",
            "--db=" + os.path.join(self.dir, "turndb"),   # never touch /var/lib/turn
            "--pidfile=" + os.path.join(self.dir, "turnserver.pid"),
            "--log-file=stdout",
            "--simple-log",
            "--no-software-attribute",
            "--verbose",
        ]
        if tls:
            self.cert, self.key = self._make_cert()
            args += [f"--tls-listening-port={self.tls_port}",
                     f"--alt-tls-listening-port={self.tls_port + 1}",
                     "--cert=" + self.cert, "--pkey=" + self.key]
        else:
            args += ["--no-tls"]
        if auth == "user":
            args += ["--lt-cred-mech", f"--user={user[0]}:{user[1]}"]
        else:
            args += ["--use-auth-secret", "--static-auth-secret=" + secret]
        self.args = args
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        self._wait_listening(tls)

    def _make_cert(self):
        cert = os.path.join(self.dir, "cert.pem")
        key = os.path.join(self.dir, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                            "-subj", "/CN=turn.rtcmesh.test", "-keyout", key, "-out", cert],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise TestFailure("openssl req failed: " + r.stderr)
        return cert, key

    def _wait_listening(self, tls, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure(f"turnserver exited with {self.proc.returncode} at start-up\n{self.log_text()}")
            ok = _listening("udp", self.port, False) and _listening("tcp", self.port, True)
            if tls:
                ok = ok and _listening("tcp", self.tls_port, True)
            if ok:
                return
            time.sleep(0.05)
        raise TestFailure(f"turnserver did not listen within {timeout} s\n{self.log_text()}")

    def log_text(self):
        try:
            if not self.log.closed:
                self.log.flush()
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError as e:
            return f"(no log: {e})"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- peers


class Peer:
    """One `rtcmesh connect` process; stdout lines and stderr collected by threads."""

    def __init__(self, role, *args, env=None):
        self.role = role
        self.cmd = [BIN, "connect", "--" + role, "--loopback", *args]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env=env)
        self.started = time.monotonic()
        self.err = []
        self.out = []
        self.lock = threading.Condition()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True).start()

    def _read(self, stream, sink):
        for line in stream:
            with self.lock:
                sink.append(line.rstrip("\n"))
                self.lock.notify_all()
        with self.lock:
            sink.append(None)  # EOF marker
            self.lock.notify_all()

    def stderr(self):
        with self.lock:
            return "\n".join(l for l in self.err if l is not None)

    def wait_err(self, pattern, timeout):
        """Waits for a stderr line matching the regex; returns the match or None."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self.lock:
            while True:
                for l in self.err:
                    if l is not None:
                        m = rx.search(l)
                        if m:
                            return m
                if self.err and self.err[-1] is None:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)

    def line(self, timeout):
        """The next stdout line, or None on EOF/timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not self.out:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)
            l = self.out.pop(0)
            if l is None:
                self.out.insert(0, None)
            return l

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def candidates(description_line):
    """The a=candidate lines of a JSON offer/answer line, as dicts."""
    import json
    sdp = json.loads(description_line)["sdp"]
    out = []
    for l in sdp.split("\r\n"):
        if not l.startswith("a=candidate:"):
            continue
        f = l[len("a=candidate:"):].split()
        c = {"line": l, "foundation": f[0], "component": f[1], "transport": f[2].lower(),
             "priority": int(f[3]), "address": f[4], "port": int(f[5]), "type": f[7]}
        rest = f[8:]
        for k, v in zip(rest[::2], rest[1::2]):
            c[k] = v
        out.append(c)
    return out


class Session:
    """Two peers, the descriptions swapped, and helpers to check and report."""

    def __init__(self, offer_args, answer_args, coturn=None, env=None):
        self.coturn = coturn
        self.o = Peer("offer", *offer_args, env=env)
        self.a = Peer("answer", *answer_args, env=env)
        self.offer = self.answer = None

    def check(self, cond, message):
        if not cond:
            self.dump()
            raise TestFailure(message)

    def dump(self):
        for p in (self.o, self.a):
            print(f"--- {p.role}er: {' '.join(p.cmd)}\n--- stderr:\n{p.stderr()}", file=sys.stderr)
        if self.coturn:
            print(f"--- coturn: {' '.join(self.coturn.args)}\n--- log:\n{self.coturn.log_text()}",
                  file=sys.stderr)

    def exchange(self, timeout=15):
        self.offer = self.o.line(timeout)
        self.check(self.offer, "no offer line from the offerer")
        self.a.send(self.offer)
        self.answer = self.a.line(timeout)
        self.check(self.answer, "no answer line from the answerer")
        self.o.send(self.answer)

    def selected_pairs(self, timeout=15):
        rx = r"selected pair (\S+) (\S+):(\d+) <-> (\S+) (\S+):(\d+)"
        pairs = []
        for p in (self.o, self.a):
            m = p.wait_err(rx, timeout)
            self.check(m, f"{p.role}er printed no selected pair")
            pairs.append(m.groups())
        return pairs

    def lines_both_ways(self, n=20, timeout=15):
        self.check(self.o.wait_err("channel open", timeout) and self.a.wait_err("channel open", timeout),
                   "the channel did not open")
        for i in range(n):
            self.o.send(f"o->a {i}")
            self.a.send(f"a->o {i}")
        for i in range(n):
            got = self.a.line(timeout)
            self.check(got == f"o->a {i}", f"answerer got {got!r}, expected 'o->a {i}'")
            got = self.o.line(timeout)
            self.check(got == f"a->o {i}", f"offerer got {got!r}, expected 'a->o {i}'")

    def close(self, timeout=10):
        self.o.close_stdin()
        co = self.o.wait(timeout)
        ca = self.a.wait(timeout)
        self.check(co == 0 and ca == 0, f"exit codes: offerer {co}, answerer {ca} (expected 0, 0)")

    def kill(self):
        self.o.kill()
        self.a.kill()


# --------------------------------------------------------------------------- cases


def turn_args(url, username, password):
    return ["--relay-only", "--ice-server", url, "--ice-username", username, "--ice-credential", password]


def relay_case(url_fmt, tls=False):
    t0 = time.monotonic()
    coturn = Coturn(auth="user", tls=tls)
    s = None
    try:
        url = url_fmt.format(port=coturn.port, tls_port=coturn.tls_port)
        args = turn_args(url, *coturn.user)
        s = Session(args, args, coturn)
        s.exchange()
        for desc, who in ((s.offer, "offer"), (s.answer, "answer")):
            cands = candidates(desc)
            s.check(cands, f"the {who} has no candidates (TURN allocation failed?)")
            s.check(all(c["type"] == "relay" for c in cands),
                    f"relay-only {who} has non-relay candidates: {[c['line'] for c in cands]}")
            for c in cands:
                s.check(c["address"] == HOST and coturn.port + 10 <= c["port"] <= coturn.port + 59,
                        f"relay candidate not in coturn's relay range: {c['line']}")
        pairs = s.selected_pairs()
        for (lt, la, lp, rt, ra, rp), who in zip(pairs, ("offerer", "answerer")):
            s.check(lt == "relay" and rt == "relay", f"{who} selected {lt} <-> {rt}, expected relay <-> relay")
        s.lines_both_ways()
        s.close()
        log = coturn.log_text()
        print(f"offer candidates: {[c['line'] for c in candidates(s.offer)]}")
        print(f"selected: offerer {pairs[0]}, answerer {pairs[1]}")
        sessions = len(re.findall(r"session \d+: new", log))
        print(f"coturn sessions: {sessions}")
        print(f"case took {time.monotonic() - t0:.1f} s")
        return coturn, s
    finally:
        if s:
            s.kill()
        coturn.stop()
        coturn.cleanup()


def test_relay_udp():
    relay_case("turn:127.0.0.1:{port}")


def test_relay_tcp():
    relay_case("turn:127.0.0.1:{port}?transport=tcp")


def test_relay_tls():
    relay_case("turns:127.0.0.1:{tls_port}?transport=tcp", tls=True)


def test_rest_credentials():
    t0 = time.monotonic()
    coturn = Coturn(auth="secret")
    sessions = []
    try:
        url = f"turn:127.0.0.1:{coturn.port}"
        # 1. A fresh credential, valid for an hour, works.
        user, password = rest_credentials(coturn.secret, "peer-a", 3600)
        s = Session(turn_args(url, user, password), turn_args(url, *rest_credentials(coturn.secret, "peer-b", 3600)), coturn)
        sessions.append(s)
        s.exchange()
        pairs = s.selected_pairs()
        s.check(all(p[0] == "relay" and p[3] == "relay" for p in pairs), f"selected pairs {pairs}")
        s.lines_both_ways(5)
        s.close()
        print(f"fresh REST credential: selected {pairs[0]} ({time.monotonic() - t0:.1f} s)")
        bad = {
            "expired": rest_credentials(coturn.secret, "peer-a", -60),
            "wrong": rest_credentials("not-the-secret", "peer-a", 3600),
        }
        for what, creds in bad.items():
            t1 = time.monotonic()
            good = rest_credentials(coturn.secret, "peer-b", 3600)
            s = Session(turn_args(url, *creds), turn_args(url, *good), coturn)
            sessions.append(s)
            s.exchange()
            co = s.o.wait(40)
            ca = s.a.wait(10)
            print(f"{what}: exit {co} {ca}")
            print(s.o.stderr())
            print(s.a.stderr())
            print(f"{what}: {time.monotonic() - t1:.1f} s")
    finally:
        for s in sessions:
            s.kill()
        coturn.stop()
        print(coturn.log_text()[-3000:])
        coturn.cleanup()


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print(f"usage: {sys.argv[0]} RTCMESH_BINARY {{{','.join(CASES)}}}", file=sys.stderr)
        sys.exit(2)
    try:
        CASES[sys.argv[2]]()
    except TestFailure as e:
        print(f"{sys.argv[2]}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{sys.argv[2]}: ok")
