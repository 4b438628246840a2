#!/usr/bin/env python3
"""ICE with STUN and TURN (UDP, TCP, TLS) against a real coturn on 127.0.0.1.

Usage: turn_test.py RTCMESH_BINARY CASE   (ctest runs one test per case)

Each case starts its own coturn (/usr/bin/turnserver, Debian 12: 4.6.1) on free
ports with a temporary directory, drives two `rtcmesh connect` processes
through pipes (this script carries the offer and answer lines between them),
and kills everything at the end. It records the packets to and from coturn on
`lo` (AF_PACKET) to check what really went on the wire. On failure it prints
both peers' stderr and the coturn log.

Cases:
  relay_udp         relay-only peers, turn:127.0.0.1:PORT (long-term user)
  relay_tcp         relay-only peers, turn:127.0.0.1:PORT?transport=tcp
  relay_tls         relay-only peers, turns:127.0.0.1:TLSPORT?transport=tcp: real TLS
                    on the wire, and an untrusted or wrongly named certificate fails
  rest_credentials  TURN REST credentials (--use-auth-secret): a fresh one works;
                    an expired one and a wrong one fail with exit 1, quickly
  stun_srflx        peers with a stun: server (not relay-only) connect; on plain
                    loopback the mapped address equals the host candidate, so libnice
                    drops the srflx candidate as redundant (RFC 8445 section 5.1.3)
  stun_srflx_nat    the same behind a NAT made with nftables on loopback (the offerer
                    on 127.77.0.2, seen as 127.77.0.3): a distinct srflx is gathered and,
                    with the direct path blocked, the pair host <-> srflx is selected.
                    Needs /usr/sbin/nft (Debian package nftables): exit 77 (skip) without

Runs inside scripts/netns.sh (only loopback; root there gives CAP_NET_RAW for the
capture and CAP_NET_ADMIN for nft). Python standard library only. A missing
coturn fails the test.
"""
import base64
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else ""
TURNSERVER = os.environ.get("RTCMESH_TURNSERVER") or shutil.which("turnserver") or "/usr/bin/turnserver"
HOST = "127.0.0.1"
REALM = "rtcmesh.test"
STUN_COOKIE = b"\x21\x12\xa4\x42"


class TestFailure(Exception):
    pass


def require(cond, message):
    if not cond:
        raise TestFailure(message)


# --------------------------------------------------------------------------- ports


def _bound(proto, port, listening, pid):
    """True if process `pid` has a socket on 127.0.0.1:port (TCP: listening)."""
    target = "0100007F:%04X" % port
    inodes = set()
    try:
        with open(f"/proc/net/{proto}") as f:
            next(f)
            for row in f:
                fields = row.split()
                if fields[1] == target and (not listening or fields[3] == "0A"):
                    inodes.add(fields[9])
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    except OSError:
        pass
    return False


def _port_free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


PORTS_PER_CASE = 1500  # a range of its own for each case, as ctest runs them in parallel
CASE_INDEX = 0         # set in main


def free_port_block(count):
    """`count` consecutive ports free for TCP and UDP, in this case's own range
    below the kernel's ephemeral ports (32768+), so neither another case nor a
    peer's socket takes them between this check and coturn's bind."""
    low = 20000 + CASE_INDEX * PORTS_PER_CASE
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        start = rng.randrange(low, low + PORTS_PER_CASE - count)
        if all(_port_free(p) for p in range(start, start + count)):
            return start
    raise TestFailure("no free block of ports")


# --------------------------------------------------------------------------- capture


