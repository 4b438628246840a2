#!/usr/bin/env python3
"""The main job, for now: two local rtcmesh peers connect and exchange data.

Starts `rtcmesh connect --offer` and `rtcmesh connect --answer --echo` as two
processes, hands the offer and the answer across (that is all a signaling
server would do), then sends a few text lines and a binary message and prints
what happened, with timings. Every byte goes peer to peer over 127.0.0.1,
encrypted with DTLS, in SCTP, through ICE.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "build/release/apps/rtcmesh/rtcmesh"


def start(role, *extra):
    return subprocess.Popen(
        [binary, "connect", role, "--loopback", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)


def relay_stderr(name, proc):
    for line in proc.stderr:
        print(f"  [{name}] {line.rstrip()}", flush=True)


def main():
    t0 = time.monotonic()
    ms = lambda: f"{(time.monotonic() - t0) * 1000:7.1f} ms"
    alice = start("--offer", "--label", "demo")
    bob = start("--answer", "--echo")
    for name, proc in (("alice", alice), ("bob", bob)):
        threading.Thread(target=relay_stderr, args=(name, proc), daemon=True).start()

    offer = alice.stdout.readline()
    print(f"{ms()}  alice -> bob   offer ({len(json.loads(offer)['sdp'])} bytes of SDP)", flush=True)
    bob.stdin.write(offer)
    answer = bob.stdout.readline()
    print(f"{ms()}  bob -> alice   answer ({len(json.loads(answer)['sdp'])} bytes of SDP)", flush=True)
    alice.stdin.write(answer)

    lines = ["hello from alice", "the hub only introduces peers", "data flows peer to peer"]
    for line in lines:
        alice.stdin.write(line + "\n")
    blob = os.urandom(200_000)
    alice.stdin.write("binary:" + base64.b64encode(blob).decode() + "\n")
    alice.stdin.flush()

    ok = True
    for line in lines:
        got = bob.stdout.readline().rstrip("\n")
        echoed = alice.stdout.readline().rstrip("\n")
        print(f"{ms()}  bob received {got!r}; alice got the echo {echoed!r}", flush=True)
        ok &= got == line and echoed == line
    got = bob.stdout.readline().rstrip("\n")
    echoed = alice.stdout.readline().rstrip("\n")
    for who, text in (("bob", got), ("alice (echo)", echoed)):
        data = base64.b64decode(text[len("binary:"):]) if text.startswith("binary:") else b""
        same = data == blob
        ok &= same
        print(f"{ms()}  {who} received {len(data)} binary bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}..."
              f" {'intact' if same else 'CORRUPT'}", flush=True)

    alice.stdin.close()  # end of input: alice closes the channel, bob sees it and exits
    codes = (alice.wait(timeout=10), bob.wait(timeout=10))
    print(f"{ms()}  both peers exited with {codes}", flush=True)
    ok &= codes == (0, 0)
    print("demo:", "OK, two peers connected and exchanged data" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
