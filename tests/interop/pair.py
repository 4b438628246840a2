#!/usr/bin/python3
"""Drive two `connect`-protocol peers against each other.

  pair.py --offerer "<cmd...>" --answerer "<cmd...>" [--scenario NAME]
          [--timeout S] [--expect-checked N] [--isolate] [--verbose]

Both commands are shlex-split and started with pipes on stdin/stdout/stderr.
The offer line printed by the offerer is written to the answerer's stdin, the
answer line printed by the answerer is written back to the offerer's stdin.
Then, per scenario:

  selftest           one side runs --selftest, the other --echo. Passes when the
                     selftest side prints {"selftest":"pass",...} (with at least
                     --expect-checked checks), the side that did not run the
                     selftest prints "rtcmesh: channel closed" after the selftest
                     side closes, and both exit 0 by themselves. A
                     {"selftest":"checked"} line (--expect-remote-close) makes
                     the driver close the other side's stdin.
  lines              after both sides print "rtcmesh: channel open", text and
                     binary lines written to the offerer's stdin must appear,
                     in order, on the answerer's stdout and vice versa; then
                     the offerer's stdin is closed and both must print
                     "rtcmesh: channel closed" and exit 0.
  close-by-offerer   after both are open, close the offerer's stdin: the
  close-by-answerer  answerer must print "rtcmesh: channel closed" and both must
                     exit 0 (mirrored for close-by-answerer).
  matrix             the driven side (--driven, the peer under test) gets lines
                     on its stdin; the other side runs --echo. After both are
                     open: (1) text and binary messages of 0 B, 1 B, 16 KiB,
                     64 KiB - 1, 64 KiB and 256 KiB (sizes above the smaller
                     a=max-message-size of the two descriptions, absent = 64 KiB,
                     or above --max-size, are skipped and reported), each
                     written, echoed and compared byte for byte; (2) a burst of
                     --burst mixed messages written back to back, whose echoes
                     must match byte for byte and, on an ordered channel, in
                     order; (3) --close-by closes its stdin, the other side must
                     print "rtcmesh: channel closed", and both must exit 0.
                     --partial (maxRetransmits / maxPacketLifeTime channels):
                     a lost echo is re-sent with fresh content (up to 5 times,
                     2 s each) and the burst may lose messages (the echoes must
                     still be sent messages, in order if ordered, and at least
                     one must arrive); corruption or a type change never passes.
                     --unordered: the burst's echoes may come in any order.
                     --report FILE writes every check's outcome as JSON (the
                     interop table in docs/interop.md is made from these files
                     by table.py).

--isolate re-runs the driver inside a new network namespace that has only the
loopback interface (unshare --net), so no peer can reach or offer anything but
127.0.0.1. Every process the peers started is killed at the end (the driver is
a child subreaper, so grandchildren such as browsers cannot escape). Exit code
0 on pass, 1 on fail (the stderr of both peers is printed on failure).
--isolate-veth is --isolate plus a veth pair whose both ends stay in the
namespace (rtm0 10.66.0.1/24, rtm1 10.66.0.2/24) and a default route on rtm0:
Firefox calls a namespace without a default route offline and gathers nothing
(nor on 127.0.0.1). Packets to other addresses go out rtm0 into rtm1 and die.
"""

import argparse
import base64
import ctypes
import json
import os
import queue
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.failures import TestFailure  # noqa: E402
from rtcmesh_testlib.process import Process  # noqa: E402

ISOLATED_ENV = "RTCMESH_PAIR_ISOLATED"
OPEN_PREFIX = b"rtcmesh: channel open"
CHECK_PREFIX = b"interop-check:"  # a peer saw the other side break the protocol
CLOSED_PREFIX = b"rtcmesh: channel closed"
SCENARIOS = ("selftest", "lines", "close-by-offerer", "close-by-answerer", "matrix")
MATRIX_SIZES = (0, 1, 16384, 65535, 65536, 262144)


Fail = TestFailure