class Capture:
    """Records IPv4 UDP/TCP packets on `lo` to or from some ports (AF_PACKET)."""

    def __init__(self, ports):
        self.ports = set(ports)
        self.packets = []  # (proto, src, sport, dst, dport, payload)
        self.lock = threading.Lock()
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
            self.sock.bind(("lo", 0))
        except OSError as e:
            raise TestFailure(f"cannot capture on lo ({e}): run inside scripts/netns.sh") from e
        self.sock.settimeout(0.05)
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
            if addr[2] == socket.PACKET_OUTGOING:  # lo shows each packet twice
                continue
            self._parse(frame[14:])  # lo's Ethernet header is 14 zero bytes

    def _parse(self, ip):
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return
        ihl = (ip[0] & 15) * 4
        total = int.from_bytes(ip[2:4], "big")
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        l4 = ip[ihl:total]
        if ip[9] == 17 and len(l4) >= 8:
            proto, head = "udp", 8
        elif ip[9] == 6 and len(l4) >= 20:
            proto, head = "tcp", (l4[12] >> 4) * 4
        else:
            return
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
        if sport in self.ports or dport in self.ports:
            with self.lock:
                self.packets.append((proto, src, sport, dst, dport, bytes(l4[head:])))

    def stop(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()

    def snapshot(self):
        time.sleep(0.1)  # let the reader catch up
        with self.lock:
            return list(self.packets)


def parse_stun(payload):
    """(type, transaction id, attributes, has_cookie) of one STUN message, or None."""
    if len(payload) < 20 or payload[0] & 0xC0:
        return None
    length = int.from_bytes(payload[2:4], "big")
    if 20 + length != len(payload) or length % 4:
        return None
    attrs, i = {}, 20
    while i + 4 <= len(payload):
        atype = int.from_bytes(payload[i:i + 2], "big")
        alen = int.from_bytes(payload[i + 2:i + 4], "big")
        attrs.setdefault(atype, payload[i + 4:i + 4 + alen])
        i += 4 + ((alen + 3) & ~3)
    return int.from_bytes(payload[0:2], "big"), payload[8:20], attrs, payload[4:8] == STUN_COOKIE


def mapped_address(attrs):
    """(ip, port) of XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS (RFC 3489 style)."""
    if 0x0020 in attrs:
        v = attrs[0x0020]
        ip = bytes(a ^ b for a, b in zip(v[4:8], STUN_COOKIE))
        return socket.inet_ntoa(ip), int.from_bytes(v[2:4], "big") ^ 0x2112
    if 0x0001 in attrs:
        v = attrs[0x0001]
        return socket.inet_ntoa(v[4:8]), int.from_bytes(v[2:4], "big")
    return None


def udp_to(packets, port):
    return [p for p in packets if p[0] == "udp" and p[4] == port]


def tcp_streams_to(packets, port):
    """Client -> server bytes of each TCP connection to `port`, by client port."""
    streams = {}
    for proto, _src, sport, _dst, dport, payload in packets:
        if proto == "tcp" and dport == port and payload:
            streams[sport] = streams.get(sport, b"") + payload
    return streams


def answered_bindings(packets, port):
    """(src, sport, has_cookie, mapped) of each STUN Binding to `port` that got a success response."""
    requests, out = {}, []
    for proto, src, sport, _dst, dport, payload in packets:
        m = parse_stun(payload) if proto == "udp" else None
        if m and m[0] == 0x0001 and dport == port:
            requests[m[1]] = (src, sport, m[3])
        elif m and m[0] == 0x0101 and sport == port and m[1] in requests:
            out.append((*requests[m[1]], mapped_address(m[2])))
    return out


# --------------------------------------------------------------------------- coturn


def rest_credentials(secret, name, lifetime_s):
    """TURN REST API credentials as coturn --use-auth-secret checks them:
    username "<expiry unix time>:<name>", password base64(HMAC-SHA1(secret, username))."""
    username = f"{int(time.time()) + lifetime_s}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class Coturn:
    """One turnserver on 127.0.0.1: own ports, temp dir, log, optional TLS."""

    def __init__(self, auth="user", tls=False, cert_ip=HOST, user=("rtcuser", "rtcpass"),
                 secret="s3cret-for-tests", extra_args=()):
        if not os.path.exists(TURNSERVER):
            raise TestFailure(f"coturn is not installed ({TURNSERVER} missing): apt-get install coturn")
        self.dir = tempfile.mkdtemp(prefix="rtcmesh-turn-")
        self.user, self.secret = user, secret
        self.log_path = os.path.join(self.dir, "turnserver.log")
        # Ports: +0 listening (UDP and TCP), +1 its RFC 5780 alternate, +2 TLS,
        # +3 its alternate, +10..+59 relay ports.
        base = free_port_block(60)
        self.port, self.tls_port = base, base + 2
        self.relay_ports = range(base + 10, base + 60)
        self.args = [
            TURNSERVER,
            "-n",                          # no config file (/etc/turnserver.conf)
            "--no-cli",                    # 4.6: CLI + allow-loopback-peers without cli-password exits
            "--no-dtls",
            f"--listening-ip={HOST}",
            f"--relay-ip={HOST}",
            f"--listening-port={self.port}",
            f"--alt-listening-port={self.port + 1}",
            f"--min-port={self.relay_ports.start}",
            f"--max-port={self.relay_ports.stop - 1}",
            "--allow-loopback-peers",      # both peers' relays are 127.0.0.1
            "--no-multicast-peers",
            "--fingerprint",
            f"--realm={REALM}",
            "--relay-threads=1",
            f"--db={os.path.join(self.dir, 'turndb')}",  # not /var/lib/turn/turndb
            f"--pidfile={os.path.join(self.dir, 'turnserver.pid')}",
            "--log-file=stdout",
            "--simple-log",
            "--no-software-attribute",
            "--verbose",
        ]
        if tls:
            self.cert, self.key = self._make_cert(cert_ip)
            self.args += [f"--tls-listening-port={self.tls_port}",
                          f"--alt-tls-listening-port={self.tls_port + 1}",
                          f"--cert={self.cert}", f"--pkey={self.key}"]
        else:
            self.args += ["--no-tls"]
        if auth == "user":
            self.args += ["--lt-cred-mech", f"--user={user[0]}:{user[1]}"]
        else:
            self.args += ["--use-auth-secret", f"--static-auth-secret={secret}"]
        self.args += list(extra_args)
        self.log = open(self.log_path, "w")
        # coturn must not outlive this script, even when ctest kills it on a
        # timeout: setpriv (util-linux) makes the kernel kill it with its parent.
        # (Construct Coturn on the main thread: the signal follows the thread.)
        setpriv = shutil.which("setpriv")
        wrapper = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        self.proc = subprocess.Popen(wrapper + self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        try:
            self._wait_listening(tls)
        except TestFailure:
            self.stop()
            raise

    def _make_cert(self, ip):
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                            "-subj", "/CN=turn.rtcmesh.test", "-addext", f"subjectAltName=IP:{ip}",
                            "-keyout", key, "-out", cert],
                           capture_output=True, text=True, timeout=30)
        require(r.returncode == 0, "openssl req failed: " + r.stderr)
        return cert, key

    def _wait_listening(self, tls, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure(f"turnserver exited with {self.proc.returncode} at start-up:\n"
                                  f"{' '.join(self.args)}\n{self.log_text()}")
            pid = self.proc.pid
            ok = _bound("udp", self.port, False, pid) and _bound("tcp", self.port, True, pid)
            if ok and (not tls or _bound("tcp", self.tls_port, True, pid)):
                return
            time.sleep(0.02)
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
        if not self.log.closed:
            self.log.close()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- peers


class Peer:
    """One `rtcmesh connect` process; stdout lines and stderr read by threads."""

    def __init__(self, role, args, env=None, loopback=True):
        self.role = role + "er"
        self.cmd = [BIN, "connect", "--" + role, *(["--loopback"] if loopback else []), *args]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env=dict(os.environ, **(env or {})))
        self.err, self.out = [], []
        self.cond = threading.Condition()
        for stream, sink in ((self.proc.stderr, self.err), (self.proc.stdout, self.out)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream, sink):
        for line in stream:
            with self.cond:
                sink.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            sink.append(None)  # EOF
            self.cond.notify_all()

    def stderr(self):
        with self.cond:
            return "\n".join(l for l in self.err if l is not None)

    def wait_err(self, pattern, timeout=15):
        """The first stderr match of the regex, or None (timeout or exit)."""
        deadline, rx = time.monotonic() + timeout, re.compile(pattern)
        with self.cond:
            while True:
                for l in self.err:
                    m = l is not None and rx.search(l)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if (self.err and self.err[-1] is None) or left <= 0:
                    return None
                self.cond.wait(left)

    def line(self, timeout=15):
        """The next stdout line; None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.out:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            if self.out[0] is None:
                return None
            return self.out.pop(0)

    def send(self, line):
        """False if the process no longer reads its stdin."""
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            return False

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout=15):
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
    out = []
    for l in json.loads(description_line)["sdp"].split("\r\n"):
        if l.startswith("a=candidate:"):
            f = l[len("a=candidate:"):].split()
            c = {"line": l, "transport": f[2].lower(), "address": f[4], "port": int(f[5]), "type": f[7]}
            c.update(zip(f[8::2], f[9::2]))
            out.append(c)
    return out


class Session:
    """An offerer and an answerer, the descriptions carried between them."""

    def __init__(self, name, offer_args, answer_args, coturn=None, env=None, offer_loopback=True):
        self.name, self.coturn = name, coturn
        self.t0 = time.monotonic()
        self.o = Peer("offer", offer_args, env=env, loopback=offer_loopback)
        self.a = Peer("answer", answer_args, env=env)
        self.offer = self.answer = None

    def check(self, cond, message):
        if not cond:
            self.dump()
            raise TestFailure(f"{self.name}: {message}")

    def dump(self):
        for p in (self.o, self.a):
            print(f"--- {self.name}: {p.role} ({' '.join(p.cmd)}), exit {p.proc.poll()}, stderr:\n"
                  f"{p.stderr()}", file=sys.stderr)
        if self.coturn:
            print(f"--- coturn ({' '.join(self.coturn.args)}) log:\n{self.coturn.log_text()}",
                  file=sys.stderr)

    def elapsed(self):
        return time.monotonic() - self.t0

    def exchange(self):
        """Carries offer and answer; tolerates a peer that gave up (no line)."""
        self.offer = self.o.line()
        if self.offer is not None:
            self.a.send(self.offer)
            self.answer = self.a.line()
            if self.answer is not None:
                self.o.send(self.answer)

    def expect_connected(self, local_type, remote_type, answerer=None):
        """Channel open, the selected pair of each side (candidate types: the
        offerer's local and remote, and the answerer's, by default the same),
        lines both ways, clean exit."""
        self.exchange()
        self.check(self.offer and self.answer, "no offer or no answer line")
        pairs = []
        for p, want in ((self.o, (local_type, remote_type)), (self.a, answerer or (local_type, remote_type))):
            m = p.wait_err(r"selected pair (\S+) (\S+):(\d+) <-> (\S+) (\S+):(\d+)")
            self.check(m, f"the {p.role} printed no selected pair")
            pairs.append(m.groups())
            self.check((m.group(1), m.group(4)) == want,
                       f"the {p.role} selected {m.group(1)} <-> {m.group(4)}, "
                       f"expected {want[0]} <-> {want[1]}")
        self.check(self.o.wait_err("channel open") and self.a.wait_err("channel open"),
                   "the channel did not open")
        n = 20
        for i in range(n):
            self.o.send(f"o->a {i}")
            self.a.send(f"a->o {i}")
        for i in range(n):
            got = self.a.line()
            self.check(got == f"o->a {i}", f"the answerer got {got!r}, expected 'o->a {i}'")
            got = self.o.line()
            self.check(got == f"a->o {i}", f"the offerer got {got!r}, expected 'a->o {i}'")
        connected_after = self.elapsed()
        self.o.close_stdin()
        co, ca = self.o.wait(), self.a.wait()
        self.check(co == 0 and ca == 0, f"exit codes offerer {co}, answerer {ca}; expected 0 and 0")
        return pairs, connected_after

    def expect_failure(self, bound_s, **messages):
        """Both peers exit 1 (not a crash) within bound_s, no channel opens, and
        each peer's stderr matches its regex (offerer=..., answerer=...)."""
        self.exchange()
        deadline = self.t0 + bound_s
        codes = [p.wait(max(0.1, deadline - time.monotonic())) for p in (self.o, self.a)]
        took = self.elapsed()
        self.check(codes == [1, 1], f"exit codes {codes} after {took:.1f} s; expected [1, 1] "
                                    f"within {bound_s} s (None: still running)")
        for p in (self.o, self.a):
            self.check("channel open" not in p.stderr(), f"a channel opened on the {p.role}")
            pattern = messages.get(p.role)
            self.check(pattern is None or re.search(pattern, p.stderr()),
                       f"the {p.role}'s stderr does not say /{pattern}/")
        return took

    def kill(self):
        self.o.kill()
        self.a.kill()


