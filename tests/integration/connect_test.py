#!/usr/bin/env python3
"""`rtcmesh connect` as two real processes over 127.0.0.1, and its failure paths.

Usage: connect_test.py RTCMESH_BINARY TEST_NAME   (ctest runs one test per name)
"""
import base64
import os
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.connect import ConnectPeer  # noqa: E402
from rtcmesh_testlib.failures import TestFailure  # noqa: E402

BIN = sys.argv[1]


def Peer(role, *args):  # noqa: N802  (reads as the class it makes)
    """`rtcmesh connect --loopback --offer|--answer ARGS`; nobody reads its stdout
    but line() (so its stdout can fill up)."""
    return ConnectPeer(BIN, role[2:], args, stdout="pipe")


def check(cond, message, *peers):
    if not cond:
        for i, p in enumerate(peers):
            print(f"--- stderr of peer {i} ---\n{p.stderr()}", file=sys.stderr)
        raise TestFailure(message)


def connected_pair(offer_args=(), answer_args=()):
    o = Peer("--offer", *offer_args)
    a = Peer("--answer", *answer_args)
    a.send(o.line())
    o.send(a.line())
    check(o.wait_err("channel open", 20) and a.wait_err("channel open", 20), "channel did not open", o, a)
    return o, a


def test_lines_both_ways():
    o, a = connected_pair()
    try:
        for i in range(50):
            o.send(f"from offerer {i}")
            a.send(f"from answerer {i}")
        for i in range(50):
            check(a.line() == f"from offerer {i}", "offerer->answerer line", o, a)
            check(o.line() == f"from answerer {i}", "answerer->offerer line", o, a)
        blob = os.urandom(256 * 1024)
        o.send("binary:" + base64.b64encode(blob).decode())
        got = a.line()
        check(got.startswith("binary:") and base64.b64decode(got[7:]) == blob, "256 KiB binary", o, a)
        o.send("")  # an empty text message
        check(a.line() == "", "empty message", o, a)
        o.close_stdin()
        check(o.wait() == 0, "offerer exit code", o, a)
        check(a.wait() == 0, "answerer exit code (remote closed the channel)", o, a)
        check("channel closed" in a.stderr(), "answerer saw the close", o, a)
    finally:
        o.kill()
        a.kill()


def test_reliability_options_and_echo():
    for args in (["--unordered"], ["--max-retransmits", "0"], ["--max-packet-life-time", "100"],
                 ["--negotiated-id", "5"]):
        answer_args = ["--echo"] + (args if "--negotiated-id" in args else [])
        o, a = connected_pair(args, answer_args)
        try:
            for i in range(20):
                o.send(f"{args[0]} {i}")
            got = sorted(o.line() for _ in range(20))
            check(got == sorted(f"{args[0]} {i}" for i in range(20)), f"echo with {args}", o, a)
            if "--negotiated-id" in args:
                check("id 5" in o.stderr(), "negotiated id used", o, a)
            o.close_stdin()
            check(o.wait() == 0 and a.wait() == 0, "clean exit", o, a)
        finally:
            o.kill()
            a.kill()


def test_fingerprint_mismatch_fails():
    o = Peer("--offer")
    a = Peer("--answer")
    try:
        a.send(o.line())
        answer = a.line()
        i = answer.index("a=fingerprint:sha-256 ") + len("a=fingerprint:sha-256 ")
        wrong = "00" if answer[i:i + 2] != "00" else "11"
        o.send(answer[:i] + wrong + answer[i + 2:])
        check(o.wait_err("fingerprint mismatch", 20), "offerer reports the mismatch", o, a)
        check(o.wait(20) == 1, "offerer exits 1 on failure", o, a)
        check("channel open" not in o.stderr() and "channel open" not in a.stderr(),
              "no channel may open", o, a)
    finally:
        o.kill()
        a.kill()


BAD_SDP_OFFER = ('{"type":"offer","sdp":"v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\ns=-\\r\\nt=0 0\\r\\n'
                 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel\\r\\nc=IN IP4 0.0.0.0\\r\\n'
                 'a=ice-ufrag:abcd\\r\\na=fingerprint:sha-256 ZZ\\r\\n"}')