TEXT_POOL = (
    [chr(c) for c in range(0x20, 0x7F)] * 4  # printable ASCII, weighted
    + ["\u00e9", "\u00df", "\u00f8", "\u20ac", "\u4e2d", "\u2713", "\U0001F600", "\U0001F680"]
)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pair.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--offerer", required=True, help="offerer command line (shlex-split)")
    p.add_argument("--answerer", required=True, help="answerer command line (shlex-split)")
    p.add_argument("--scenario", default="selftest", choices=SCENARIOS)
    p.add_argument("--timeout", type=float, default=60.0, help="overall time limit in seconds")
    p.add_argument("--expect-checked", type=int, default=0,
                   help="selftest: minimum number of checked messages")
    p.add_argument("--exit-grace", type=float, default=10.0,
                   help="seconds a peer gets to exit after its part is done")
    p.add_argument("--isolate", action="store_true",
                   help="run inside a new loopback-only network namespace")
    p.add_argument("--isolate-veth", action="store_true",
                   help="--isolate, plus a veth pair inside the namespace (10.66.0.1/24 and "
                        "10.66.0.2/24) and a default route on it, for Firefox")
    p.add_argument("--verbose", "-v", action="store_true", help="stream both peers' stderr")
    m = p.add_argument_group("matrix scenario")
    m.add_argument("--driven", choices=("offerer", "answerer"), default="offerer",
                   help="the side whose stdin gets the messages (the other side runs --echo)")
    m.add_argument("--close-by", choices=("offerer", "answerer"), default="offerer",
                   help="the side that closes the channel at the end")
    m.add_argument("--max-size", type=int, default=0,
                   help="skip sizes above this (0: the descriptions' a=max-message-size decides)")
    m.add_argument("--burst", type=int, default=40, help="messages in the burst")
    m.add_argument("--partial", action="store_true",
                   help="partially reliable channel: loss is allowed, corruption is not")
    m.add_argument("--unordered", action="store_true", help="unordered channel")
    m.add_argument("--report", help="write the outcome of every check to this JSON file")
    m.add_argument("--name", default="", help="test name recorded in the report")
    p.add_argument("--retry-if", metavar="REGEX",
                   help="run a failed pair once more when a peer's stderr matches REGEX (a known "
                        "race of the other stack, documented where the test is declared); the "
                        "report records it")
    return p.parse_args(argv)


