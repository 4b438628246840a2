"""`rtcmesh connect` processes: one description line each way, then lines."""
from .process import Process


class ConnectPeer(Process):
    """`rtcmesh connect --offer|--answer [--loopback] ARGS`.

    stdout "lines": a thread reads stdout, line() waits with a timeout (None at
    EOF or timeout). stdout "pipe": nobody reads stdout until line() does (a
    blocking readline; "" at EOF), so the process can find its stdout full."""

    def __init__(self, binary, role, args=(), env=None, loopback=True, stdout="lines"):
        self.role = role + "er"
        self.cmd = [binary, "connect", "--" + role, *(["--loopback"] if loopback else []), *args]
        self.stdout_mode = stdout
        super().__init__(self.cmd, self.role, stdout=stdout, env=env)

    def line(self, timeout=15):
        if self.stdout_mode == "pipe":
            return self.proc.stdout.readline().rstrip("\n")
        return self.next_line(timeout)