def turn_args(url, username, password):
    return ["--relay-only", "--ice-server", url, "--ice-username", username, "--ice-credential", password]


def check_relay_only_candidates(s, coturn):
    """Relay-only descriptions carry relay candidates from coturn's range only,
    and do not leak the host address in raddr."""
    for desc, who in ((s.offer, "offer"), (s.answer, "answer")):
        cands = candidates(desc)
        s.check(cands, f"the {who} has no candidate")
        for c in cands:
            s.check(c["type"] == "relay" and c["transport"] == "udp", f"{who}: not a UDP relay: {c['line']}")
            s.check(c["address"] == HOST and c["port"] in coturn.relay_ports,
                    f"{who}: not in coturn's relay range: {c['line']}")
            s.check(c.get("raddr") in ("0.0.0.0", "::") and c.get("rport") == "0",
                    f"{who}: relay-only raddr must not reveal the host address: {c['line']}")


def parallel(calls):
    """Runs the calls in threads; returns their results, raises the first failure."""
    results, errors = [None] * len(calls), []

    def one(i):
        try:
            results[i] = calls[i]()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def run(cleanup, body):
    """Runs body(); then kills what `cleanup` lists (sessions, captures, coturns)."""
    try:
        return body()
    finally:
        for thing in reversed(cleanup):
            try:
                if isinstance(thing, Session):
                    thing.kill()
                elif isinstance(thing, Capture):
                    thing.stop()
                elif isinstance(thing, Coturn):
                    thing.stop()
                    thing.cleanup()
            except Exception as e:  # keep cleaning up
                print(f"cleanup: {e}", file=sys.stderr)


