"""Child processes with their output read by threads, and waits with timeouts."""
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from .failures import Timeout, TestFailure

HOST = "127.0.0.1"


class Process:
    """A child process; its stderr lines (and stdout lines or JSON events) are
    collected by threads under one condition variable.

    stdout: "lines"  stdout lines go to self.out (None appended at EOF)
            "json"   each stdout line is parsed into self.events; a line that
                     is not JSON becomes {"event": "bad-line", "line": ...}
            "pipe"   stdout is left to the caller (self.proc.stdout)
            None     stdout is discarded
    stderr lines go to self.err (None appended at EOF). on_line(stream, line),
    when given, sees every line as it is read ("out" or "err"), on_eof(stream)
    the end of each stream.
    binary: lines are bytes (stdin too), read through large buffers.
    pdeathsig: the child gets SIGKILL when the thread that started it ends (so
    when this process dies; start it on a thread that outlives it). setpriv
    execs the child, so proc.pid is the child's pid. new_session: the child leads a process
    group of its own (os.killpg reaches what it starts)."""

    def __init__(self, argv, name=None, *, stdout="lines", stdin=True, env=None, pdeathsig=False,
                 on_line=None, on_eof=None, binary=False, new_session=False):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.out, self.err, self.events = [], [], []
        self.cond = threading.Condition()
        self.on_line, self.on_eof, self.binary = on_line, on_eof, binary
        wrapper = []
        if pdeathsig and shutil.which("setpriv"):
            wrapper = [shutil.which("setpriv"), "--pdeathsig", "KILL", "--"]
        out = {"lines": subprocess.PIPE, "json": subprocess.PIPE, "pipe": subprocess.PIPE,
               None: subprocess.DEVNULL}[stdout]
        text = {} if binary else {"text": True, "errors": "replace", "bufsize": 1}
        self.proc = subprocess.Popen(wrapper + self.argv,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.PIPE, start_new_session=new_session,
                                     env=None if env is None else {**os.environ, **env}, **text)
        self.readers = [threading.Thread(target=self._read, args=("err", self.proc.stderr, self.err),
                                         daemon=True)]
        if stdout == "lines":
            self.readers.append(threading.Thread(target=self._read, args=("out", self.proc.stdout, self.out),
                                                 daemon=True))
        elif stdout == "json":
            self.readers.append(threading.Thread(target=self._read_json, daemon=True))
        for t in self.readers:
            t.start()

    # ---- readers

    def _lines(self, stream):
        if not self.binary:
            return stream
        # readline() on an unbuffered pipe reads one byte per syscall: a 256 KiB
        # line would take a sizeable fraction of a second
        buffered = io.open(stream.fileno(), "rb", buffering=1 << 20, closefd=False)
        return iter(buffered.readline, b"")

    def _read(self, stream_name, stream, sink):
        newline = b"\n" if self.binary else "\n"
        for line in self._lines(stream):
            line = line.rstrip(newline)
            if self.on_line:
                self.on_line(stream_name, line)
            with self.cond:
                sink.append(line)
                self.cond.notify_all()
        with self.cond:
            sink.append(None)  # EOF
            self.cond.notify_all()
        if self.on_eof:
            self.on_eof(stream_name)

    def _read_json(self):
        for line in self.proc.stdout:
            line = line.strip()
            if self.on_line:
                self.on_line("out", line)
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "bad-line", "line": line}
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()
        if self.on_eof:
            self.on_eof("out")

    def join_readers(self, timeout=5):
        """Waits until the readers saw EOF (everything the process printed)."""
        for t in self.readers:
            t.join(timeout)

    # ---- output

    def stderr_lines(self):
        with self.cond:
            return [l for l in self.err if l is not None]

    def stderr(self, tail=None):
        lines = self.stderr_lines()
        return "\n".join(lines[-tail:] if tail else lines)

    def wait_err(self, pattern, timeout=15):
        """The first stderr match of the regex (str or compiled), or None at timeout or EOF."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for l in self.err:
                    m = l is not None and rx.search(l)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if (self.err and self.err[-1] is None) or left <= 0:
                    return None
                self.cond.wait(left)

    def next_line(self, timeout=15):
        """The next stdout line (stdout="lines"); None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.out:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            if self.out[0] is None:
                return None
            return self.out.pop(0)

    def wait_event(self, what, pred, timeout):
        """The first JSON event for which pred(event) holds; Timeout or TestFailure
        (the process exited) otherwise."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"timed out after {timeout:.0f} s waiting for {self.name}: {what}")
                if self.proc.poll() is not None:
                    raise TestFailure(f"{self.name} exited ({self.proc.returncode}) while waiting for {what}")
                self.cond.wait(min(left, 0.2))

    # ---- input and life

    def send(self, line):
        """Writes one line to stdin; False if the process no longer reads it."""
        try:
            self.proc.stdin.write(line + (b"\n" if self.binary else "\n"))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError):
            return False

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=15):
        """The exit code, or None if it did not exit within `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    wait = wait_exit  # (MeshPeer's wait() waits for events instead)

    def kill(self, timeout=5):
        if self.alive():
            self.proc.kill()
            self.wait_exit(timeout)

    def terminate(self, timeout=5):
        """SIGTERM, then SIGKILL after `timeout` s; returns the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def wait_until(what, fn, timeout, interval=0.1):
    """Polls fn() until it is true; Timeout after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_free(port, host=HOST):
    """True if `port` can be bound on `host` for both TCP and UDP right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def temp_dir(prefix):
    """A new temporary directory (the caller removes it, see remove_tree)."""
    return tempfile.mkdtemp(prefix=prefix)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
