#!/usr/bin/env python3
"""The native mesh through a real hub: rtcmesh hub + rtcmesh peer processes on 127.0.0.1.

usage: mesh_test.py RTCMESH_BINARY CASE
"""
import hashlib
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.peer import MeshScene, open_channels  # noqa: E402

BIN = sys.argv[1]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def chat_everyone(peers):
    for p in peers:
        p.send(f"hello from {p.id}")
    for p in peers:
        for other in peers:
            if other is not p:
                got = p.wait("chat", text=f"hello from {other.id}")
                assert got[0]["from"] == other.id and got[0]["relayed"] is False, got


def test_full_mesh():
    with MeshScene(BIN) as s:
        hub = s.hub()
        a = s.peer(hub.url, "alice")
        a.wait("joined")
        b = s.peer(hub.url, "bob")
        b.wait("joined")
        c = s.peer(hub.url, "carol")
        joined = c.wait("joined")[0]
        assert sorted(joined["peers"]) == ["alice", "bob"], joined
        for p in (a, b, c):
            p.wait("channel-open", n=2)
        for p in (a, b, c):
            assert sorted(k for k, v in open_channels(p).items() if v == 1) == sorted(
                x.id for x in (a, b, c) if x is not p), p.events
        chat_everyone([a, b, c])
        rows = a.peers()
        assert sorted(r["peer"] for r in rows) == ["bob", "carol"], rows
        for r in rows:
            assert r["channel"] == "open" and r["state"] == "connected" and r["pair"] == "host/host", r
            assert r["relayed"] is False and r["rtt_ms"] is not None, r

        # 50 MB of random bytes, alice -> bob, compared on disk.
        src = os.path.join(s.tmp, "random.bin")
        with open(src, "wb") as f:
            for _ in range(50):
                f.write(os.urandom(1 << 20))
        want = sha256_file(src)
        start = time.monotonic()
        a.send(f"/send bob {src}")
        got = b.wait("file-received", timeout=90)[0]
        elapsed = time.monotonic() - start
        sent = a.wait("file-sent", timeout=30)[0]
        assert got["ok"] is True and got["sha256"] == want and got["size"] == 50 << 20, got
        assert sent["ok"] is True and sent["sha256"] == want and sent["to"] == "bob", sent
        assert os.path.dirname(got["path"]) == b.download_dir, got
        assert sha256_file(got["path"]) == want
        progress = b.matching("file-progress", direction="receive")
        assert len(progress) >= 2, progress
        print(f"50 MB alice -> bob in {elapsed:.2f} s: {50 * 1.048576 / elapsed:.1f} MB/s")
        # carol was not involved and still chats.
        c.send("after the file")
        a.wait("chat", text="after the file")


def test_hub_restart():
    with MeshScene(BIN) as s:
        hub = s.hub()
        port = hub.port
        a = s.peer(hub.url, "alice")
        a.wait("joined")
        b = s.peer(hub.url, "bob")
        b.wait("joined")
        a.wait("channel-open", peer="bob")
        b.wait("channel-open", peer="alice")
        hub.kill()
        a.wait("hub", state="disconnected")
        b.wait("hub", state="disconnected")
        a.send("while the hub is dead")
        b.wait("chat", text="while the hub is dead")
        b.send("still here")
        a.wait("chat", text="still here")
        time.sleep(0.5)
        hub2 = s.hub(port=port)
        for p in (a, b):
            p.wait("hub", state="connected", n=2, timeout=40)
            p.wait("joined", n=2, timeout=40)
        c = s.peer(hub2.url, "carol")
        assert sorted(c.wait("joined")[0]["peers"]) == ["alice", "bob"]
        c.wait("channel-open", n=2)
        a.wait("channel-open", peer="carol")
        b.wait("channel-open", peer="carol")
        chat_everyone([a, b, c])
        time.sleep(1)
        # One connection between alice and bob all along: opened once, never closed.
        assert a.count("channel-open", peer="bob") == 1 and a.count("channel-closed", peer="bob") == 0, a.events
        assert b.count("channel-open", peer="alice") == 1 and b.count("channel-closed", peer="alice") == 0, b.events
        rows = [r for r in a.peers() if r["peer"] == "bob"]
        assert len(rows) == 1 and rows[0]["channel"] == "open", rows