# --------------------------------------------------------------------------- cases


CRED_REJECTED = r"ICE failed: relay-only ICE gathered no relay candidate"
REMOTE_EMPTY = r"ICE failed: the remote peer signalled end-of-candidates without any candidate"


def relay_case(transport):
    t0 = time.monotonic()
    things = []

    def body():
        coturn = Coturn(auth="user", tls=transport == "tls")
        things.append(coturn)
        cap = Capture([coturn.port, coturn.tls_port])
        things.append(cap)
        url = {"udp": f"turn:{HOST}:{coturn.port}",
               "tcp": f"turn:{HOST}:{coturn.port}?transport=tcp",
               "tls": f"turns:{HOST}:{coturn.tls_port}?transport=tcp"}[transport]
        # The TLS tunnel verifies coturn's self-signed certificate: trust it.
        env = {"SSL_CERT_FILE": coturn.cert} if transport == "tls" else {}
        s = Session(f"relay_{transport}", turn_args(url, *coturn.user), turn_args(url, *coturn.user),
                    coturn, env=env)
        things.append(s)
        pairs, took = s.expect_connected("relay", "relay")
        check_relay_only_candidates(s, coturn)
        packets = cap.snapshot()
        allocs_udp = [p for p in udp_to(packets, coturn.port) if (parse_stun(p[5]) or (0,))[0] == 0x0003]
        data_udp = [p for p in udp_to(packets, coturn.port) if p[5] and 0x40 <= p[5][0] <= 0x4F]
        streams = tcp_streams_to(packets, coturn.tls_port if transport == "tls" else coturn.port)
        if transport == "udp":
            s.check(allocs_udp and not streams, "expected TURN Allocate over UDP only")
            s.check(data_udp, "no ChannelData to coturn: the data did not go through the relay")
            wire = f"{len(allocs_udp)} Allocate and {len(data_udp)} ChannelData datagrams to coturn"
        elif transport == "tcp":
            s.check(streams and not allocs_udp, "expected TURN over TCP only")
            s.check(all(b[0:2] == b"\x00\x03" and b[4:8] == STUN_COOKIE for b in streams.values()),
                    "each TCP connection to coturn starts with a plaintext Allocate")
            wire = f"{len(streams)} TCP connections to coturn, each starting with an Allocate"
        else:
            s.check(streams and not allocs_udp, "expected TURN over TLS only")
            for port, data in streams.items():
                # 0x16 0x03: a TLS handshake record (ClientHello). libnice alone
                # would send a plaintext Allocate (0x00 0x03) here.
                s.check(data[0:2] == b"\x16\x03", f"connection from port {port} starts with "
                                                  f"{data[:8].hex()}, not a TLS ClientHello")
                s.check(STUN_COOKIE not in data, f"plaintext STUN seen on the TLS connection from {port}")
            wire = f"{len(streams)} TLS connections to coturn (ClientHello first, no plaintext STUN)"
        print(f"relay_{transport}: offer {[c['line'] for c in candidates(s.offer)]}")
        print(f"relay_{transport}: selected offerer {pairs[0]}, answerer {pairs[1]}")
        print(f"relay_{transport}: connected and 20 lines each way after {took:.2f} s; {wire}")

        if transport == "tls":
            tls_failures(coturn, things)
        print(f"relay_{transport}: case took {time.monotonic() - t0:.1f} s")

    run(things, body)


