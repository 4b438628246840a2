"""coturn on 127.0.0.1, packets on lo, and two `rtcmesh connect` peers that
connect through it (tests/turn, and the hub's TURN credentials in tests/hub).

coturn is required: a missing turnserver fails the test, it never skips."""
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

from .connect import ConnectPeer
from .failures import TestFailure, require
from .process import HOST, port_free

TURNSERVER = os.environ.get("RTCMESH_TURNSERVER") or shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "rtcmesh.test"

# What a peer says when a TURN server rejects its credential, and what its remote then says.
CRED_REJECTED = r"ICE failed: relay-only ICE gathered no relay candidate"
REMOTE_EMPTY = r"ICE failed: the remote peer signalled end-of-candidates without any candidate"


# --------------------------------------------------------------------------- ports

def bound(proto, port, listening, pid):
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




PORTS_PER_RANGE = 1500  # a range of its own for each case, as ctest runs them in parallel


def free_port_block(count, range_index):
    """`count` consecutive ports free for TCP and UDP, in range `range_index`
    (20000 + range_index * 1500) below the kernel's ephemeral ports (32768+), so
    neither another case nor a peer's socket takes them between this check and
    coturn's bind."""
    low = 20000 + range_index * PORTS_PER_RANGE
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        start = rng.randrange(low, low + PORTS_PER_RANGE - count)
        if all(port_free(p) for p in range(start, start + count)):
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



# --------------------------------------------------------------------------- coturn


def rest_credentials(secret, name, lifetime_s):
    """TURN REST API credentials as coturn --use-auth-secret checks them:
    username "<expiry unix time>:<name>", password base64(HMAC-SHA1(secret, username))."""
    username = f"{int(time.time()) + lifetime_s}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class Coturn:
    """One turnserver on 127.0.0.1: own ports, temp dir, log, optional TLS."""

    def __init__(self, port_range, auth="user", tls=False, cert_ip=HOST, user=("rtcuser", "rtcpass"),
                 secret="s3cret-for-tests", extra_args=()):
        """port_range: this test's own block of ports (free_port_block)."""
        if not os.path.exists(TURNSERVER):
            raise TestFailure(f"coturn is not installed ({TURNSERVER} missing): apt-get install coturn")
        self.dir = tempfile.mkdtemp(prefix="rtcmesh-turn-")
        self.user, self.secret = user, secret
        self.log_path = os.path.join(self.dir, "turnserver.log")
        # Ports: +0 listening (UDP and TCP), +1 its RFC 5780 alternate, +2 TLS,
        # +3 its alternate, +10..+59 relay ports.
        base = free_port_block(60, port_range)
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
            ok = bound("udp", self.port, False, pid) and bound("tcp", self.port, True, pid)
            if ok and (not tls or bound("tcp", self.tls_port, True, pid)):
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

    def __init__(self, binary, name, offer_args, answer_args, coturn=None, env=None, offer_loopback=True):
        self.name, self.coturn = name, coturn
        self.t0 = time.monotonic()
        self.o = ConnectPeer(binary, "offer", offer_args, env=env, loopback=offer_loopback)
        self.a = ConnectPeer(binary, "answer", answer_args, env=env)
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

