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

import os
import secrets
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.failures import TestFailure as Fail  # noqa: E402
from rtcmesh_testlib.hub import Hub  # noqa: E402
from rtcmesh_testlib.peer import MeshPeer, channel_open  # noqa: E402
from rtcmesh_testlib.process import Process, wait_until  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.monotonic()
DIAG = []
DIAG_LOCK = threading.Lock()


def log(msg):
    sys.stderr.write(f"thirdparty_test [{time.monotonic() - T0:.1f}s]: {msg}\n")
    sys.stderr.flush()


def diag(name):
    """An on_line callback that keeps every line of process `name` for the failure report."""
    def on_line(stream, line):
        with DIAG_LOCK:
            DIAG.append(f"{name} {stream}: {line}")
    return on_line


def start_hub(binary, procs):
    hub = Hub(binary, on_line=diag("hub"))
    procs.append(hub)
    log(f"hub at {hub.url}")
    return hub.url


def native(binary, hub, room, ident, tmp):
    return MeshPeer(binary, hub, ident, os.path.join(tmp, ident), ["--name", ident], room,
                    reconnect_ms=None, node_timeout=None, on_line=diag(ident))


def case_aiortc_joins_room(binary, procs, tmp):
    hub = start_hub(binary, procs)
    room = "tp-" + secrets.token_hex(3)

    nat1 = native(binary, hub, room, "nat-1", tmp)
    procs.append(nat1)
    nat1.wait_event("joined", lambda e: e.get("event") == "joined", 15)

    aio = Process(["/usr/bin/python3", os.path.join(HERE, "aiortc_client.py"),
                   "--hub", hub, "--room", room, "--id", "aio-1", "--name", "aiortc"], "aio-1",
                  stdout="json", on_line=diag("aio-1"))
    procs.append(aio)
    joined = aio.wait_event("joined", lambda e: e.get("event") == "joined", 15)
    if joined.get("peers") != ["nat-1"]:
        raise Fail(f"aio-1's welcome lists {joined.get('peers')}, expected ['nat-1']")
    nat1.wait_event("peer-joined aio-1", lambda e: e.get("event") == "peer-joined" and e.get("peer") == "aio-1", 10)

    # aiortc offered (it is the newcomer); both sides see the channel open
    wait_until("the aio-1 <-> nat-1 channel", lambda: channel_open(aio, "nat-1") and nat1.channel_open("aio-1"), 20)
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
    wait_until("the 3-peer mesh", lambda: channel_open(aio, "nat-2") and nat2.channel_open("aio-1")
               and nat1.channel_open("nat-2") and nat2.channel_open("nat-1"), 20)
    aio.wait_event("hello from nat-2", lambda e: e.get("event") == "hello" and e.get("from") == "nat-2", 10)
    log("mesh of 3 formed (aiortc offered to nat-1 and answered nat-2)")

    # chat both ways with each native peer
    nonce = secrets.token_hex(4)
    text_a = f"hello from aiortc {nonce} \u00e9\u4e2d"
    aio.send(text_a)
    for n in (nat1, nat2):
        ev = n.wait_event("chat from aio-1", lambda e: e.get("event") == "chat" and e.get("from") == "aio-1"
                          and e.get("text") == text_a, 10)
        if ev.get("relayed") is not False:
            raise Fail(f"{n.name}: the chat came relayed: {ev}")
    for n in (nat1, nat2):
        text_n = f"hello from {n.name} {nonce}"
        n.send(text_n)
        aio.wait_event(f"chat from {n.name}", lambda e, n=n, t=text_n: e.get("event") == "chat"
                       and e.get("from") == n.name and e.get("text") == t and e.get("relayed") is False, 10)
    log("chat ok both ways with nat-1 and nat-2")

    # ping/pong (3.2): the native peers answer aiortc's pings
    aio.send("/ping")
    for n in ("nat-1", "nat-2"):
        ev = aio.wait_event(f"pong from {n}", lambda e, n=n: e.get("event") == "pong" and e.get("from") == n, 10)
        log(f"pong from {n}: {ev['rtt_ms']} ms")

    # aiortc leaves: the native peers see it go
    aio.send("/quit")
    if aio.wait(10) is None:
        raise Fail("aio-1 did not exit within 10 s of /quit")
    if aio.proc.returncode != 0:
        raise Fail(f"aio-1 exited with {aio.proc.returncode}")
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
            p.terminate(5)
        shutil.rmtree(tmp, ignore_errors=True)
        if code:
            with DIAG_LOCK:
                sys.stderr.write("---- output of every process (last 300 lines)\n" + "\n".join(DIAG[-300:]) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
