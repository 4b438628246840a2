"""Witness logs (docs/witness-format.md): their framing in Python, and the
`rtcmesh witness` commands that write and check them."""
import os
import struct
import subprocess

from .failures import TestFailure

MAGIC = b"RTCMWIT1"

# Exit codes documented in `rtcmesh witness verify --help`.
EXIT = {"valid": 0, "modified": 10, "deleted": 11, "inserted": 12, "reordered": 13,
        "truncated": 14, "bad signature": 15, "wrong key": 16, "torn tail": 17,
        "corrupt framing": 18}


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def frames(raw):
    """The frames (length, CRC-32C, payload) of a whole log file's bytes."""
    assert raw[:8] == MAGIC
    out, pos = [], 8
    while pos < len(raw):
        ln, _ = struct.unpack_from("<II", raw, pos)
        out.append(raw[pos:pos + 8 + ln])
        pos += 8 + ln
    return out


def frame(payload):
    return struct.pack("<II", len(payload), crc32c(payload)) + payload


def payload(fr):
    return fr[8:]


def write_frames(path, frs, tail=b""):
    with open(path, "wb") as f:
        f.write(MAGIC + b"".join(frs) + tail)


class WitnessCli:
    """`rtcmesh witness ...` of one binary."""

    def __init__(self, binary):
        self.binary = binary

    def run(self, *args, **kw):
        return subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=30, **kw)

    def record(self, work, name="log.wl", count=30, every=10, data_dir="d"):
        path = os.path.join(work, name)
        r = self.run("witness", "record", path, "--data-dir", os.path.join(work, data_dir),
                     "--count", str(count), "--checkpoint-every", str(every))
        if r.returncode != 0 or "closed" not in r.stdout:
            raise TestFailure(f"record failed: {r.returncode} {r.stdout} {r.stderr}")
        return path

    def verify(self, path, *extra):
        r = self.run("witness", "verify", path, *extra)
        print(f"$ rtcmesh witness verify {os.path.basename(path)} {' '.join(extra)} -> {r.returncode}")
        print(r.stdout + r.stderr)
        return r

    def expect(self, path, kind, *extra, seq=None):
        """`witness verify` exits with kind's code and its first line names it (at seq)."""
        r = self.verify(path, *extra)
        if r.returncode != EXIT[kind]:
            raise TestFailure(f"expected {kind} (exit {EXIT[kind]}), got exit {r.returncode}")
        if kind == "valid":
            if not r.stdout.startswith("valid ("):
                raise TestFailure("no 'valid (N events)' line")
            return r
        first = r.stdout.splitlines()[0]
        if not first.startswith(f"BROKEN: {kind}"):
            raise TestFailure(f"first line does not name {kind}: {first}")
        if seq is not None and f"at seq {seq} " not in first:
            raise TestFailure(f"expected seq {seq} in: {first}")
        return r
