#!/usr/bin/python3
"""Process tests of the witness log: a real `rtcmesh witness record` writes the
log; Python tampers with its bytes; `rtcmesh witness verify` must name the
damage (exit code and message). Usage: witness_test.py RTCMESH CASE"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.failures import TestFailure  # noqa: E402
from rtcmesh_testlib.witness import (EXIT, WitnessCli, frame, frames, payload,  # noqa: E402
                                     write_frames)

RTCMESH = sys.argv[1]
cli = WitnessCli(RTCMESH)
run, record, verify, expect = cli.run, cli.record, cli.verify, cli.expect


def fail(msg):
    raise TestFailure(msg)


def case_valid_log(work):
    path = record(work, count=30)
    r = expect(path, "valid")
    if "valid (31 events)" not in r.stdout:  # 30 + witness_log_created
        fail("wrong event count")
    key = json.loads(run("id", "--data-dir", os.path.join(work, "d"), "--json").stdout)
    expect(path, "valid", "--key-hex", key["public_key"])
    run("id", "--data-dir", os.path.join(work, "d"), "--export-public", os.path.join(work, "pub.pem"))
    expect(path, "valid", "--key", os.path.join(work, "pub.pem"))
    r = run("witness", "verify", path, "--json")
    if json.loads(r.stdout)["valid"] is not True:
        fail("--json not valid")


def case_flip_byte_each_field(work):
    path = record(work, count=12)
    orig = open(path, "rb").read()
    frs = frames(orig)
    target = 5  # a test_event in the middle
    p = payload(frs[target])
    for field in ("agent", "data", "event_type", "metadata", "mono_us", "prev", "seq", "ts_us"):
        start = p.index(b'"' + field.encode() + b'":') + len(field) + 3
        # flip a byte inside the value (skip an opening quote or brace)
        idx = 8 + start + 2
        raw = bytearray(orig)
        off = 8 + sum(len(f) for f in frs[:target]) + idx
        raw[off] ^= 0x01
        open(path, "wb").write(bytes(raw))
        r = expect(path, "modified", seq=target)
        if "expected hash:" not in r.stdout or "actual hash:" not in r.stdout:
            fail("expected/actual hash missing")
    # The same flip with the CRC recomputed (an editor that knows the framing): the
    # chain still catches it.
    q = bytearray(p)
    q[q.index(b'"n":') + 4] ^= 0x01
    frs2 = list(frs)
    frs2[target] = frame(bytes(q))
    write_frames(path, frs2)
    expect(path, "modified", seq=target)
    # A flip in a checkpoint's signature.
    cps = [i for i, f in enumerate(frs) if b"witness_checkpoint" in f]
    q = bytearray(payload(frs[cps[0]]))
    s = q.index(b'"sig":"') + 7
    q[s] = ord("0") if q[s] != ord("0") else ord("1")
    frs3 = list(frs)
    frs3[cps[0]] = frame(bytes(q))
    # The signature is inside the record, so the chain also breaks at the next
    # record; the verifier reports the record itself.
    r = verify(path)
    write_frames(path, frs3)
    r = verify(path)
    if r.returncode not in (EXIT["modified"], EXIT["bad signature"]):
        fail("signature flip not detected")


def case_delete_record(work):
    path = record(work, count=12)
    frs = frames(open(path, "rb").read())
    write_frames(path, frs[:4] + frs[5:])
    r = expect(path, "deleted", seq=4)
    if "record seq 4 is missing" not in r.stdout:
        fail("missing seq not named")


def case_insert_record(work):
    path = record(work, count=12)
    frs = frames(open(path, "rb").read())
    forged = json.loads(payload(frs[4]))
    forged["data"]["n"] = 999
    forged["seq"] = 4
    body = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    write_frames(path, frs[:4] + [frame(body)] + frs[4:])
    expect(path, "inserted", seq=4)


def case_duplicate_record(work):
    path = record(work, count=12)
    frs = frames(open(path, "rb").read())
    write_frames(path, frs[:7] + [frs[6]] + frs[7:])
    r = expect(path, "inserted", seq=7)
    if "duplicate of record seq 6" not in r.stdout:
        fail("duplicate not named")


def case_swap_records(work):
    path = record(work, count=12)
    frs = frames(open(path, "rb").read())
    frs[3], frs[4] = frs[4], frs[3]
    write_frames(path, frs)
    expect(path, "reordered", seq=3)


def case_truncate_tail(work):
    path = record(work, count=30, every=10)
    cp = run("witness", "checkpoint", path)
    if cp.returncode != 0:
        fail("checkpoint failed: " + cp.stderr)
    cpfile = os.path.join(work, "cp.json")
    open(cpfile, "w").write(cp.stdout)
    frs = frames(open(path, "rb").read())
    # Cut whole records off the end (the closing checkpoint and the events before it).
    write_frames(path, frs[:-6])
    # Alone, a cleanly cut log looks like a crash: verifiable but unsigned tail.
    r = expect(path, "valid")
    if "not covered by a signed checkpoint" not in r.stdout:
        fail("unsigned tail not reported")
    r = expect(path, "truncated", "--checkpoint", cpfile)
    if "are missing" not in r.stdout:
        fail("truncation not explained")


def case_torn_tail(work):
    path = record(work, count=12)
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:-7])
    expect(path, "torn tail")
    # Reopening with a recorder repairs it and records the repair.
    r = run("witness", "record", path, "--data-dir", os.path.join(work, "d"), "--count", "2")
    if r.returncode != 0 or "truncated=" not in r.stdout or "truncated=0" in r.stdout:
        fail("recorder did not repair: " + r.stdout + r.stderr)
    expect(path, "valid")
    if "witness_recovery" not in run("witness", "show", path).stdout:
        fail("no recovery event")


def case_wrong_key(work):
    path = record(work, count=5)
    other = json.loads(run("id", "--data-dir", os.path.join(work, "other"), "--json").stdout)
    expect(path, "wrong key", "--key-hex", other["public_key"], seq=0)


def case_resign_other_key(work):
    # An attacker rewrites the log under their own key: self-consistent, but the
    # owner's key or a checkpoint the peer holds exposes it.
    path = record(work, count=10, data_dir="owner")
    cpfile = os.path.join(work, "cp.json")
    open(cpfile, "w").write(run("witness", "checkpoint", path).stdout)
    owner = json.loads(run("id", "--data-dir", os.path.join(work, "owner"), "--json").stdout)
    forged = record(work, name="forged.wl", count=10, data_dir="attacker")
    expect(forged, "valid")
    expect(forged, "wrong key", "--key-hex", owner["public_key"])
    expect(forged, "wrong key", "--checkpoint", cpfile)
    # Splicing the owner's records under a checkpoint signed by the attacker.
    frs = frames(open(path, "rb").read())
    att = frames(open(forged, "rb").read())
    cp_idx = [i for i, f in enumerate(frs) if b"witness_checkpoint" in f][0]
    att_cp = json.loads(payload(att[cp_idx]))
    mine = json.loads(payload(frs[cp_idx]))
    mine["data"]["sig"] = att_cp["data"]["sig"]
    body = json.dumps(mine, sort_keys=True, separators=(",", ":")).encode()
    frs[cp_idx] = frame(body)
    # fix the next record's prev so only the signature is wrong
    import hashlib
    nxt = json.loads(payload(frs[cp_idx + 1]))
    nxt["prev"] = hashlib.sha256(b"\x00" + body).hexdigest()
    frs[cp_idx + 1] = frame(json.dumps(nxt, sort_keys=True, separators=(",", ":")).encode())
    write_frames(path, frs[:cp_idx + 2])
    expect(path, "bad signature", seq=cp_idx)


def case_rollback(work):
    # A log rewritten from seq 3 on with a recomputed chain and CRCs (but no key):
    # the in-log checkpoint signature no longer matches, and the peer's copy too.
    import hashlib
    path = record(work, count=20, every=100)
    cpfile = os.path.join(work, "cp.json")
    open(cpfile, "w").write(run("witness", "checkpoint", path).stdout)
    frs = frames(open(path, "rb").read())
    recs = [json.loads(payload(f)) for f in frs]
    recs[3]["data"]["n"] = 12345
    out, prev = [], "0" * 64
    for r in recs:
        r["prev"] = prev
        body = json.dumps(r, sort_keys=True, separators=(",", ":")).encode()
        prev = hashlib.sha256(b"\x00" + body).hexdigest()
        out.append(frame(body))
    write_frames(path, out)
    expect(path, "modified")
    write_frames(path, out[:-1])  # without the closing checkpoint: the peer's copy catches it
    r = expect(path, "modified", "--checkpoint", cpfile)
    if "history rewritten" not in r.stdout:
        fail("rewrite not explained")


def case_sigkill_keeps_acknowledged(work):
    path = os.path.join(work, "kill.wl")
    p = subprocess.Popen([RTCMESH, "witness", "record", path, "--data-dir",
                          os.path.join(work, "d"), "--count", "100000000", "--pad", "200",
                          "--checkpoint-every", "500"],
                         stdout=subprocess.PIPE, text=True)
    acked = 0
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.match(r"ack (\d+)", line)
        if m:
            acked = int(m.group(1))
            if acked >= 20000:
                break
    p.send_signal(signal.SIGKILL)
    p.wait()
    if acked < 1000:
        fail(f"only {acked} events acknowledged before the kill")
    print(f"killed after {acked} acknowledged events")
    r = verify(path)
    if r.returncode not in (EXIT["valid"], EXIT["torn tail"]):
        fail("killed log does not verify")
    out = run("witness", "query", path, "--type", "test_event", "--json").stdout.splitlines()
    ns = [json.loads(line)["data"]["n"] for line in out]
    if ns[:acked] != list(range(acked)):
        fail(f"acknowledged events missing: have {len(ns)} events, {acked} acknowledged")
    # Reopen: repairs any torn tail, records the reopening, then verifies clean.
    r = run("witness", "record", path, "--data-dir", os.path.join(work, "d"), "--count", "1")
    if r.returncode != 0:
        fail("reopen failed: " + r.stderr)
    expect(path, "valid")


def case_key_file_permissions(work):
    d = os.path.join(work, "d")
    r = run("id", "--data-dir", d)
    if r.returncode != 0 or not re.fullmatch(r"node-[0-9a-f]{16}\n", r.stdout):
        fail("id: " + r.stdout + r.stderr)
    key = os.path.join(d, "identity.key")
    if os.stat(key).st_mode & 0o777 != 0o600:
        fail("key file is not 0600")
    if run("id", "--data-dir", d).stdout != r.stdout:
        fail("node id not stable")
    os.chmod(key, 0o644)
    r2 = run("id", "--data-dir", d)
    if r2.returncode == 0 or "too open" not in r2.stderr:
        fail("a world-readable key was accepted: " + r2.stderr)
    # The log refuses another node's key.
    os.chmod(key, 0o600)
    path = record(work, count=3)
    r3 = run("witness", "record", path, "--data-dir", os.path.join(work, "d2"), "--count", "1")
    if r3.returncode == 0 or "belongs to" not in r3.stderr:
        fail("appended with another key")


def case_cli_errors(work):
    for args, code in ((["witness", "verify"], 2), (["witness", "verify", "/nonexistent"], 1),
                       (["witness", "verify", "/etc/hostname"], 18),
                       (["witness", "verify", "x", "--key-hex", "zz"], 2)):
        r = run(*args)
        print(args, r.returncode, r.stderr.strip()[:200])
        if r.returncode != code:
            fail(f"{args}: exit {r.returncode}, expected {code}")
    help_text = run("witness", "verify", "--help").stdout
    for k in ("10", "14", "16", "17"):
        if f"  {k}  " not in help_text:
            fail("exit code table missing from --help")


def case_query_and_show(work):
    path = record(work, count=9)
    out = run("witness", "query", path, "--type", "test_event", "--peer", "peer-1", "--json").stdout
    lines = [json.loads(line) for line in out.splitlines()]
    if [r["data"]["n"] for r in lines] != [1, 4, 7]:
        fail("query by peer: " + out)
    if run("witness", "query", path, "--since", "2999-01-01T00:00:00Z").stdout.strip():
        fail("--since in the future returned records")
    raw = open(path, "rb").read()
    # --json exports the stored bytes unchanged.
    if payload(frames(raw)[1]).decode() not in run("witness", "show", path, "--json").stdout:
        fail("show --json does not print the stored bytes")


def main():
    case = sys.argv[2]
    fn = globals().get("case_" + case)
    if not fn:
        fail("unknown case " + case)
    try:
        with tempfile.TemporaryDirectory(prefix="witness-") as work:
            fn(work)
    except TestFailure as e:
        print("FAIL:", e)
        sys.exit(1)
    print("PASS", case)


if __name__ == "__main__":
    main()
