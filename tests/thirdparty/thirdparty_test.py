#!/usr/bin/python3
"""Third-party clients against rtcmesh, through a real hub on 127.0.0.1.

Usage: thirdparty_test.py RTCMESH_BINARY CASE

Cases:
  aiortc_joins_room  hub + native `rtcmesh peer --json` (nat-1); the aiortc
                     client (aio-1) joins and offers to nat-1; then a second
                     native peer (nat-2) joins and offers to aio-1, so aiortc
                     both offers and answers. The mesh forms, every channel
                     carries hello, chat goes both ways with each native peer,
                     and ping/pong works.

Exit 0 on pass, 1 on failure (with every process's output on stderr).
Run inside a loopback-only network namespace (scripts/netns.sh).
"""

import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.monotonic()
DIAG = []
DIAG_LOCK = threading.Lock()


def log(msg):
    sys.stderr.write(f"thirdparty_test [{time.monotonic() - T0:.1f}s]: {msg}\n")
    sys.stderr.flush()


def diag(line):
    with DIAG_LOCK:
        DIAG.append(line)


class Fail(Exception):
    pass


class Proc:
    """A child process whose stdout lines are JSON events."""

    def __init__(self, name, argv, json_stdout=True):
        self.name = name
        self.events = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)
        self.stderr_lines = queue.Queue()
        threading.Thread(target=self._read_stdout, args=(json_stdout,), daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self, json_stdout):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            diag(f"{self.name} out: {line}")
            if not json_stdout:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()

    def _read_stderr(self):
        for raw in self.p.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            diag(f"{self.name} err: {line}")
            self.stderr_lines.put(line)

    def wait_event(self, what, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail(f"timed out after {timeout:.0f} s waiting for {self.name}: {what}")
                if self.p.poll() is not None:
                    raise Fail(f"{self.name} exited ({self.p.returncode}) while waiting for {what}")
                self.cond.wait(min(left, 0.2))

    def channel_open(self, peer):
        with self.cond:
            state = False
            for ev in self.events:
                if ev.get("peer") == peer and ev.get("event") == "channel-open":
                    state = True
                elif ev.get("peer") == peer and ev.get("event") == "channel-closed":
                    state = False
            return state

    def write(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_until(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise Fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def start_hub(binary, procs):
    hub = Proc("hub", [binary, "hub", "--listen", "127.0.0.1:0"], json_stdout=False)
    procs.append(hub)
    deadline = time.monotonic() + 10
    pat = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/ \(signaling (ws://127\.0\.0\.1:\d+/signaling)\)")
    while time.monotonic() < deadline:
        try:
            line = hub.stderr_lines.get(timeout=0.2)
        except queue.Empty:
            if hub.p.poll() is not None:
                raise Fail(f"the hub exited early ({hub.p.returncode})")
            continue
        m = pat.search(line)
        if m:
            log(f"hub at {m.group(2)}")
            return m.group(2)
    raise Fail("the hub did not print its listening line within 10 s")


def native(binary, hub, room, ident, tmp):
    return Proc(ident, [binary, "peer", "--hub", hub, "--room", room, "--id", ident,
                        "--name", ident, "--json", "--download-dir", os.path.join(tmp, ident)])


def case_aiortc_joins_room(binary, procs, tmp):
    hub = start_hub(binary, procs)
    room = "tp-" + secrets.token_hex(3)

    nat1 = native(binary, hub, room, "nat-1", tmp)
    procs.append(nat1)
    nat1.wait_event("joined", lambda e: e.get("event") == "joined", 15)

    aio = Proc("aio-1", ["/usr/bin/python3", os.path.join(HERE, "aiortc_client.py"),
                         "--hub", hub, "--room", room, "--id", "aio-1", "--name", "aiortc"])
    procs.append(aio)
    joined = aio.wait_event("joined", lambda e: e.get("event") == "joined", 15)
    if joined.get("peers") != ["nat-1"]:
        raise Fail(f"aio-1's welcome lists {joined.get('peers')}, expected ['nat-1']")
    nat1.wait_event("peer-joined aio-1", lambda e: e.get("event") == "peer-joined" and e.get("peer") == "aio-1", 10)

    # aiortc offered (it is the newcomer); both sides see the channel open
    wait_until("the aio-1 <-> nat-1 channel", lambda: aio.channel_open("nat-1") and nat1.channel_open("aio-1"), 20)
    hello = aio.wait_event("hello from nat-1", lambda e: e.get("event") == "hello" and e.get("from") == "nat-1", 10)
    if not isinstance(hello.get("capabilities"), list) or "chat" not in hello["capabilities"]:
        raise Fail(f"nat-1's hello has no chat capability: {hello}")
    log(f"aio-1 <-> nat-1 open; nat-1 says hello as {hello.get('agent')}")

    # second native peer: it offers to aiortc, which answers
    nat2 = native(binary, hub, room, "nat-2", tmp)
    procs.append(nat2)
    j2 = nat2.wait_event("joined", lambda e: e.get("event") == "joined", 15)
    if sorted(j2.get("peers", [])) != ["aio-1", "nat-1"]:
        raise Fail(f"nat-2's welcome lists {j2.get('peers')}")
    wait_until("the 3-peer mesh", lambda: aio.channel_open("nat-2") and nat2.channel_open("aio-1")
               and nat1.channel_open("nat-2") and nat2.channel_open("nat-1"), 20)
    aio.wait_event("hello from nat-2", lambda e: e.get("event") == "hello" and e.get("from") == "nat-2", 10)
    log("mesh of 3 formed (aiortc offered to nat-1 and answered nat-2)")

    # chat both ways with each native peer
    nonce = secrets.token_hex(4)
    text_a = f"hello from aiortc {nonce} \u00e9\u4e2d"
    aio.write(text_a)
    for n in (nat1, nat2):
        ev = n.wait_event("chat from aio-1", lambda e: e.get("event") == "chat" and e.get("from") == "aio-1"
                          and e.get("text") == text_a, 10)
        if ev.get("relayed") is not False:
            raise Fail(f"{n.name}: the chat came relayed: {ev}")
    for n in (nat1, nat2):
        text_n = f"hello from {n.name} {nonce}"
        n.write(text_n)
        aio.wait_event(f"chat from {n.name}", lambda e, n=n, t=text_n: e.get("event") == "chat"
                       and e.get("from") == n.name and e.get("text") == t and e.get("relayed") is False, 10)
    log("chat ok both ways with nat-1 and nat-2")

    # ping/pong (3.2): the native peers answer aiortc's pings
    aio.write("/ping")
    for n in ("nat-1", "nat-2"):
        ev = aio.wait_event(f"pong from {n}", lambda e, n=n: e.get("event") == "pong" and e.get("from") == n, 10)
        log(f"pong from {n}: {ev['rtt_ms']} ms")

    # aiortc leaves: the native peers see it go
    aio.write("/quit")
    try:
        aio.p.wait(10)
    except subprocess.TimeoutExpired:
        raise Fail("aio-1 did not exit within 10 s of /quit") from None
    if aio.p.returncode != 0:
        raise Fail(f"aio-1 exited with {aio.p.returncode}")
    for n in (nat1, nat2):
        n.wait_event("peer-left aio-1", lambda e: e.get("event") == "peer-left" and e.get("peer") == "aio-1", 10)


CASES = {"aiortc_joins_room": case_aiortc_joins_room}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.stderr.write(f"usage: thirdparty_test.py RTCMESH_BINARY ({'|'.join(CASES)})\n")
        return 2
    binary, case = sys.argv[1], sys.argv[2]
    procs = []
    tmp = tempfile.mkdtemp(prefix="rtcmesh-thirdparty-")
    code = 0
    try:
        CASES[case](binary, procs, tmp)
        log(f"{case}: pass")
    except Fail as e:
        code = 1
        log(f"{case}: FAIL: {e}")
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if code:
            with DIAG_LOCK:
                sys.stderr.write("---- output of every process (last 300 lines)\n" + "\n".join(DIAG[-300:]) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