def tls_failures(coturn, things):
    """turns: must check the server: an untrusted certificate, and a trusted one
    that names another address, both fail the relay-only connection."""
    other = Coturn(auth="user", tls=True, cert_ip="127.0.0.2")
    things.append(other)
    cases = [
        ("untrusted certificate", coturn, {}, r"certificate rejected: self.signed certificate"),
        ("certificate for 127.0.0.2", other, {"SSL_CERT_FILE": other.cert},
         r"certificate rejected: IP address mismatch"),
    ]
    sessions = []
    for what, server, env, _ in cases:  # in parallel: each takes libnice's TCP timeout
        url = f"turns:{HOST}:{server.tls_port}?transport=tcp"
        s = Session(f"relay_tls ({what})", turn_args(url, *server.user), turn_args(url, *server.user),
                    server, env=env)
        things.append(s)
        sessions.append(s)
    results = parallel([lambda s=s, p=pattern: s.expect_failure(15, offerer=p + r"[\s\S]*" + CRED_REJECTED,
                                                                answerer=p)
                        for s, (_, _, _, pattern) in zip(sessions, cases)])
    for s, (what, _, _, _), took in zip(sessions, cases, results):
        print(f"relay_tls: {what}: both peers exit 1 after {took:.1f} s: "
              f"{s.o.wait_err('certificate rejected').string.split('ice: ')[-1]}")


