#!/usr/bin/env python3
"""The main job: a local swarm.

  scripts/demo.py RTCMESH            interactive: a hub with the web page on
                                     http://127.0.0.1:8000/ and a native peer on this
                                     terminal; open the page in two browser tabs.
  scripts/demo.py RTCMESH --check    unattended (CI, no terminal): a hub and three
                                     native peers form a mesh, chat, and send a file;
                                     prints a timeline and exits 0 when all of it worked.
"""
import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/release/apps/rtcmesh/rtcmesh")
check = "--check" in sys.argv[2:]
T0 = time.monotonic()


def ms():
    return f"{(time.monotonic() - T0) * 1000:8.1f} ms"


def start_hub(listen, extra=()):
    hub = subprocess.Popen([binary, "hub", "--listen", listen, *extra], stderr=subprocess.PIPE, text=True)
    for line in hub.stderr:
        m = re.search(r"listening on (https?://[^/ ]+)/", line)
        if m:
            threading.Thread(target=lambda: [None for _ in hub.stderr], daemon=True).start()
            return hub, m.group(1)
        sys.stderr.write(line)
    raise SystemExit("demo: the hub did not start")


def interactive():
    hub, base = start_hub("127.0.0.1:8000")
    ws = base.replace("http", "ws", 1) + "/signaling"
    print(f"\n  hub: {base}/  (signaling {ws})")
    print(f"  open {base}/?room=demo in two browser tabs; this terminal is a native peer.")
    print("  type a line to chat, /peers to list peers, /send PEER FILE to send a file, /quit to stop.\n",
          flush=True)
    try:
        subprocess.call([binary, "peer", "--hub", ws, "--room", "demo", "--name", "terminal"])
    except KeyboardInterrupt:
        pass
    finally:
        hub.send_signal(signal.SIGINT)
        hub.wait(timeout=10)


class Peer:
    def __init__(self, name, ws, downloads, data_dir):
        self.name = name
        self.data_dir = data_dir
        self.events = queue.Queue()
        self.proc = subprocess.Popen(
            [binary, "peer", "--hub", ws, "--room", "demo", "--id", name, "--json",
             "--download-dir", downloads, "--quiet", "--data-dir", data_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                pass

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, pred, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if pred(ev):
                return ev
        raise SystemExit(f"demo: {self.name} did not see {what} within {timeout} s")


def unattended():
    tmp = tempfile.mkdtemp(prefix="rtcmesh-demo-")
    hub, base = start_hub("127.0.0.1:0", ["--data-dir", os.path.join(tmp, "hub-node")])
    ws = base.replace("http", "ws", 1) + "/signaling"
    print(f"{ms()}  hub up at {base}/ (signaling {ws})", flush=True)
    names = ["alice", "bob", "carol"]
    peers = {}
    try:
        for n in names:
            peers[n] = Peer(n, ws, os.path.join(tmp, n), os.path.join(tmp, n + "-node"))
            peers[n].wait(lambda e: e.get("event") == "joined", "its welcome")
            print(f"{ms()}  {n} joined room demo", flush=True)
        for n, p in peers.items():
            opened = set()
            while len(opened) < len(names) - 1:
                ev = p.wait(lambda e: e.get("event") == "channel-open", "channel-open")
                opened.add(ev["peer"])
            print(f"{ms()}  {n} has direct data channels to {', '.join(sorted(opened))}", flush=True)
        for n, p in peers.items():
            p.send(f"hello from {n}")
        for n, p in peers.items():
            got = set()
            while len(got) < len(names) - 1:
                ev = p.wait(lambda e: e.get("event") == "chat", "chat")
                got.add(ev["from"])
            print(f"{ms()}  {n} got chat from {', '.join(sorted(got))}", flush=True)
        path = os.path.join(tmp, "payload.bin")
        data = os.urandom(8 * 1024 * 1024)
        with open(path, "wb") as f:
            f.write(data)
        digest = hashlib.sha256(data).hexdigest()
        t = time.monotonic()
        peers["alice"].send(f"/send bob {path}")
        ev = peers["bob"].wait(lambda e: e.get("event") == "file-received", "the file", 60)
        secs = time.monotonic() - t
        ok = ev.get("ok") and ev.get("sha256") == digest
        print(f"{ms()}  bob received {ev.get('name')} ({ev.get('size')} bytes) in {secs:.2f} s, "
              f"sha256 {'matches' if ok else 'DIFFERS'}", flush=True)
        peers["alice"].send("/peers")
        table = peers["alice"].wait(lambda e: e.get("event") == "peers", "its peer table")
        for row in table["peers"]:
            print(f"{ms()}  alice -> {row.get('peer')}: {row.get('state')}, pair {row.get('pair')}, "
                  f"rtt {row.get('rtt_ms')} ms", flush=True)
        if not ok:
            raise SystemExit("demo: file transfer failed")
    finally:
        for p in peers.values():
            p.proc.send_signal(signal.SIGINT)
        for p in peers.values():
            try:
                p.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
        hub.send_signal(signal.SIGINT)
        hub.wait(timeout=10)
    # The witness: every node's log verifies, and bob holds the checkpoints the
    # others handed him when their channels opened.
    for name in names + ["hub"]:
        log = os.path.join(tmp, name + "-node", "witness.log")
        r = subprocess.run([binary, "witness", "verify", log], capture_output=True, text=True)
        print(f"{ms()}  {name}'s witness log: {r.stdout.splitlines()[0] if r.stdout else r.stderr.strip()}",
              flush=True)
        if r.returncode != 0:
            raise SystemExit(f"demo: {name}'s witness log does not verify")
    held = [f for f in os.listdir(os.path.join(tmp, "bob-node", "peers")) if f.endswith(".checkpoint.json")]
    print(f"{ms()}  bob holds the signed checkpoints of {len(held)} other nodes", flush=True)
    if len(held) < 2:
        raise SystemExit("demo: checkpoints were not exchanged")
    print("demo: ok: a hub introduced three native peers; chat and files went peer to peer; "
          "every node's witness log verifies")


if __name__ == "__main__":
    if check:
        unattended()
    else:
        interactive()
