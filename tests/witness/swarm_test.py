#!/usr/bin/python3
"""The witness of real peers: a real `rtcmesh hub` and two `rtcmesh peer`
processes on 127.0.0.1 (run inside scripts/netns.sh) record their connection
events; the logs verify, hold what happened (never message content), carry each
other's checkpoints, and every kind of tampering is named. /metrics of a peer and
of the hub move as connections come and go. A peer killed with SIGKILL leaves a
log that verifies and reopens without losing a record.

usage: swarm_test.py RTCMESH CASE"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib import witness as wl  # noqa: E402
from rtcmesh_testlib.failures import TestFailure  # noqa: E402
from rtcmesh_testlib.hub import Hub  # noqa: E402
from rtcmesh_testlib.metrics import parse_prometheus  # noqa: E402
from rtcmesh_testlib.peer import MeshPeer  # noqa: E402

BIN = sys.argv[1]
cli = wl.WitnessCli(BIN)


def fail(msg):
    raise TestFailure(msg)


def records(path):
    return [json.loads(wl.payload(f)) for f in wl.frames(open(path, "rb").read())]


def canonical(record):
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf(body):
    return hashlib.sha256(b"\x00" + body).digest()


def merkle_root(leaves):
    """RFC 9162 section 2.1.1 MTH over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def rewrite(recs, sign, agent=None, key_hex=None):
    """Re-chains records and re-signs every checkpoint with `sign(note) -> sig bytes`:
    what a node that rewrites its own history (or a thief with another key) does."""
    out, leaves, prev = [], [], "0" * 64
    for r in recs:
        r = json.loads(json.dumps(r))
        r["seq"] = len(out)
        r["prev"] = prev
        if agent:
            r["agent"] = agent
        if key_hex and r["event_type"] == "witness_log_created":
            r["data"]["key"] = key_hex
        if r["event_type"] == "witness_checkpoint":
            size = len(leaves)
            root = merkle_root(leaves).hex()
            head = leaves[-1].hex() if leaves else "0" * 64
            note = f"rtcmesh-witness/v1\n{r['agent']}\n{size}\n{root}\n{head}\n".encode()
            r["data"] = {"head": head, "root": root, "sig": sign(note).hex(), "size": size}
        body = canonical(r)
        out.append(wl.frame(body))
        leaves.append(leaf(body))
        prev = leaf(body).hex()
    return out


class Scene:
    def __init__(self, work):
        self.work = work
        self.hub = None
        self.peers = []

    def start_hub(self):
        self.hub = Hub(BIN, "--data-dir", os.path.join(self.work, "hub"), timeout=15)
        return self.hub

    def peer(self, name, extra=()):
        p = MeshPeer(BIN, self.hub.url, None, download_dir=os.path.join(self.work, name + "-dl"),
                 data_dir=os.path.join(self.work, name), extra=list(extra), room="w")
        p.name = name
        self.peers.append(p)
        return p

    def close(self):
        for p in self.peers:
            p.quit()
        if self.hub:
            self.hub.stop()


def log_of(work, name):
    return os.path.join(work, name, "witness.log")


def scrape(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return text, parse_prometheus_checked(text)


def parse_prometheus_checked(text):
    """rtcmesh_testlib.metrics.parse_prometheus (every sample of a family with a
    TYPE), and no node id as a label value."""
    samples = parse_prometheus(text, typed_only=True)
    for name, labels in samples:
        for _, v in labels:
            if v.startswith("node-"):
                fail(f"a node id as a label value: {name} {dict(labels)}")
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), None)


def wait_metric(url, name, want, timeout=15, **labels):
    deadline = time.monotonic() + timeout
    while True:
        _, s = scrape(url)
        v = value(s, name, **labels)
        if v is not None and want(v):
            return s
        if time.monotonic() > deadline:
            fail(f"{name}{labels} = {v} after {timeout}s at {url}")
        time.sleep(0.2)


