"""`rtcmesh hub` on 127.0.0.1: started, its listening line checked, its HTTP API."""
import http.client
import json
import re
import signal
import sys

from .failures import TestFailure, require
from .metrics import parse_prometheus
from .process import HOST, Process

LISTEN_RE = re.compile(r"rtcmesh hub: listening on (https?)://127\.0\.0\.1:(\d+)/ "
                       r"\(signaling (wss?)://127\.0\.0\.1:(\d+)/signaling\)")

HUBS = []  # every hub started: dump_hubs() prints them on failure, kill_hubs() at exit


class Hub(Process):
    """`rtcmesh hub --listen 127.0.0.1:PORT ARGS`; waits for the listening line
    and checks it (scheme, one real port, nothing else on the line).

    port: the port (a real hub, url: its signaling URL, http: its HTTP base)."""

    def __init__(self, binary, *args, port=0, tls_context=None, timeout=10, on_line=None):
        self.args = [binary, "hub", "--listen", f"{HOST}:{port}", *args]
        self.tls = tls_context  # an ssl.SSLContext trusting the hub's certificate
        super().__init__(self.args, "hub", stdout=None, stdin=False, pdeathsig=True, on_line=on_line)
        HUBS.append(self)
        m = self.wait_err(LISTEN_RE, timeout)
        require(m, f"the hub printed no listening line within {timeout} s "
                   f"(exit {self.proc.poll()}):\n{' '.join(self.args)}\n{self.stderr(80)}")
        scheme, p1, wscheme, p2 = m.groups()
        want = ("https", "wss") if tls_context else ("http", "ws")
        require((scheme, wscheme) == want and p1 == p2 and int(p1) > 0,
                f"listening line {m.string!r}: expected {want} and one real port")
        require(m.string.strip() == m.group(0), f"the listening line has extra text: {m.string!r}")
        require(port == 0 or int(p1) == port, f"asked for port {port}, listening on {p1}")
        self.port = int(p1)
        self.http = f"{scheme}://{HOST}:{self.port}"
        self.ws = f"{wscheme}://{HOST}:{self.port}/signaling"
        self.url = self.ws

    def stderr(self, tail=80):
        return super().stderr(tail)

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s; returns the exit code."""
        return self.terminate(5)

    def kill(self):
        """SIGKILL (a crash, as far as the peers can tell)."""
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    # ---- HTTP

    def get(self, path, headers=None, timeout=5):
        """(status, headers dict lower-case, body bytes) of GET path on a fresh connection."""
        if self.tls:
            c = _HTTPSLocalhost(HOST, self.port, timeout=timeout, context=self.tls)
        else:
            c = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            c.close()

    def get_json(self, path, headers=None):
        status, hdrs, body = self.get(path, headers)
        require(status == 200, f"GET {path}: status {status}, body {body[:300]!r}")
        require(hdrs.get("content-type", "").startswith("application/json"),
                f"GET {path}: content-type {hdrs.get('content-type')!r}, expected application/json")
        try:
            return json.loads(body)
        except ValueError as e:
            raise TestFailure(f"GET {path}: body is not JSON ({e}): {body[:300]!r}") from e

    def health(self):
        h = self.get_json("/api/health")
        require(h.get("status") == "ok", f"/api/health: {h}")
        return h

    def metrics(self):
        status, hdrs, body = self.get("/metrics")
        require(status == 200, f"GET /metrics: status {status}")
        require(hdrs.get("content-type", "").startswith("text/plain"),
                f"/metrics content-type {hdrs.get('content-type')!r}, expected text/plain (Prometheus text)")
        return parse_prometheus(body.decode())

    def rejections(self):
        return {dict(labels).get("reason"): v for (name, labels), v in self.metrics().items()
                if name == "rtcmesh_hub_rejections_total"}

    def gauge(self, name):
        m = self.metrics()
        require((name, frozenset()) in m, f"/metrics has no {name}")
        return m[(name, frozenset())]


class _HTTPSLocalhost(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that verifies the certificate for the name "localhost"."""

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname="localhost")


def dump_hubs():
    for h in HUBS:
        print(f"--- hub ({' '.join(h.args)}), exit {h.proc.poll()}, stderr tail:\n{h.stderr(80)}",
              file=sys.stderr)


def kill_hubs():
    for h in HUBS:
        h.kill()