def test_relay_udp():
    relay_case("udp")


def test_relay_tcp():
    relay_case("tcp")


def test_relay_tls():
    relay_case("tls")


def test_rest_credentials():
    t0 = time.monotonic()
    things = []

    def body():
        coturn = Coturn(auth="secret")
        things.append(coturn)
        url = f"turn:{HOST}:{coturn.port}"
        # The form a hub hands out: "<expiry>:<opaque id>" and the HMAC.
        fresh_a = rest_credentials(coturn.secret, "peer-a", 3600)
        fresh_b = rest_credentials(coturn.secret, "peer-b", 3600)
        s = Session("fresh REST credentials", turn_args(url, *fresh_a), turn_args(url, *fresh_b), coturn)
        things.append(s)
        pairs, took = s.expect_connected("relay", "relay")
        check_relay_only_candidates(s, coturn)
        print(f"rest_credentials: fresh ({fresh_a[0]}): relay <-> relay {pairs[0]}, open after {took:.2f} s")

        bad = {
            "expired": rest_credentials(coturn.secret, "peer-x", -60),
            "wrong secret": rest_credentials("not-the-secret", "peer-y", 3600),
        }
        sessions = {}
        for what, creds in bad.items():  # the offerer has the bad credential
            good = rest_credentials(coturn.secret, "peer-b", 3600)
            sessions[what] = Session(f"{what} REST credential", turn_args(url, *creds), turn_args(url, *good),
                                     coturn)
            things.append(sessions[what])
        took = dict(zip(sessions, parallel([
            lambda s=s: s.expect_failure(10, offerer=CRED_REJECTED, answerer=REMOTE_EMPTY)
            for s in sessions.values()])))
        for what, s in sessions.items():
            user = bad[what][0]
            s.check(re.search(rf"user <{re.escape(user)}>: incoming packet \S+ processed, error 401",
                              coturn.log_text()), f"coturn did not answer 401 to {user}")
            print(f"rest_credentials: {what} ({user}): coturn 401, "
                  f"both peers exit 1 after {took[what]:.1f} s")
        print(f"rest_credentials: case took {time.monotonic() - t0:.1f} s")

    run(things, body)


