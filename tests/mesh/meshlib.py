"""Drives real `rtcmesh hub` and `rtcmesh peer --json` processes on 127.0.0.1."""
import json
import os
import re
import signal
import subprocess
import threading
import time

LISTEN_RE = re.compile(r"listening on (https?)://([^/]+)/ \(signaling (wss?://\S+)\)")


class Hub:
    def __init__(self, binary, listen="127.0.0.1:0", extra=()):
        self.proc = subprocess.Popen([binary, "hub", "--listen", listen, *extra],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.url = None
        self.port = None
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                m = LISTEN_RE.search(line)
                if m and not ready.is_set():
                    self.url = m.group(3)
                    self.port = int(m.group(2).rsplit(":", 1)[1])
                    ready.set()
        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(15):
            self.proc.kill()
            raise AssertionError(f"hub did not print its listening line: {self.lines}")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Peer:
    def __init__(self, binary, hub_url, peer_id, download_dir=None, extra=(), room="demo", env=None,
                 data_dir=None):
        """peer_id None: the peer uses its node id (learned from its "node" event)."""
        self.id = peer_id
        self.download_dir = download_dir
        args = [binary, "peer", "--hub", hub_url, "--room", room, "--json", "--reconnect-interval", "200"]
        if peer_id is not None:
            args += ["--id", peer_id]
        if download_dir:
            args += ["--download-dir", download_dir]
        if data_dir:
            args += ["--data-dir", data_dir]
        args += list(extra)
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env={**os.environ, **(env or {})})
        self.events = []
        self.stderr = []
        self.cv = threading.Condition()

        def read_out():
            for line in self.proc.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"event": "bad-line", "line": line}
                with self.cv:
                    self.events.append(event)
                    self.cv.notify_all()

        def read_err():
            for line in self.proc.stderr:
                self.stderr.append(line.rstrip("\n"))
        self.readers = [threading.Thread(target=read_out, daemon=True),
                        threading.Thread(target=read_err, daemon=True)]
        for t in self.readers:
            t.start()
        self.node = self.wait("node", timeout=15)[0]
        if self.id is None:
            self.id = self.node["node_id"]

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def matching(self, event, **fields):
        with self.cv:
            return [e for e in self.events
                    if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def count(self, event, **fields):
        return len(self.matching(event, **fields))

    def wait(self, event, n=1, timeout=20, **fields):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                got = [e for e in self.events
                       if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.id}: waited for {n}x {event} {fields}; exit={self.proc.poll()}\n"
                        f"events: {self.events[-30:]}\nstderr: {self.stderr[-20:]}")
                self.cv.wait(min(left, 0.2))

    def peers(self):
        before = self.count("peers")
        self.send("/peers")
        return self.wait("peers", n=before + 1, timeout=10)[-1]["peers"]

    def wait_stderr(self, text, n=1, timeout=20):
        """Waits for `n` stderr lines containing `text` (RTCMESH_LOG=info diagnostics)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [l for l in list(self.stderr) if text in l]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{self.id}: waited for {n}x stderr '{text}'; exit={self.proc.poll()}\n"
                                     f"events: {self.events[-30:]}\nstderr: {self.stderr[-30:]}")
            time.sleep(0.05)

    def stderr_count(self, text):
        return sum(text in l for l in list(self.stderr))

    def stop(self):
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self):
        self.proc.send_signal(signal.SIGCONT)

    def alive(self):
        return self.proc.poll() is None

    def quit(self):
        if self.proc.poll() is None:
            self.cont()  # a test that failed while this peer was stopped
            try:
                self.send("/quit")
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for t in self.readers:  # everything the process printed, sanitizer reports included
            t.join(5)
        return self.proc.returncode


def open_channels(peer):
    """Peers whose rtcmesh channel is open now, from channel-open/closed events."""
    state = {}
    with peer.cv:
        for e in peer.events:
            if e.get("event") == "channel-open":
                state[e["peer"]] = state.get(e["peer"], 0) + 1
            elif e.get("event") == "channel-closed":
                state[e["peer"]] = state.get(e["peer"], 0) - 1
    return state
