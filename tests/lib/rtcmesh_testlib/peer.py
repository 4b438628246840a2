"""`rtcmesh peer --json` processes and their JSON events."""
import os
import signal
import subprocess
import time

from .failures import Timeout
from .hub import Hub
from .process import Process, remove_tree, temp_dir


class MeshPeer(Process):
    """`rtcmesh peer --hub URL --room ROOM --json`; waits for its "node" event.
    peer_id None: the peer uses its node id (learned from the "node" event)."""

    def __init__(self, binary, hub_url, peer_id, download_dir=None, extra=(), room="demo", env=None,
                 data_dir=None, reconnect_ms=200, node_timeout=15, on_line=None):
        self.id = peer_id
        self.download_dir = download_dir
        args = [binary, "peer", "--hub", hub_url, "--room", room, "--json"]
        if reconnect_ms is not None:
            args += ["--reconnect-interval", str(reconnect_ms)]
        if peer_id is not None:
            args += ["--id", peer_id]
        if download_dir:
            args += ["--download-dir", download_dir]
        if data_dir:
            args += ["--data-dir", data_dir]
        args += list(extra)
        super().__init__(args, peer_id or "peer", stdout="json", env=env, on_line=on_line)
        self.node = None
        if node_timeout:
            self.node = self.wait("node", timeout=node_timeout)[0]
            if self.id is None:
                self.id = self.node["node_id"]

    def matching(self, event, **fields):
        with self.cond:
            return [e for e in self.events
                    if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def count(self, event, **fields):
        return len(self.matching(event, **fields))

    def wait(self, event, n=1, timeout=20, **fields):
        """The first n events named `event` with these fields (all of them once n are there)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [e for e in self.events
                       if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise Timeout(
                        f"{self.id}: waited for {n}x {event} {fields}; exit={self.proc.poll()}\n"
                        f"events: {self.events[-30:]}\nstderr: {self.stderr_lines()[-20:]}")
                self.cond.wait(min(left, 0.2))

    def peers(self):
        before = self.count("peers")
        self.send("/peers")
        return self.wait("peers", n=before + 1, timeout=10)[-1]["peers"]

    def wait_stderr(self, text, n=1, timeout=20):
        """Waits for `n` stderr lines containing `text` (RTCMESH_LOG=info diagnostics)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [l for l in self.stderr_lines() if text in l]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise Timeout(f"{self.id}: waited for {n}x stderr '{text}'; exit={self.proc.poll()}\n"
                              f"events: {self.events[-30:]}\nstderr: {self.stderr_lines()[-30:]}")
            time.sleep(0.05)

    def stderr_count(self, text):
        return sum(text in l for l in self.stderr_lines())

    def channel_open(self, peer):
        return channel_open(self, peer)

    def stop(self):
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self):
        self.proc.send_signal(signal.SIGCONT)

    def quit(self):
        """/quit (SIGKILL if it does not exit within 10 s); the exit code, once
        everything the process printed (sanitizer reports included) was read."""
        if self.proc.poll() is None:
            self.cont()  # a test that failed while this peer was stopped
            try:
                self.proc.stdin.write("/quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.join_readers(5)
        return self.proc.returncode


def open_channels(peer):
    """{peer id: open count} of the rtcmesh channels, from channel-open/closed events."""
    state = {}
    with peer.cond:
        for e in peer.events:
            if e.get("event") == "channel-open":
                state[e["peer"]] = state.get(e["peer"], 0) + 1
            elif e.get("event") == "channel-closed":
                state[e["peer"]] = state.get(e["peer"], 0) - 1
    return state


def channel_open(proc, peer):
    """True if `proc`'s rtcmesh channel to `peer` is open now (any process that
    prints the peer's JSON events: rtcmesh peer, the third-party clients)."""
    return open_channels(proc).get(peer, 0) > 0


SANITIZER_MARKS = ("Sanitizer", "runtime error:")


class MeshScene:
    """Hubs and peers of one test and a temporary directory; close() tears them
    down whatever happened, then fails on a sanitizer report in any stderr."""

    def __init__(self, binary, prefix="rtcmesh-mesh-"):
        self.binary = binary
        self.tmp = temp_dir(prefix)
        self.hubs = []
        self.peers = []

    def hub(self, port=0, extra=()):
        h = Hub(self.binary, *extra, port=port, timeout=15)
        self.hubs.append(h)
        return h

    def peer(self, hub_url, peer_id, extra=(), room="demo", env=None):
        p = MeshPeer(self.binary, hub_url, peer_id, os.path.join(self.tmp, "dl-" + peer_id), extra, room, env)
        self.peers.append(p)
        return p

    def close(self):
        for p in self.peers:
            p.quit()
        for h in self.hubs:
            h.stop()
            h.join_readers(5)
        remove_tree(self.tmp)
        # Under ASan/TSan builds a sanitizer report fails the test even if the behaviour was right.
        for name, proc in [(p.id, p) for p in self.peers] + [("hub", h) for h in self.hubs]:
            lines = proc.stderr_lines()
            if any(mark in l for l in lines for mark in SANITIZER_MARKS):
                raise AssertionError(f"{name}: sanitizer report:\n" + "\n".join(lines[-80:]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