def test_stun_srflx():
    t0 = time.monotonic()
    things = []

    def body():
        coturn = Coturn(auth="user")
        things.append(coturn)
        cap = Capture([coturn.port])
        things.append(cap)
        args = ["--ice-server", f"stun:{HOST}:{coturn.port}"]
        s = Session("stun_srflx", args, args, coturn)
        things.append(s)
        pairs, took = s.expect_connected("host", "host")
        packets = cap.snapshot()
        bindings = answered_bindings(packets, coturn.port)
        for desc, who in ((s.offer, "offerer"), (s.answer, "answerer")):
            cands = candidates(desc)
            hosts = [(c["address"], c["port"]) for c in cands if c["type"] == "host"]
            s.check(hosts, f"the {who} has no host candidate")
            # The Binding exchange happened, from the host candidate's socket...
            mine = [b for b in bindings if b[:2] in hosts]
            s.check(mine, f"no answered STUN Binding from the {who}'s host candidate {hosts}")
            # ...coturn saw it come from exactly that address (no NAT on lo)...
            for src, sport, cookie, mapped in mine:
                s.check(mapped == (src, sport), f"coturn mapped {src}:{sport} to {mapped}")
            # ...so the server-reflexive candidate equals its base, and libnice
            # drops it as redundant (RFC 8445 section 5.1.3): no srflx in the SDP.
            srflx = [c["line"] for c in cands if c["type"] == "srflx"]
            s.check(not srflx, f"the {who} announced srflx on loopback: {srflx}")
            classic = sum(1 for b in mine if not b[2])
            print(f"stun_srflx: {who}: {len(mine)} answered Bindings from its host candidate "
                  f"{mine[0][0]}:{mine[0][1]} ({classic} RFC 3489 style without magic cookie, "
                  f"{len(mine) - classic} RFC 5389), mapped address = host candidate -> no srflx announced")
        print(f"stun_srflx: selected offerer {pairs[0]}, answerer {pairs[1]}; open after {took:.2f} s")
        print(f"stun_srflx: case took {time.monotonic() - t0:.1f} s")

    run(things, body)


SKIPPED = 77  # ctest SKIP_RETURN_CODE
NFT = shutil.which("nft") or "/usr/sbin/nft"
NAT_INSIDE, NAT_OUTSIDE = "127.77.0.2", "127.77.0.3"


class Skip(Exception):
    pass