def query(path, *args):
    r = cli.run("witness", "query", path, "--json", *args)
    if r.returncode != 0:
        fail(f"query failed: {r.stdout} {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------ cases

def case_two_peers_logs(work):
    s = Scene(work)
    secret = "the-chat-text-must-never-be-in-the-log"
    try:
        s.start_hub()
        a = s.peer("a", ["--witness-sample", "1"])
        b = s.peer("b", ["--witness-sample", "1"])
        a.wait("channel-open", peer=b.id)
        b.wait("channel-open", peer=a.id)
        for i in range(5):
            a.send(f"{secret} {i}")
        b.wait("chat", n=5)
        blob = os.path.join(work, "blob.bin")
        with open(blob, "wb") as f:
            f.write(os.urandom(300_000))
        b.send(f"/send {a.id} {blob}")
        a.wait("file-received", timeout=30)
        # The exchange at channel open, then a newer one after the transfer (the
        # next ping interval): each side holds the other's latest checkpoint.
        for me, other in ((a, b), (b, a)):
            me.wait("witness-checkpoint", peer=other.id, ok=True)
        n_a = b.count("witness-checkpoint", peer=a.id, ok=True)
        b.wait("witness-checkpoint", n=n_a + 1, peer=a.id, ok=True, timeout=15)
        a_id, b_id = a.id, b.id
        a_node = a.node
        # A third process claims A's id: the hub refuses the join (the client
        # keeps retrying) and records why.
        intruder = subprocess.Popen([BIN, "peer", "--hub", s.hub.url, "--room", "w", "--id", a_id, "--json",
                                     "--data-dir", os.path.join(work, "c")],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        intruder.kill()
        intruder.wait()
    finally:
        s.close()

    la, lb, lh = log_of(work, "a"), log_of(work, "b"), log_of(work, "hub")
    for path in (la, lb, lh):
        cli.expect(path, "valid")

    # What A's log holds about B, by type (query --peer reads data.peer_id).
    about_b = query(la, "--peer", b_id)
    types = {r["event_type"] for r in about_b}
    need = {"session_initialized", "webrtc_ice_candidate", "webrtc_connection_state",
            "webrtc_datachannel_open", "webrtc_datachannel_close", "webrtc_datachannel_message_sample",
            "webrtc_stats_snapshot", "webrtc_peer_disconnected", "witness_peer_checkpoint"}
    if not need <= types:
        fail(f"A's log lacks {need - types}; has {sorted(types)}")
    if not ({"webrtc_offer_created", "webrtc_answer_received"} <= types or
            {"webrtc_offer_received", "webrtc_answer_created"} <= types):
        fail(f"no offer/answer pair in A's log: {sorted(types)}")
    directions = {r["data"]["direction"] for r in about_b if r["event_type"] == "webrtc_ice_candidate"}
    if directions != {"local", "remote"}:
        fail(f"candidates recorded: {directions}")
    transitions = {(r["data"]["from"], r["data"]["to"]) for r in about_b
                   if r["event_type"] == "webrtc_connection_state"}
    for t in (("new", "connecting"), ("connecting", "connected")):
        if t not in transitions:
            fail(f"state change {t} not recorded: {transitions}")
    closes = [r for r in about_b if r["event_type"] == "webrtc_datachannel_close" and r["data"]["label"] == "rtcmesh"]
    if not closes or closes[0]["data"]["total_messages"] < 10:
        fail(f"channel close totals: {closes}")
    file_samples = [r for r in about_b if r["event_type"] == "webrtc_datachannel_message_sample"
                    and r["data"]["label"].startswith("file:")]
    if not file_samples or file_samples[0]["data"]["message_size_bytes"] <= 0:
        fail("no message sample of the file channel")
    snaps = [r for r in about_b if r["event_type"] == "webrtc_stats_snapshot"]
    if not any(r["data"].get("final") for r in snaps) or snaps[-1]["data"]["bytes_received"] < 300_000:
        fail(f"no final stats snapshot with the transfer's bytes: {snaps[-1:]}")
    raw = open(la, "rb").read() + open(lb, "rb").read()
    if secret.encode() in raw:
        fail("message content found in a witness log")
    if a_node["node_id"] != a_id or not re.fullmatch(r"node-[0-9a-f]{16}", a_id):
        fail(f"peer id is not the node id: {a_node}")
    # The hub's log: both joins and both leaves, with the node ids as peer ids.
    hub = records(lh)
    joins = {r["data"]["peer_id"] for r in hub if r["event_type"] == "hub_join"}
    leaves = {r["data"]["peer_id"] for r in hub if r["event_type"] == "hub_leave"}
    if joins != {a_id, b_id} or leaves != {a_id, b_id}:
        fail(f"hub joins {joins} leaves {leaves}")
    rejects = [r["data"] for r in hub if r["event_type"] == "hub_reject"]
    if not any(d.get("reason") == "id_taken" and d.get("peer_id") == a_id and d.get("room") == "w" for d in rejects):
        fail(f"the refused join is not in the hub's log: {rejects}")

    # B keeps A's checkpoint; it verifies A's log as it is.
    held = os.path.join(work, "b", "peers", a_id + ".checkpoint.json")
    held_cp = json.load(open(held))
    if held_cp["origin"] != a_id:
        fail(f"held checkpoint is of {held_cp['origin']}")
    cli.expect(la, "valid", "--checkpoint", held)

    frs = wl.frames(open(la, "rb").read())
    recs = records(la)
    k = next(i for i, r in enumerate(recs) if r["event_type"] == "webrtc_ice_candidate")
    t = os.path.join(work, "t.log")

    # 1. One byte changed as a hex editor would (the frame's CRC not fixed), then
    #    with the CRC fixed: both named as modified at that record.
    raw = bytearray(open(la, "rb").read())
    off = 8 + sum(len(f) for f in frs[:k]) + 8 + wl.payload(frs[k]).index(b"127.0.0.1") + 2
    raw[off] = ord("9")
    open(t, "wb").write(raw)
    cli.expect(t, "modified", seq=k)
    p = bytearray(wl.payload(frs[k]))
    p[p.index(b"127.0.0.1") + 2] = ord("9")
    wl.write_frames(t, frs[:k] + [wl.frame(bytes(p))] + frs[k + 1:])
    r = cli.expect(t, "modified", seq=k)
    if "expected hash:" not in r.stdout or "actual hash:" not in r.stdout:
        fail("expected/actual hash not shown")
    # 2. A record deleted, 3. inserted (a copy), 4. two swapped.
    wl.write_frames(t, frs[:k] + frs[k + 1:])
    cli.expect(t, "deleted", seq=k)
    wl.write_frames(t, frs[:k + 1] + [frs[k]] + frs[k + 1:])
    cli.expect(t, "inserted")
    wl.write_frames(t, frs[:k] + [frs[k + 1], frs[k]] + frs[k + 2:])
    cli.expect(t, "reordered", seq=k)
    # 5. The tail cut below what B holds: alone it looks like a crash, B's copy
    #    proves records are missing.
    cut = held_cp["size"] - 3
    wl.write_frames(t, frs[:cut])
    cli.expect(t, "valid")
    r = cli.expect(t, "truncated", "--checkpoint", held)
    if "are missing" not in r.stdout:
        fail("truncation not explained")

    # 6. A rewrites its own history and re-signs it with its own key: the log is
    #    self-consistent, only B's copy of an earlier checkpoint exposes it.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = serialization.load_pem_private_key(open(os.path.join(work, "a", "identity.key"), "rb").read(), None)
    forged = [json.loads(json.dumps(r)) for r in recs]
    forged[k]["data"]["address"] = "192.0.2.1:9"
    wl.write_frames(t, rewrite(forged, key.sign))
    cli.expect(t, "valid")
    r = cli.expect(t, "modified", "--checkpoint", held)
    if "history rewritten" not in r.stdout:
        fail("rewrite not explained")
    # 7. The same history re-signed by someone else's key (agent ids and the
    #    key in record 0 replaced): valid alone, wrong key against A's public
    #    key or B's copy.
    other = Ed25519PrivateKey.generate()
    pub = other.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    other_id = "node-" + hashlib.sha256(pub).hexdigest()[:16]
    wl.write_frames(t, rewrite(recs, other.sign, agent=other_id, key_hex=pub.hex()))
    cli.expect(t, "valid")
    cli.run("id", "--data-dir", os.path.join(work, "a"), "--export-public", os.path.join(work, "a.pub"))
    cli.expect(t, "wrong key", "--key", os.path.join(work, "a.pub"))
    cli.expect(t, "wrong key", "--checkpoint", held)


def case_metrics_move(work):
    s = Scene(work)
    try:
        hub = s.start_hub()
        hub_metrics = f"http://127.0.0.1:{hub.port}/metrics"
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/api/health", timeout=5).read())
        hub_id = json.loads(cli.run("id", "--data-dir", os.path.join(work, "hub"), "--json").stdout)["node_id"]
        if health.get("node_id") != hub_id:
            fail(f"/api/health node_id {health.get('node_id')}, the hub's key says {hub_id}")
        a = s.peer("a", ["--metrics-port", "0"])
        url = a.node["metrics"]
        if not url or not url.endswith("/metrics"):
            fail(f"no metrics URL in {a.node}")
        text, m = scrape(url)
        for name in ("webrtc_peer_connections_active", "witness_recording_latency_seconds",
                     "webrtc_connection_state_changes_total", "witness_events_recorded_total",
                     "webrtc_data_channel_messages_sent_total", "webrtc_data_channel_bytes_received_total"):
            if f"# TYPE {name} " not in text:
                fail(f"{name} not exposed")
        if value(m, "webrtc_peer_connections_active") != 0:
            fail("connections before any peer")
        wait_metric(url, "witness_events_recorded_total", lambda v: v >= 1, event_type="node_started")

        b = s.peer("b")
        a.wait("channel-open", peer=b.id)
        m = wait_metric(url, "webrtc_peer_connections_active", lambda v: v == 1)
        for frm, to in (("new", "connecting"), ("connecting", "connected")):
            if value(m, "webrtc_connection_state_changes_total", from_state=frm, to_state=to) != 1:
                fail(f"{frm}->{to} not counted once")
        m = wait_metric(url, "witness_events_recorded_total", lambda v: v >= 2,
                        event_type="webrtc_connection_state")
        count = value(m, "witness_recording_latency_seconds_count")
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                         if k[0] == "witness_recording_latency_seconds_bucket")
        if not count or buckets[0][0] > 1e-5 or any(b2[1] < b1[1] for b1, b2 in zip(buckets, buckets[1:])):
            fail(f"latency histogram: count {count}, buckets {buckets}")
        sent = value(m, "webrtc_data_channel_messages_sent_total")
        for i in range(3):
            a.send(f"hello {i}")
        b.wait("chat", n=3)
        wait_metric(url, "webrtc_data_channel_messages_sent_total", lambda v: v >= sent + 3)
        wait_metric(url, "webrtc_data_channel_bytes_received_total", lambda v: v > 0)

        wait_metric(hub_metrics, "rtcmesh_hub_peers", lambda v: v == 2)
        wait_metric(hub_metrics, "witness_events_recorded_total", lambda v: v == 2, event_type="hub_join")

        b.quit()
        a.wait("peer-left", peer=b.id)
        m = wait_metric(url, "webrtc_peer_connections_active", lambda v: v == 0)
        closed = {dict(k[1])["from_state"]: v for k, v in m.items()
                  if k[0] == "webrtc_connection_state_changes_total" and dict(k[1])["to_state"] == "closed" and v}
        if sum(closed.values()) != 1:
            fail(f"one connection closed, counted: {closed}")
        if value(m, "webrtc_data_channels_open") != 0:
            fail("channels still counted open")
        wait_metric(url, "witness_events_recorded_total", lambda v: v >= 1, event_type="webrtc_peer_disconnected")
        wait_metric(hub_metrics, "rtcmesh_hub_peers", lambda v: v == 1)
        wait_metric(hub_metrics, "witness_events_recorded_total", lambda v: v == 1, event_type="hub_leave")
    finally:
        s.close()


def case_peer_sigkill(work):
    s = Scene(work)
    try:
        s.start_hub()
        a = s.peer("a", ["--witness-sample", "1"])
        b = s.peer("b")
        a.wait("channel-open", peer=b.id)
        blob = os.path.join(work, "blob.bin")
        with open(blob, "wb") as f:
            f.write(os.urandom(20_000_000))
        b.send(f"/send {a.id} {blob}")
        a.wait("file-progress", n=3, timeout=30)
        time.sleep(0.2)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
    finally:
        s.close()
    path = log_of(work, "a")
    before = open(path, "rb").read()
    r = cli.verify(path)
    if r.returncode not in (wl.EXIT["valid"], wl.EXIT["torn tail"]):
        fail(f"a killed peer's log: exit {r.returncode}")
    kept = wl.frames(before) if r.returncode == 0 else wl.frames(before)[:-1]
    samples = sum(b"webrtc_datachannel_message_sample" in f for f in kept)
    if samples < 3:
        fail(f"only {samples} message samples recorded before the kill")
    # The same node starts again on the same log: it is reopened (a torn tail
    # cut and recorded), every record from before the kill is still there, and
    # the log verifies.
    s = Scene(work)
    s.hub = Hub(BIN, "--data-dir", os.path.join(work, "hub"), timeout=15)
    try:
        again = s.peer("a")
        again.quit()
    finally:
        s.close()
    after = open(path, "rb").read()
    cli.expect(path, "valid")
    keep = 8 + sum(len(f) for f in kept)
    if after[:keep] != before[:keep]:
        fail("records from before the kill changed on reopen")
    rest = [json.loads(wl.payload(f))["event_type"] for f in wl.frames(after)[len(kept):]]
    if rest[0] != "witness_log_opened":
        fail(f"reopen did not start with witness_log_opened: {rest[:3]}")


def main():
    case = sys.argv[2]
    fn = globals().get("case_" + case)
    if not fn:
        fail("unknown case " + case)
    work = tempfile.mkdtemp(prefix="witness-swarm-")
    try:
        fn(work)
    except TestFailure as e:
        print("FAIL:", e)
        sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("PASS", case)


if __name__ == "__main__":
    main()