def test_glare():
    with MeshScene(BIN) as s:
        hub = s.hub()
        for round_ in range(4):
            room = f"glare{round_}"
            x = s.peer(hub.url, f"x{round_}", room=room)
            y = s.peer(hub.url, f"y{round_}", room=room)
            x.wait("channel-open")
            y.wait("channel-open")
            time.sleep(1.0)
            for me, other in ((x, y), (y, x)):
                assert me.count("channel-open") == 1, me.events
                assert me.count("channel-closed") == 0, me.events
                rows = me.peers()
                assert len(rows) == 1 and rows[0]["peer"] == other.id and rows[0]["channel"] == "open", rows
            x.send("ping through")
            y.wait("chat", text="ping through")
            x.quit()
            y.quit()


def test_hub_relay():
    with MeshScene(BIN) as s:
        hub = s.hub()
        b = s.peer(hub.url, "bob", ["--relay-only"])  # no TURN anywhere: never connects directly
        b.wait("joined")
        a = s.peer(hub.url, "alice", ["--allow-hub-relay"])
        c = s.peer(hub.url, "carol")
        a.wait("joined")
        c.wait("joined")
        a.wait("channel-open", peer="carol")
        # Relaying starts once alice has had no channel to bob for 20 s (or it failed).
        deadline = time.monotonic() + 45
        n = 0
        while b.count("chat") == 0 and time.monotonic() < deadline:
            n += 1
            a.send(f"relay try {n}")
            try:
                b.wait("chat", timeout=2)
                break
            except AssertionError:
                pass
        got = b.wait("chat", timeout=1)[0]
        assert got["from"] == "alice" and got["relayed"] is True, got
        # carol to everyone: alice gets it directly; bob does not get it at all.
        c.send("carol without relay")
        direct = a.wait("chat", text="carol without relay")[0]
        assert direct["relayed"] is False
        c.wait("error")
        assert any("bob" in e["message"] for e in c.matching("error")), c.events
        time.sleep(2)
        assert b.count("chat", text="carol without relay") == 0, b.events
        assert not b.matching("channel-open"), b.events
        rows = {r["peer"]: r for r in a.peers()}
        assert rows["bob"]["relayed"] is True and rows["bob"]["channel"] == "closed", rows


def test_errors():
    with MeshScene(BIN) as s:
        hub = s.hub()
        a = s.peer(hub.url, "alice")
        a.wait("joined")
        b = s.peer(hub.url, "bob")
        a.wait("channel-open")
        checks = [
            ("/send nobody /etc/hostname", "unknown peer"),
            (f"/send bob {s.tmp}/missing.bin", "cannot read"),
            ("/send bob", "usage"),
            ("/frobnicate", "unknown command"),
        ]
        for i, (line, text) in enumerate(checks):
            a.send(line)
            err = a.wait("error", n=i + 1)[-1]
            assert text in err["message"], (line, err)
            assert a.alive()
        a.send("still chatting")
        b.wait("chat", text="still chatting")
        assert b.count("file-received") == 0
        # Bad command lines: a message and exit 2.
        bad = [
            (["--hub", "ftp://127.0.0.1:1/x"], "ws://"),
            (["--hub", "ws://127.0.0.1:99999/"], "port"),
            (["--id", "bad id"], "--id"),
            (["--room", "a b"], "--room"),
            (["--reconnect-interval", "abc"], "reconnect-interval"),
            (["--ice-server", "ftp://x"], "scheme"),
            (["--frobnicate"], "frobnicate"),
        ]
        for args, text in bad:
            r = subprocess.run([BIN, "peer", *args], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=15)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert text in r.stdout + r.stderr, (args, r.stderr)
        # A hub that is not there: the peer keeps retrying, and /quit still works.
        p = s.peer("ws://127.0.0.1:9/signaling", "lonely")
        p.wait("hub", state="reconnecting", timeout=10)
        assert p.quit() == 0


if __name__ == "__main__":
    name = sys.argv[2]
    globals()["test_" + name]()
    print(f"{name}: ok")
