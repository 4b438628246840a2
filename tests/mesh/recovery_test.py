#!/usr/bin/env python3
"""Recovery of a broken connection (docs/signaling-protocol.md 2.4), with real processes.

A peer is frozen with SIGSTOP while connected; its partner sees the connection go
`disconnected`. alice sorts before bob, so alice is the impolite side: she restarts ICE on
the same session after --restart-after, and offers a new session if the restart has not
connected --restart-timeout later. The timings are shortened on the command line so that
each case stays well under 40 s; the waits are on events and log lines, not on sleeps.

usage: recovery_test.py RTCMESH_BINARY CASE
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.peer import MeshScene, open_channels  # noqa: E402

BIN = sys.argv[1]

RESTART_AFTER_MS = 1000
RESTART_TIMEOUT_MS = 4000
TIMINGS = ["--restart-after", str(RESTART_AFTER_MS), "--restart-timeout", str(RESTART_TIMEOUT_MS)]
LOG = {"RTCMESH_LOG": "info"}


def connected_pair(s):
    hub = s.hub()
    a = s.peer(hub.url, "alice", TIMINGS, env=LOG)
    a.wait("joined")
    b = s.peer(hub.url, "bob", TIMINGS, env=LOG)
    a.wait("channel-open", peer="bob")
    b.wait("channel-open", peer="alice")
    a.send("before")
    b.wait("chat", text="before")
    return a, b


def sessions_with(peer, other):
    """How many sessions `peer` created or answered with `other` (its info log)."""
    return peer.stderr_count(f"offer to {other} session") + peer.stderr_count(f"answering {other} session")


def last_state(peer, other):
    states = peer.matching("connection", peer=other)
    return states[-1]["state"] if states else None


def wait_connected_after(peer, other, n_events, timeout=20):
    """Waits until `peer` reports `connected` for `other` in an event after the first n_events."""
    deadline = time.monotonic() + timeout
    while True:
        later = peer.matching("connection", peer=other)[n_events:]
        if any(e["state"] == "connected" for e in later) and last_state(peer, other) == "connected":
            return later
        if time.monotonic() > deadline:
            raise AssertionError(f"{peer.id}: not connected to {other} again: {peer.events[-30:]}\n"
                                 f"stderr: {peer.stderr_lines()[-30:]}")
        time.sleep(0.05)


def assert_one_connection(a, b, opened):
    """Exactly one open channel and one /peers row each way, chat both ways, not relayed."""
    for me, other in ((a, b), (b, a)):
        me.wait("channel-open", n=opened, peer=other.id)
        state = open_channels(me)
        assert state == {other.id: 1}, (me.id, state, me.events)
        assert me.count("channel-open", peer=other.id) == opened, me.events
        rows = me.peers()
        assert len(rows) == 1 and rows[0]["peer"] == other.id, rows
        assert rows[0]["state"] == "connected" and rows[0]["channel"] == "open", rows
    for me, other in ((a, b), (b, a)):
        text = f"after recovery from {me.id} {time.monotonic()}"
        me.send(text)
        got = other.wait("chat", text=text, timeout=10)[0]
        assert got["from"] == me.id and got["relayed"] is False, got


def settle():
    # Past every timer the recovery armed: a late restart or new session would show now.
    time.sleep((RESTART_AFTER_MS + RESTART_TIMEOUT_MS) / 1000 + 1)


def test_restart_polite_stopped():
    """bob (polite) frozen: alice restarts ICE on the same session; bob answers it once thawed.

    libnice's restart sometimes ends in "ICE failed" ~5 s later (about 1 run in 3 on a busy
    2-core box). The mesh then recovers through a new session (checked below: one connection,
    chat both ways), but this case is about the restart path, so it is tried up to 3 times and
    must succeed on the same session at least once."""
    attempts = []
    for attempt in range(3):
        with MeshScene(BIN) as s:
            a, b = connected_pair(s)
            b.stop()
            a.wait("connection", peer="bob", state="disconnected", timeout=15)
            n = len(a.matching("connection", peer="bob"))
            a.wait_stderr("ICE restart towards bob", timeout=RESTART_AFTER_MS / 1000 + 5)
            b.cont()
            wait_connected_after(a, "bob", n)
            b.wait_stderr("answered an ICE restart from alice", timeout=10)
            settle()
            if a.stderr_count("bob: ICE failed") or b.stderr_count("alice: ICE failed"):
                # Recovered by a new session instead: still exactly one working connection.
                attempts.append("ICE failed after the restart; recovered by a new session")
                assert_one_connection(a, b, opened=2)
                continue
            # Same session: the channel was never closed, no second offer was made.
            for me in (a, b):
                assert me.count("channel-closed") == 0 and me.count("connection", state="closed") == 0, \
                    (me.events, me.stderr_lines()[-40:])
            assert sessions_with(a, "bob") == 1 and sessions_with(b, "alice") == 1, (a.stderr_lines()[-40:], b.stderr_lines()[-40:])
            assert a.stderr_count("ICE restart towards bob") == 1, a.stderr_lines()[-40:]
            assert_one_connection(a, b, opened=1)
            print(f"restart on the same session succeeded on attempt {attempt + 1} {attempts}")
            return
    raise AssertionError(f"the ICE restart never recovered on the same session: {attempts}")


def test_new_session_polite_stopped():
    """bob (polite) frozen past the restart timeout: alice replaces the connection by a new
    session, and bob, thawed, answers it and drops the old one: one connection survives."""
    with MeshScene(BIN) as s:
        a, b = connected_pair(s)
        offers = a.stderr_count("offer to bob session")
        b.stop()
        a.wait("connection", peer="bob", state="disconnected", timeout=15)
        a.wait_stderr("ICE restart towards bob", timeout=RESTART_AFTER_MS / 1000 + 5)
        a.wait_stderr("offer to bob session", n=offers + 1, timeout=RESTART_TIMEOUT_MS / 1000 + 5)
        a.wait("channel-closed", peer="bob", timeout=5)
        b.cont()
        a.wait("channel-open", n=2, peer="bob", timeout=20)
        b.wait("channel-open", n=2, peer="alice", timeout=20)
        settle()
        assert a.count("channel-closed", peer="bob") == 1, a.events
        assert b.count("channel-closed", peer="alice") == 1, b.events
        assert sessions_with(a, "bob") == 2 and sessions_with(b, "alice") == 2, (a.stderr_lines()[-40:], b.stderr_lines()[-40:])
        assert_one_connection(a, b, opened=2)


def test_impolite_stopped():
    """alice (impolite) frozen: bob waits for her restart instead of starting one; thawed
    before bob gives up, the connection comes back by itself on the same session."""
    with MeshScene(BIN) as s:
        a, b = connected_pair(s)
        a.stop()
        b.wait("connection", peer="alice", state="disconnected", timeout=15)
        n = len(b.matching("connection", peer="alice"))
        time.sleep(RESTART_AFTER_MS / 1000 + 0.5)  # past bob's grace: he must not restart
        a.cont()
        wait_connected_after(b, "alice", n)
        settle()
        assert b.stderr_count("ICE restart towards") == 0, b.stderr_lines()[-40:]
        for me in (a, b):
            assert me.count("channel-closed") == 0 and me.count("connection", state="closed") == 0, \
                (me.events, me.stderr_lines()[-40:])
        assert_one_connection(a, b, opened=1)


def test_impolite_stopped_long():
    """alice (impolite) frozen so long that bob gives the connection up: thawed, alice finds
    it gone and offers a new session; exactly one connection again."""
    with MeshScene(BIN) as s:
        a, b = connected_pair(s)
        a.stop()
        b.wait("connection", peer="alice", state="disconnected", timeout=15)
        b.wait("channel-closed", peer="alice", timeout=(RESTART_AFTER_MS + RESTART_TIMEOUT_MS) / 1000 + 5)
        b.wait("connection", peer="alice", state="closed", timeout=5)
        a.cont()
        a.wait("channel-open", n=2, peer="bob", timeout=25)
        b.wait("channel-open", n=2, peer="alice", timeout=25)
        settle()
        assert b.stderr_count("ICE restart towards") == 0, b.stderr_lines()[-40:]
        assert_one_connection(a, b, opened=2)


if __name__ == "__main__":
    name = sys.argv[2]
    start = time.monotonic()
    globals()["test_" + name]()
    print(f"{name}: ok in {time.monotonic() - start:.1f} s")