def nat_rules(table):
    """A full-cone NAT for one host on loopback: UDP from NAT_INSIDE leaves as
    NAT_OUTSIDE (same port when free); UDP to NAT_OUTSIDE is sent on to
    NAT_INSIDE; direct UDP to NAT_INSIDE is dropped unless it is the NAT's doing
    (a translated packet or a reply), so a peer can reach the inside host only
    through its server-reflexive address. Only these two addresses are touched,
    so tests running in parallel on 127.0.0.1 are not affected."""
    return f"""
table ip {table} {{
  chain out_nat {{
    type nat hook output priority -100;
    ip daddr {NAT_OUTSIDE} meta l4proto udp dnat to {NAT_INSIDE};
  }}
  chain post_nat {{
    type nat hook postrouting priority 100;
    ip saddr {NAT_INSIDE} meta l4proto udp snat to {NAT_OUTSIDE};
  }}
  chain out_filter {{
    type filter hook output priority 0;
    ip daddr {NAT_INSIDE} ct direction reply accept;
    ip daddr {NAT_INSIDE} ct status dnat accept;
    ip daddr {NAT_INSIDE} meta l4proto udp drop;
  }}
}}
"""


def test_stun_srflx_nat():
    t0 = time.monotonic()
    if not os.path.exists(NFT):
        raise Skip(f"{NFT} missing (Debian package nftables): the NAT case needs it")
    table = f"rtcmesh_turn_test_{os.getpid()}"
    things = []

    def body():
        r = subprocess.run([NFT, "-f", "-"], input=nat_rules(table), capture_output=True, text=True,
                           timeout=10)
        require(r.returncode == 0, f"nft failed: {r.stderr}")
        coturn = Coturn(auth="user")
        things.append(coturn)
        cap = Capture([coturn.port])
        things.append(cap)
        stun = ["--ice-server", f"stun:{HOST}:{coturn.port}"]
        # The offerer gathers on NAT_INSIDE only (no --loopback), the answerer on 127.0.0.1.
        s = Session("stun_srflx_nat", stun + ["--bind", NAT_INSIDE], stun, coturn, offer_loopback=False)
        things.append(s)
        pairs, took = s.expect_connected("srflx", "host", answerer=("host", "srflx"))
        cands = candidates(s.offer)
        hosts = [c for c in cands if c["type"] == "host"]
        srflx = [c for c in cands if c["type"] == "srflx"]
        s.check(len(hosts) == 1 and hosts[0]["address"] == NAT_INSIDE, f"offer host candidates {hosts}")
        s.check(len(srflx) == 1, f"expected one srflx candidate in the offer: {[c['line'] for c in cands]}")
        c = srflx[0]
        s.check(c["address"] == NAT_OUTSIDE and c.get("raddr") == NAT_INSIDE and
                c.get("rport") == str(hosts[0]["port"]),
                f"srflx must be {NAT_OUTSIDE} with raddr/rport = its host base: {c['line']}")
        mapped = [b[3] for b in answered_bindings(cap.snapshot(), coturn.port) if b[0] == NAT_OUTSIDE]
        s.check((NAT_OUTSIDE, c["port"]) in mapped, f"coturn never mapped the offerer to {c['address']}:"
                                                    f"{c['port']} (mapped: {mapped})")
        # The answerer reached the offerer through its server-reflexive address.
        s.check(pairs[1][3] == "srflx" and (pairs[1][4], int(pairs[1][5])) == (NAT_OUTSIDE, c["port"]),
                f"the answerer's remote candidate is {pairs[1][3:]}, "
                f"expected srflx {NAT_OUTSIDE}:{c['port']}")
        print(f"stun_srflx_nat: offer {[c['line'] for c in cands]}")
        print(f"stun_srflx_nat: selected offerer {pairs[0]}, answerer {pairs[1]}; open after {took:.2f} s")
        print(f"stun_srflx_nat: case took {time.monotonic() - t0:.1f} s")

    try:
        run(things, body)
    finally:
        subprocess.run([NFT, "delete", "table", "ip", table], capture_output=True, timeout=10)


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print(f"usage: {sys.argv[0]} RTCMESH_BINARY {{{','.join(CASES)}}}", file=sys.stderr)
        sys.exit(2)
    CASE_INDEX = list(CASES).index(sys.argv[2])
    try:
        CASES[sys.argv[2]]()
    except Skip as e:
        print(f"{sys.argv[2]}: SKIPPED: {e}")
        sys.exit(SKIPPED)
    except TestFailure as e:
        print(f"{sys.argv[2]}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{sys.argv[2]}: ok")