def reexec_isolated(argv):
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not unshare or not ip:
        print("pair: FAIL: --isolate needs unshare (util-linux) and ip (iproute2)", file=sys.stderr)
        sys.exit(1)
    cmd = [unshare, "--net"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    setup = [f"{shlex.quote(ip)} link set lo up"]
    if parse_args(argv).isolate_veth:
        setup += [f"{shlex.quote(ip)} {c}" for c in (
            "link add rtm0 type veth peer name rtm1",
            "addr add 10.66.0.1/24 dev rtm0", "addr add 10.66.0.2/24 dev rtm1",
            "link set rtm0 up", "link set rtm1 up", "route add default dev rtm0")]
    cmd += ["--", "/bin/sh", "-c", " && ".join(setup) + ' && exec "$@"', "sh",
            sys.executable, os.path.abspath(__file__)] + argv
    env = dict(os.environ)
    env[ISOLATED_ENV] = "1"
    try:
        os.execve(unshare, cmd, env)
    except OSError as e:
        print(f"pair: FAIL: cannot run {unshare}: {e}", file=sys.stderr)
        sys.exit(1)


def become_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(root_pid):
    """All live descendants of root_pid, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...
        rest = data[data.rfind(b")") + 2:].split()
        try:
            ppid = int(rest[1])
        except (IndexError, ValueError):
            continue
        # zombies are walked through (a SIGKILLed node can still be the parent
        # of its browser) but not returned: they are dead, reaped below
        children.setdefault(ppid, []).append((int(entry), rest[:1] == [b"Z"]))
    out, stack = [], [root_pid]
    while stack:
        for c, zombie in children.get(stack.pop(), []):
            if not zombie:
                out.append(c)
            stack.append(c)
    return out


class Peer(Process):
    """One side: a shell-split command whose stdout and stderr lines (bytes) go
    to the Pair's event queue as ("stdout"|"stderr", line), then
    ("stdout-eof"|"stderr-eof", None) and ("exit", code)."""

    def __init__(self, role, cmd, events, verbose):
        self.role = role
        self.cmd = cmd
        self.queue = events
        self.verbose = verbose
        self.lines = []          # stdout lines after the signalling line
        self.signal_line = None
        self.opened_at = None
        self.closed_seen = False
        self.rc = None
        self.stdin_closed = False
        self.stderr_eof = False
        argv = shlex.split(cmd)
        if not argv:
            raise Fail(f"empty {role} command")
        try:
            super().__init__(argv, role, binary=True, new_session=True, on_line=self._on_line,
                             on_eof=self._on_eof)
        except OSError as e:
            raise Fail(f"cannot start the {role} ({argv[0]}): {e}") from None
        threading.Thread(target=self._wait, daemon=True).start()

    def _on_line(self, stream, line):
        if stream == "err" and self.verbose:
            sys.stderr.write(f"[{self.role}] {line.decode('utf-8', 'replace')}\n")
            sys.stderr.flush()
        self.queue.put((self, "stdout" if stream == "out" else "stderr", line))

    def _on_eof(self, stream):
        self.queue.put((self, "stdout-eof" if stream == "out" else "stderr-eof", None))

    def _wait(self):
        rc = self.proc.wait()
        self.queue.put((self, "exit", rc))

    def write_line(self, data: bytes):
        if self.stdin_closed:
            raise Fail(f"internal: write to the {self.role}'s closed stdin")
        try:
            self.proc.stdin.write(data + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise Fail(f"writing to the {self.role}'s stdin failed: {e}") from None

    def close_stdin(self):
        if not self.stdin_closed:
            self.stdin_closed = True
            super().close_stdin()


class Pair:
    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.timeout
        self.events = queue.Queue()
        self.marks = {}
        self.selftest_results = {}
        self.checks = []
        self.report_data = {}
        self.offer_sdp = self.answer_sdp = ""
        self.peers = []
        self.offerer = Peer("offerer", args.offerer, self.events, args.verbose)
        self.peers.append(self.offerer)
        self.answerer = Peer("answerer", args.answerer, self.events, args.verbose)
        self.peers.append(self.answerer)

    def other(self, peer):
        return self.answerer if peer is self.offerer else self.offerer

    def mark(self, name):
        self.marks[name] = time.monotonic() - self.t0

    # -- event pump -------------------------------------------------------

    def handle(self, peer, kind, data):
        if kind == "stdout":
            if peer.signal_line is None:
                if data.strip():
                    peer.signal_line = data
                return
            peer.lines.append(data)
            if data.startswith(b"{\"selftest\""):
                try:
                    obj = json.loads(data)
                except ValueError:
                    return
                if isinstance(obj, dict) and "selftest" in obj:
                    self.on_selftest_line(peer, obj)
        elif kind == "stderr":
            if data.startswith(OPEN_PREFIX) and peer.opened_at is None:
                peer.opened_at = time.monotonic() - self.t0
            elif data.startswith(CLOSED_PREFIX):
                peer.closed_seen = True
            elif data.startswith(CHECK_PREFIX):
                self.checks.append(f"{peer.role}: {data.decode('utf-8', 'replace')}")
        elif kind == "stderr-eof":
            peer.stderr_eof = True
        elif kind == "exit":
            peer.rc = data

    def on_selftest_line(self, peer, obj):
        if obj["selftest"] == "checked":
            # --expect-remote-close: the selftest peer waits for the other side to close
            self.mark(f"{peer.role} selftest checked")
            self.other(peer).close_stdin()
        elif obj["selftest"] in ("pass", "fail"):
            self.mark(f"{peer.role} selftest result")
            self.selftest_results[peer.role] = obj

    def pump_until(self, cond, what, deadline=None):
        """Process events until cond() is true; Fail on timeout."""
        deadline = min(deadline or self.deadline, self.deadline)
        while True:
            r = cond()
            if r:
                return r
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"timed out {what}")
            try:
                peer, kind, data = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.handle(peer, kind, data)

    def no_early_exit(self, *peers):
        for p in peers:
            if p.rc is not None:
                raise Fail(f"the {p.role} exited early with code {p.rc}")

    # -- steps ------------------------------------------------------------

    def read_signal(self, peer, expected):
        def cond():
            if peer.signal_line is not None:
                return True
            self.no_early_exit(peer)
            return False

        self.pump_until(cond, f"waiting for the {peer.role}'s {expected} line")
        try:
            obj = json.loads(peer.signal_line)
        except ValueError:
            raise Fail(f"the {peer.role}'s first stdout line is not JSON: "
                       f"{peer.signal_line[:200]!r}") from None
        if not isinstance(obj, dict) or obj.get("type") != expected or not isinstance(obj.get("sdp"), str):
            raise Fail(f"the {peer.role}'s first stdout line is not a {expected}: "
                       f"{peer.signal_line[:200]!r}")
        return peer.signal_line

    def signal(self):
        offer = self.read_signal(self.offerer, "offer")
        self.offer_sdp = json.loads(offer)["sdp"]
        self.mark("offer")
        self.answerer.write_line(offer)
        answer = self.read_signal(self.answerer, "answer")
        self.answer_sdp = json.loads(answer)["sdp"]
        self.mark("answer")
        self.offerer.write_line(answer)

    def wait_open(self):
        def cond():
            if self.offerer.opened_at is not None and self.answerer.opened_at is not None:
                return True
            self.no_early_exit(self.offerer, self.answerer)
            return False

        self.pump_until(cond, "waiting for both sides to print 'rtcmesh: channel open'")
        self.mark("open")

    def wait_exit(self, peer, what, grace=None):
        deadline = time.monotonic() + grace if grace else None
        self.pump_until(lambda: peer.rc is not None, f"waiting for the {peer.role} to exit ({what})",
                        deadline)
        if peer.rc != 0:
            raise Fail(f"the {peer.role} exited with code {peer.rc} ({what})")

    def expect_closed_status(self, peer):
        # the exit event can overtake the last stderr lines: wait for stderr EOF
        # (bounded, in case a grandchild keeps the pipe open)
        try:
            self.pump_until(lambda: peer.closed_seen or peer.stderr_eof,
                            f"waiting for the {peer.role}'s stderr", time.monotonic() + 2.0)
        except Fail:
            pass
        if not peer.closed_seen:
            raise Fail(f"the {peer.role} did not print 'rtcmesh: channel closed'")

    def _drain_quiet(self, seconds):
        """Process events for a short while; used after an exit so late lines arrive."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return True
            try:
                peer, kind, data = self.events.get(timeout=left)
            except queue.Empty:
                return True
            self.handle(peer, kind, data)


    # -- matrix -----------------------------------------------------------

    def max_message_size(self):
        """The smaller a=max-message-size of the two descriptions (RFC 8841:
        absent means 64 KiB, 0 means no limit), capped by --max-size."""
        limit = None
        for sdp in (self.offer_sdp, self.answer_sdp):
            m = re.search(r"^a=max-message-size:(\d+)", sdp, re.M)
            v = int(m.group(1)) if m else 65536
            if v and (limit is None or v < limit):
                limit = v
        if self.args.max_size and (limit is None or self.args.max_size < limit):
            limit = self.args.max_size
        return limit

    @staticmethod
    def random_text(rng, nbytes):
        """Random UTF-8 text of exactly nbytes: no line breaks, never starting
        with "binary:" (the line protocol's binary marker)."""
        out, left = [], nbytes
        while left > 0:
            ch = rng.choice(TEXT_POOL)
            n = len(ch.encode("utf-8"))
            if n > left:
                ch, n = chr(rng.randrange(0x21, 0x7F)), 1
            out.append(ch)
            left -= n
        return "".join(out).encode("utf-8")

    @staticmethod
    def as_line(kind, payload):
        return b"binary:" + base64.b64encode(payload) if kind == "binary" else payload

    def wait_lines(self, dst, start, count, seconds, settle=None):
        """Waits until dst has `count` lines past `start`, or `seconds` pass, or
        (with settle) no new line came for `settle` seconds. Returns the lines."""
        end = time.monotonic() + seconds
        last_n, last_t = len(dst.lines), time.monotonic()
        while len(dst.lines) - start < count:
            now = time.monotonic()
            if len(dst.lines) != last_n:
                last_n, last_t = len(dst.lines), now
            if now >= end or (settle is not None and now - last_t >= settle):
                break
            self.no_early_exit(self.offerer, self.answerer)
            try:
                peer, kind, data = self.events.get(timeout=min(0.05, max(end - now, 0.001)))
            except queue.Empty:
                continue
            self.handle(peer, kind, data)
        return dst.lines[start:]

    def scenario_matrix(self):
        a = self.args
        driven = self.offerer if a.driven == "offerer" else self.answerer
        self.wait_open()
        limit = self.max_message_size()
        seed = int.from_bytes(os.urandom(8), "big")
        rng = random.Random(seed)
        self.report_data.update({"seed": seed, "max_message_size": limit, "checks": {}})
        checks = self.report_data["checks"]
        attempts, per_try = (5, 2.0) if a.partial else (1, 20.0)
        earlier = set()
        for size in MATRIX_SIZES:
            for kind in ("text", "binary"):
                key = f"{kind}:{size}"
                if limit is not None and size > limit:
                    checks[key] = "skipped"
                    continue
                checks[key] = "fail"
                sent = []
                ok = False
                for attempt in range(attempts):
                    payload = self.random_text(rng, size) if kind == "text" else rng.randbytes(size)
                    line = self.as_line(kind, payload)
                    sent.append(line)
                    start = len(driven.lines)
                    driven.write_line(line)
                    deadline = time.monotonic() + per_try
                    while not ok:
                        got = self.wait_lines(driven, start, 1, max(deadline - time.monotonic(), 0))
                        if not got:
                            break
                        start += 1
                        if got[0] in sent:
                            ok = True
                        elif a.partial and got[0] in earlier:
                            continue  # a late echo of an earlier case
                        else:
                            raise Fail(f"{key}: sent {len(line)} B line, the echo differs "
                                       f"({len(got[0])} B: {got[0][:60]!r})")
                    if ok:
                        break
                if not ok:
                    raise Fail(f"{key}: no echo after {attempts} attempt(s) of {per_try:.0f} s")
                earlier.update(sent)
                checks[key] = "pass" if len(sent) == 1 else f"pass (resent {len(sent) - 1})"
                self.mark(key)
        # burst: back to back, one write
        kinds = []
        for i in range(a.burst):
            size = rng.choice((0, 1, 7, 100, 1000, 1200, 4096, 16384)) if i % 10 else 65535
            if limit is not None and size > limit:
                size = limit
            kind = "text" if i % 2 == 0 else "binary"
            payload = self.random_text(rng, size) if kind == "text" else rng.randbytes(size)
            kinds.append(self.as_line(kind, payload))
        start = len(driven.lines)
        try:
            driven.proc.stdin.write(b"".join(line + b"\n" for line in kinds))
            driven.proc.stdin.flush()
        except OSError as e:
            raise Fail(f"writing the burst failed: {e}") from None
        got = self.wait_lines(driven, start, len(kinds), 30.0, settle=3.0 if a.partial else None)
        if a.partial:
            # late echoes of resent cases of step (1) may still arrive
            got = [line for line in got if line not in earlier or line in kinds]
        got = got[:len(kinds)]
        self.mark("burst")
        checks["burst"] = "fail"
        if not a.partial:
            if len(got) != len(kinds):
                raise Fail(f"burst: {len(got)} of {len(kinds)} echoes came back")
            if a.unordered:
                if sorted(got) != sorted(kinds):
                    raise Fail("burst: the echoes differ from the sent messages")
            elif got != kinds:
                i = next(i for i, (x, y) in enumerate(zip(got, kinds)) if x != y)
                raise Fail(f"burst: echo {i} differs from message {i} (out of order or corrupt)")
        else:
            pool = list(kinds)
            pos = 0
            for i, line in enumerate(got):
                if a.unordered:
                    if line not in pool:
                        raise Fail(f"burst: echo {i} was never sent (or came twice)")
                    pool.remove(line)
                else:
                    try:
                        pos = kinds.index(line, pos) + 1
                    except ValueError:
                        raise Fail(f"burst: echo {i} is out of order or was never sent") from None
            # With maxRetransmits 0 a lost fragment loses the whole message:
            # werift and aiortc overflow their UDP receive buffers on a burst and
            # may keep a third of it. Loss is allowed; silence is not.
            if not got:
                raise Fail(f"burst: none of {len(kinds)} echoes came back")
        checks["burst"] = f"pass ({len(got)}/{len(kinds)})"
        closer = self.offerer if a.close_by == "offerer" else self.answerer
        self.scenario_close(closer, already_open=True)
        checks[f"close by {a.close_by}"] = "pass"

    # -- scenarios --------------------------------------------------------

    def scenario_selftest(self):
        def cond():
            if self.selftest_results:
                return True
            if self.offerer.rc is not None or self.answerer.rc is not None:
                self._drain_quiet(0.3)
                if self.selftest_results:
                    return True
                self.no_early_exit(self.offerer, self.answerer)
            return False

        self.pump_until(cond, "waiting for a selftest result line")
        if len(self.selftest_results) != 1:
            raise Fail(f"expected one selftest side, got results from {sorted(self.selftest_results)}")
        role, res = next(iter(self.selftest_results.items()))
        tester = self.offerer if role == "offerer" else self.answerer
        echoer = self.other(tester)
        print(f"pair: {role} selftest result: {json.dumps(res)}")
        if res["selftest"] != "pass":
            raise Fail(f"selftest failed: {res.get('reason')}")
        if res.get("checked", 0) < self.args.expect_checked:
            raise Fail(f"selftest checked {res.get('checked')} messages, expected at least "
                       f"{self.args.expect_checked} (skipped: {res.get('skipped')})")
        self.wait_exit(tester, "after its selftest", self.args.exit_grace)
        self.mark("tester exit")
        self.wait_exit(echoer, "after the selftest side closed", self.args.exit_grace)
        self.mark("echoer exit")
        self.expect_closed_status(echoer)

    def scenario_lines(self):
        self.wait_open()
        blob = bytes(range(256)) * 3
        a_lines = [
            b"hello from the offerer",
            b"",
            "unicode: h\u00e9llo w\u00f6rld \u2713 \U0001F600".encode("utf-8"),
            b"binary:" + base64.b64encode(blob),
            b"binary:",
            b"binary:AA==",
            b"x" * 5000,
            b"last line from the offerer",
        ]
        b_lines = [
            b"hello from the answerer",
            b"binary:" + base64.b64encode(b"\x00\xff\x7f\x80"),
            b"",
            "\u4e2d\u6587 \u20ac".encode("utf-8"),
            b"last line from the answerer",
        ]
        self.transfer(self.offerer, self.answerer, a_lines)
        self.mark("offerer->answerer")
        self.transfer(self.answerer, self.offerer, b_lines)
        self.mark("answerer->offerer")
        self.offerer.close_stdin()
        self.wait_exit(self.answerer, "after the offerer closed", self.args.exit_grace)
        self.wait_exit(self.offerer, "after end of its stdin", self.args.exit_grace)
        self.mark("exit")
        self.expect_closed_status(self.answerer)
        self.expect_closed_status(self.offerer)

    def transfer(self, src, dst, lines):
        start = len(dst.lines)
        for line in lines:
            src.write_line(line)

        def cond():
            if len(dst.lines) - start >= len(lines):
                return True
            self.no_early_exit(src, dst)
            return False

        try:
            self.pump_until(cond, f"waiting for {len(lines)} lines on the {dst.role}'s stdout")
        except Fail as e:
            got = dst.lines[start:]
            raise Fail(f"{e}; got {len(got)}: {[g[:80] for g in got]}") from None
        got = dst.lines[start:start + len(lines)]
        for i, (want, have) in enumerate(zip(lines, got)):
            if want != have:
                raise Fail(f"{src.role}->{dst.role} line {i}: sent {want[:100]!r} "
                           f"({len(want)} B), received {have[:100]!r} ({len(have)} B)")

    def scenario_close(self, closer, already_open=False):
        if not already_open:
            self.wait_open()
        other = self.other(closer)
        closer.close_stdin()
        self.mark(f"{closer.role} stdin closed")
        self.wait_exit(other, f"after the {closer.role} closed", self.args.exit_grace)
        self.mark(f"{other.role} exit")
        self.expect_closed_status(other)
        self.wait_exit(closer, "after end of its stdin", self.args.exit_grace)
        self.mark(f"{closer.role} exit")

    def run(self):
        self.signal()
        s = self.args.scenario
        if s == "selftest":
            self.scenario_selftest()
        elif s == "lines":
            self.scenario_lines()
        elif s == "close-by-offerer":
            self.scenario_close(self.offerer)
        elif s == "close-by-answerer":
            self.scenario_close(self.answerer)
        elif s == "matrix":
            self.scenario_matrix()
        # late stderr lines (a peer's own interop-check) arrive before its stderr EOF
        self._drain_until_stderr_eof(2.0)
        if self.checks:
            raise Fail("a peer reported a protocol problem: " + " | ".join(self.checks))

    def _drain_until_stderr_eof(self, seconds):
        end = time.monotonic() + seconds
        try:
            self.pump_until(lambda: all(p.stderr_eof for p in self.peers if p.rc is not None),
                            "draining stderr", end)
        except Fail:
            pass

    def cleanup(self):
        """Kill everything the peers started; returns the number of leftovers."""
        leftovers = 0
        for p in self.peers:
            if p.proc.poll() is None:
                leftovers += 1
                try:
                    os.killpg(p.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.proc.kill()
        stray = descendants(os.getpid())
        for pid in stray:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for p in self.peers:
            try:
                p.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # a second sweep: what was re-parented to us meanwhile (subreaper)
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # reap orphans that were re-parented to us (subreaper)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.02)
        return leftovers, len(stray)

    def report(self, ok, msg):
        timing = " ".join(f"{k}={v:.2f}s" for k, v in self.marks.items())
        total = time.monotonic() - self.t0
        if ok:
            print(f"pair: PASS scenario={self.args.scenario} total={total:.2f}s {timing}")
        else:
            print(f"pair: FAIL scenario={self.args.scenario}: {msg}")
            print(f"pair: after {total:.2f}s {timing}")
            for p in self.peers:
                print(f"----- {p.role}: {p.cmd}")
                print(f"----- {p.role} exit code: {p.rc}")
                stderr = p.stderr_lines()
                print(f"----- {p.role} stderr ({len(stderr)} lines):")
                for line in stderr[-200:]:
                    print("  " + line.decode("utf-8", "replace"))
                tail = [p.signal_line] + p.lines if p.signal_line is not None else p.lines
                print(f"----- {p.role} stdout ({len(tail)} lines; the last ones, cut to 200 B):")
                for line in tail[-20:]:
                    print(f"  [{len(line)} B] " + line[:200].decode("utf-8", "replace"))
        sys.stdout.flush()


def write_report(args, pair, ok, msg):
    data = {"name": args.name, "scenario": args.scenario, "ok": ok, "error": msg,
            "driven": args.driven, "close_by": args.close_by,
            "seconds": round(time.monotonic() - pair.t0, 2)}
    data.update(pair.report_data)
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    tmp = args.report + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, args.report)


def main():
    args = parse_args(sys.argv[1:])
    if (args.isolate or args.isolate_veth) and os.environ.get(ISOLATED_ENV) != "1":
        reexec_isolated(sys.argv[1:])
    if args.report:
        try:
            os.remove(args.report)  # no stale outcome if this run dies early
        except FileNotFoundError:
            pass
    become_subreaper()
    retried = None
    for attempt in (1, 2):
        pair = None
        ok, msg = False, ""
        try:
            pair = Pair(args)
            pair.run()
            ok = True
        except Fail as e:
            msg = str(e)
        except KeyboardInterrupt:
            msg = "interrupted"
        finally:
            if pair is not None:
                leftovers, stray = pair.cleanup()
                if args.verbose and stray:
                    print(f"pair: killed {stray} leftover processes")
        if pair is None:
            print(f"pair: FAIL: {msg}")
            sys.exit(1)
        if ok or attempt == 2 or not args.retry_if:
            break
        pattern = re.compile(args.retry_if.encode())
        hit = next((line for p in pair.peers for line in p.stderr_lines() if pattern.search(line)), None)
        if hit is None:
            break
        # a known race of the other stack, named by --retry-if: once more
        pair.report(ok, msg)
        retried = hit.decode("utf-8", "replace")
        print(f"pair: RETRY: the other stack's known race ({retried[:160]}); running the pair once more")
    pair.report(ok, msg)
    if retried is not None:
        pair.report_data["retried"] = retried
    if args.report:
        write_report(args, pair, ok, msg)
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