def test_malformed_descriptions_exit_at_once():
    """A remote description that cannot be applied is a fatal error: the error
    is printed and the process exits 1 at once, in either role."""
    cases = [
        ("--answer", "this is not json", "invalid JSON"),
        ("--answer", BAD_SDP_OFFER, "line 8"),
        ("--answer", '{"type":"answer","sdp":"v=0"}', "expected an offer"),
        ("--answer", '{"sdp":"v=0"}', "expected {"),
    ]
    for role, line, text in cases:
        p = Peer(role)
        try:
            t0 = time.monotonic()
            p.send(line)
            code = p.wait(10)
            elapsed = time.monotonic() - t0
            check(code == 1, f"{line[:30]!r}: exit 1 (got {code})", p)
            check(text in p.stderr(), f"{line[:30]!r}: error names {text!r}", p)
            check(elapsed < 5, f"{line[:30]!r}: exited after {elapsed:.1f} s", p)
        finally:
            p.kill()
    # the offerer given a bad answer
    o = Peer("--offer")
    try:
        o.line()
        o.send(BAD_SDP_OFFER.replace('"offer"', '"answer"'))
        check(o.wait(10) == 1, "offerer exits 1 on a bad answer", o)
        check("cannot be applied" in o.stderr() and "line 8" in o.stderr(), "offerer names the line", o)
    finally:
        o.kill()
    # a candidate line that does not apply is not fatal
    o = Peer("--offer")
    a = Peer("--answer")
    try:
        a.send(o.line())
        o.send('{"candidate":"candidate:1 1 udp","sdpMid":"0"}')  # before the answer
        check(o.wait_err("candidate ignored", 20), "bad candidate reported", o, a)
        o.send(a.line())
        check(o.wait_err("channel open", 20) and a.wait_err("channel open", 20), "connects after it", o, a)
        o.close_stdin()
        check(o.wait() == 0 and a.wait() == 0, "clean exit", o, a)
    finally:
        o.kill()
        a.kill()


def test_stdout_full_pauses_receiving_and_loses_nothing():
    """The answerer echoes; nobody reads its stdout for a while. Its writer
    queue fills, it pauses receiving (SCTP's window closes, the offerer's sends
    wait), the connection survives, and once its stdout is read again every
    line arrives there, in order, and every echo comes back to the offerer."""
    o, a = connected_pair((), ("--echo",))
    try:
        n = 200
        lines = [f"{i:05d} " + base64.b64encode(os.urandom(49000)).decode() for i in range(n)]  # ~13 MB
        echoes = []

        def read_echoes():
            for _ in range(n):
                echoes.append(o.line())
        reader = threading.Thread(target=read_echoes, daemon=True)
        reader.start()

        def write_all():
            for line in lines:
                o.send(line)
        threading.Thread(target=write_all, daemon=True).start()
        check(a.wait_err("receiving paused", 30), "answerer pauses receiving with its stdout full", o, a)
        stalled = len(echoes)
        time.sleep(8)  # stay stalled well past SCTP's and ICE's timers
        check(len(echoes) < n, "the echoes stalled while the answerer was paused", o, a)
        check(o.proc.poll() is None and a.proc.poll() is None, "both alive while stalled", o, a)
        check("connection state" not in a.stderr().split("receiving paused", 1)[1],
              "no connection state change while stalled", o, a)
        got = [a.line() for _ in range(n)]  # drain the answerer's stdout
        check(got == lines, "every line reached the answerer's stdout, in order", o, a)
        reader.join(60)
        check(echoes == lines, f"every echo came back ({len(echoes)} of {n}; {stalled} before the stall)", o, a)
        check(a.wait_err("receiving resumed", 20), "receiving resumed", o, a)
        o.close_stdin()
        check(o.wait(30) == 0 and a.wait(30) == 0, "clean exit", o, a)
    finally:
        o.kill()
        a.kill()


def test_killed_peer_is_detected():
    o, a = connected_pair()
    try:
        for _ in range(2000):
            o.proc.stdin.write("x" * 1000 + "\n")
        o.proc.stdin.flush()
        a.proc.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        code = o.wait(timeout=60)
        elapsed = time.monotonic() - t0
        check(code == 1, f"offerer exits 1 (got {code})", o)
        err = o.stderr()
        check("connection state disconnected" in err, "W3C disconnected reported first", o)
        check("connection state failed" in err, "failure reported", o)
        check(err.index("connection state disconnected") < err.index("connection state failed"),
              "disconnected before failed", o)
        print(f"remote death detected after {elapsed:.1f} s")
    finally:
        o.kill()
        a.kill()


def test_sigint_exits_cleanly():
    o, a = connected_pair()
    try:
        o.proc.send_signal(signal.SIGINT)
        check(o.wait() == 0, "SIGINT exits 0", o, a)
        check(a.wait() == 0, "remote sees the close and exits 0", o, a)
    finally:
        o.kill()
        a.kill()


def test_bad_arguments():
    cases = [
        (["connect"], 2, "--offer or --answer"),
        (["connect", "--offer", "--answer"], None, "excludes"),
        (["connect", "--offer", "--max-retransmits", "-1"], None, "max-retransmits"),
        (["connect", "--offer", "--negotiated-id", "5000"], None, "negotiated-id"),
        (["connect", "--offer", "--ice-server", "ftp://x"], None, "scheme"),
        (["frobnicate"], None, "frobnicate"),
    ]
    for args, code, text in cases:
        r = subprocess.run([BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        out = r.stdout + r.stderr
        assert r.returncode != 0, f"{args}: expected failure"
        assert code is None or r.returncode == code, f"{args}: exit {r.returncode}"
        assert text in out, f"{args}: {text!r} not in {out!r}"
    r = subprocess.run([BIN, "connect", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--max-packet-life-time" in r.stdout


if __name__ == "__main__":
    name = sys.argv[2]
    globals()["test_" + name]()
    print(f"{name}: ok")
