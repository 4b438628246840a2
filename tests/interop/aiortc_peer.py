#!/usr/bin/python3
"""aiortc implementation of the `rtcmesh connect` interop protocol.

Usage: aiortc_peer.py [connect] (--offer | --answer) [channel options] [--echo]
                      [--selftest [--close-after | --expect-remote-close]]

Protocol (the same as `rtcmesh connect`):
  * The offerer creates the connection and one data channel, gathers all ICE
    candidates (aiortc gathers inside setLocalDescription, there is no
    trickle), prints {"type":"offer","sdp":...} as one line on stdout and reads
    {"type":"answer","sdp":...} as one line from stdin. The answerer reads the
    offer line first and prints the answer line.
  * Once the channel is open every further stdin line is sent as one text
    message; a line starting with "binary:" is sent as a binary message holding
    the base64-decoded rest ("binary:" alone is a 0-byte binary message). An
    empty line is a 0-byte text message. Every received message is printed as
    one line on stdout, binary ones as "binary:" + base64.
  * Status lines go to stderr: "rtcmesh: channel open" and
    "rtcmesh: channel closed".
  * End of stdin, SIGINT or SIGTERM close the channel and the connection
    cleanly and exit 0. When the remote closes the channel the process prints
    the closed status and exits 0. A connection failure exits 1.

--selftest: once the channel is open, send text and binary messages of 0 B,
1 B and 64 KiB with random content (256 KiB is skipped: aiortc's maximum
message size is 64 KiB) to a remote that runs --echo, one at a time, and check
that each comes back with the same type and bytes. Received messages are not
printed in this mode; stdout carries the signalling line and the result line
{"selftest":"pass","checked":N,...} or {"selftest":"fail","reason":...}.
The exit code is 0 on pass and 1 on fail. After the result the peer closes the
channel and the connection. On a partially reliable channel (--max-retransmits,
--max-packet-life-time) a case whose echo does not come back within 2 s is
re-sent with fresh content, up to 5 attempts ("resent" in the result): loss is
allowed there, corruption or a type change never is.
  --close-after          the close is part of the test: the peer closes the
                         channel and fails unless the close completes (the
                         remote acknowledges the stream reset) in time.
  --expect-remote-close  after the checks, print {"selftest":"checked",...}
                         and wait for the remote to close the channel; fail if
                         it does not in time.
"""

import argparse
import asyncio
import base64
import binascii
import json
import os
import random
import re
import signal
import sys
import threading
import time

NAME = "aiortc-peer"
AIORTC_MAX_MESSAGE_SIZE = 65536
SELFTEST_SIZES = (0, 1, 65536, 262144)


def log(msg):
    sys.stderr.write(f"{NAME}: {msg}\n")
    sys.stderr.flush()


def status(msg):
    sys.stderr.write(f"rtcmesh: {msg}\n")
    sys.stderr.flush()


def out_line(data: bytes):
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.buffer.flush()


def out_json(obj):
    out_line(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def parse_args(argv):
    p = argparse.ArgumentParser(prog="aiortc_peer.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="connect", choices=["connect"])
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--offer", action="store_true")
    role.add_argument("--answer", action="store_true")
    p.add_argument("--label", default="data")
    p.add_argument("--protocol", default="", help="data channel sub-protocol")
    p.add_argument("--unordered", action="store_true")
    rel = p.add_mutually_exclusive_group()
    rel.add_argument("--max-retransmits", type=int)
    rel.add_argument("--max-packet-life-time", type=int)
    p.add_argument("--negotiated-id", type=int)
    p.add_argument("--echo", action="store_true")
    p.add_argument("--ice-server", action="append", default=[],
                   help="stun:host:port or turn:user:pass@host:port (repeatable)")
    p.add_argument("--ice-username", help="TURN username (or user:pass@ in the URL)")
    p.add_argument("--ice-credential", help="TURN credential")
    p.add_argument("--relay-only", action="store_true")
    p.add_argument("--loopback", action="store_true",
                   help="gather host candidates on 127.0.0.1 only")
    p.add_argument("--selftest", action="store_true")
    ends = p.add_mutually_exclusive_group()
    ends.add_argument("--close-after", action="store_true")
    ends.add_argument("--expect-remote-close", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds allowed for signalling + channel open, and for each selftest step")
    args = p.parse_args(argv)
    if (args.close_after or args.expect_remote_close) and not args.selftest:
        p.error("--close-after / --expect-remote-close need --selftest")
    return args


# --------------------------------------------------------------------------- stdin


class StdinLines:
    """Reads stdin lines in a thread (works for pipes, files and ttys) and hands
    them to the event loop. None marks end of input."""

    def __init__(self, loop):
        self.queue = asyncio.Queue()
        self.loop = loop
        t = threading.Thread(target=self._run, daemon=True)
        t.start()

    def _run(self):
        stream = sys.stdin.buffer
        while True:
            try:
                line = stream.readline()
            except Exception:  # noqa: BLE001 - treat any read error as EOF
                line = b""
            if not line:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, None)
                return
            if line.endswith(b"\n"):
                line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line)

    async def get(self):
        return await self.queue.get()


def parse_description(line: bytes, expected_type: str):
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RuntimeError(f"bad {expected_type} line (not JSON: {e})") from None
    if not isinstance(obj, dict) or obj.get("type") != expected_type or not isinstance(obj.get("sdp"), str):
        raise RuntimeError(f"bad {expected_type} line: expected {{\"type\":\"{expected_type}\",\"sdp\":...}}")
    return obj["sdp"]


async def read_signal_line(stdin: StdinLines, expected_type: str, timeout: float):
    while True:
        try:
            line = await asyncio.wait_for(stdin.get(), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"timed out waiting for the {expected_type} line on stdin") from None
        if line is None:
            raise RuntimeError(f"end of stdin before the {expected_type} line")
        if line.strip():
            return parse_description(line, expected_type)


# --------------------------------------------------------------------------- ICE setup


def parse_ice_server(url: str, username=None, credential=None):
    """stun:host[:port] or turn[s]:[user:pass@]host[:port][?transport=udp|tcp]."""
    from aiortc import RTCIceServer

    m = re.match(r"^(stuns?|turns?):(?:([^:@]*):([^@]*)@)?(.+)$", url)
    if not m:
        raise RuntimeError(f"bad --ice-server URL: {url}")
    scheme, user, password, rest = m.groups()
    if user is not None:
        return RTCIceServer(urls=f"{scheme}:{rest}", username=user, credential=password)
    if scheme.startswith("turn") and (username is not None or credential is not None):
        return RTCIceServer(urls=url, username=username, credential=credential)
    return RTCIceServer(urls=url)


def patch_ice(args):
    import aioice.ice
    import aiortc.rtcicetransport

    if args.loopback:
        aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
    if args.relay_only:
        base = aiortc.rtcicetransport.Connection

        class RelayOnlyConnection(base):
            def __init__(self, *a, **kw):
                kw["transport_policy"] = aioice.ice.TransportPolicy.RELAY
                super().__init__(*a, **kw)

        aiortc.rtcicetransport.Connection = RelayOnlyConnection


def remote_max_message_size(sdp: str):
    m = re.search(r"^a=max-message-size:(\d+)", sdp, re.M)
    if not m:
        return 65536  # RFC 8841: absent means 64 KiB
    v = int(m.group(1))
    return v if v > 0 else None  # 0 means no limit


# --------------------------------------------------------------------------- selftest

_TEXT_POOL = (
    [chr(c) for c in range(0x20, 0x7F)] * 4  # printable ASCII, weighted
    + ["\u00e9", "\u00df", "\u00f8", "\u20ac", "\u4e2d", "\u2713", "\U0001F600", "\U0001F680"]
)


def random_text(rng: random.Random, nbytes: int) -> str:
    """Random text (no line breaks) whose UTF-8 encoding is exactly nbytes."""
    parts = []
    left = nbytes
    while left > 0:
        ch = rng.choice(_TEXT_POOL)
        n = len(ch.encode("utf-8"))
        if n > left:
            ch = chr(rng.randrange(0x21, 0x7F))
            n = 1
        parts.append(ch)
        left -= n
    s = "".join(parts)
    assert len(s.encode("utf-8")) == nbytes
    return s


def describe(msg):
    if isinstance(msg, str):
        return f"text of {len(msg.encode('utf-8'))} B"
    return f"binary of {len(msg)} B"


class SelfTest:
    def __init__(self, args, channel, remote_sdp, closed_event):
        self.args = args
        self.channel = channel
        self.closed = closed_event
        self.queue = asyncio.Queue()
        self.max_size = AIORTC_MAX_MESSAGE_SIZE
        rmax = remote_max_message_size(remote_sdp)
        if rmax is not None:
            self.max_size = min(self.max_size, rmax)

    def on_message(self, msg):
        self.queue.put_nowait(msg)

    async def _next(self, timeout):
        """Next received message, or None on timeout."""
        if timeout <= 0 and self.queue.empty():
            return None
        get = asyncio.ensure_future(self.queue.get())
        closed = asyncio.ensure_future(self.closed.wait())
        done, _ = await asyncio.wait({get, closed}, timeout=max(timeout, 0),
                                     return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if get in done:
            return get.result()
        get.cancel()
        if closed in done:
            raise RuntimeError("channel closed during the selftest")
        return None

    async def run(self):
        """Returns (ok, result_dict).

        Each case is sent and its echo awaited. On a partially reliable channel
        (--max-retransmits / --max-packet-life-time) a message may legitimately
        be lost: the case is re-sent with fresh content (up to 5 attempts,
        counted as "resent"); whatever comes back must still match exactly one
        of the sent messages."""
        a = self.args
        partial = a.max_retransmits is not None or a.max_packet_life_time is not None
        attempts = 5 if partial else 1
        attempt_timeout = min(a.timeout, 2.0) if partial else a.timeout
        seed = int.from_bytes(os.urandom(8), "big")
        rng = random.Random(seed)
        log(f"selftest: seed {seed}, max message size {self.max_size}, "
            f"{'partially reliable' if partial else 'reliable'} channel")
        checked = resent = late = 0
        skipped = []
        earlier = []
        t0 = time.monotonic()
        try:
            for size in SELFTEST_SIZES:
                for kind in ("text", "binary"):
                    if size > self.max_size:
                        skipped.append(f"{kind}:{size}")
                        log(f"selftest: skipping {kind} of {size} B (max message size {self.max_size})")
                        continue
                    sent = []
                    ok = False
                    for attempt in range(attempts):
                        payload = random_text(rng, size) if kind == "text" else rng.randbytes(size)
                        sent.append(payload)
                        if attempt:
                            resent += 1
                            log(f"selftest: no echo of {kind} of {size} B within {attempt_timeout} s, "
                                "sending it again")
                        self.channel.send(payload)
                        end = time.monotonic() + attempt_timeout
                        while True:
                            got = await self._next(end - time.monotonic())
                            if got is None:
                                break
                            if any(type(got) is type(p) and got == p for p in sent):
                                ok = True
                                break
                            if partial and any(type(got) is type(p) and got == p for p in earlier):
                                late += 1
                                continue
                            if type(got) is not type(payload):
                                raise RuntimeError(f"sent {describe(payload)}, got back {describe(got)}")
                            raise RuntimeError(f"sent {describe(payload)}, got back different content "
                                               f"({describe(got)})")
                        if ok:
                            break
                    if not ok:
                        if partial:
                            raise RuntimeError(f"no echo of {kind} of {size} B after {attempts} attempts "
                                               f"of {attempt_timeout} s")
                        raise RuntimeError(f"timed out waiting for the echo of {kind} of {size} B")
                    earlier.extend(sent)
                    checked += 1
                    log(f"selftest: {kind} of {size} B ok ({time.monotonic() - t0:.3f} s)")
            extra = {}
            if late:
                extra["late"] = late
            if a.close_after:
                await drain(self.channel)
                self.channel.close()
                try:
                    await asyncio.wait_for(self.closed.wait(), a.timeout)
                except asyncio.TimeoutError:
                    raise RuntimeError("local close was not completed in time") from None
                extra["closed"] = "local"
            elif a.expect_remote_close:
                out_json({"selftest": "checked", "checked": checked})
                try:
                    await asyncio.wait_for(self.closed.wait(), a.timeout)
                except asyncio.TimeoutError:
                    raise RuntimeError("remote did not close the channel in time") from None
                extra["closed"] = "remote"
            res = {"selftest": "pass", "checked": checked, "skipped": skipped, "resent": resent,
                   "seconds": round(time.monotonic() - t0, 3)}
            res.update(extra)
            return True, res
        except Exception as e:  # noqa: BLE001
            return False, {"selftest": "fail", "reason": str(e), "checked": checked, "resent": resent}


# --------------------------------------------------------------------------- main


async def drain(channel, timeout=10.0):
    """Wait until queued outgoing data has left aiortc's buffers (best effort)."""
    deadline = time.monotonic() + timeout
    sctp = channel.transport
    while time.monotonic() < deadline and channel.readyState == "open":
        pending = channel.bufferedAmount
        pending += len(getattr(sctp, "_data_channel_queue", ()) or ())
        pending += len(getattr(sctp, "_outbound_queue", ()) or ())
        pending += len(getattr(sctp, "_sent_queue", ()) or ())
        if pending == 0:
            return
        await asyncio.sleep(0.005)


async def run(args) -> int:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    patch_ice(args)
    loop = asyncio.get_running_loop()
    stdin = StdinLines(loop)

    config = RTCConfiguration(iceServers=[parse_ice_server(u, args.ice_username, args.ice_credential)
                                          for u in args.ice_server])
    pc = RTCPeerConnection(configuration=config)

    state = {"channel": None, "selftest": None}
    opened = asyncio.Event()
    closed = asyncio.Event()
    failed = asyncio.Event()
    stop = asyncio.Event()

    def on_stop_signal():
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop_signal)

    @pc.on("connectionstatechange")
    async def on_state():
        log(f"connection state {pc.connectionState}")
        if pc.connectionState == "failed":
            failed.set()

    def attach(channel):
        if state["channel"] is not None:
            log(f"ignoring extra data channel {channel.label!r}")
            return
        state["channel"] = channel

        @channel.on("open")
        def _open():
            opened.set()

        @channel.on("close")
        def _close():
            closed.set()

        @channel.on("message")
        def _message(msg):
            if args.echo and channel.readyState == "open":
                channel.send(msg)
            if state["selftest"] is not None:
                state["selftest"].on_message(msg)
                return
            if isinstance(msg, str):
                out_line(msg.encode("utf-8", "surrogatepass"))
            else:
                out_line(b"binary:" + base64.b64encode(msg))

        if channel.readyState == "open":
            opened.set()

    def make_channel():
        kw = {"ordered": not args.unordered, "protocol": args.protocol}
        if args.max_retransmits is not None:
            kw["maxRetransmits"] = args.max_retransmits
        if args.max_packet_life_time is not None:
            kw["maxPacketLifeTime"] = args.max_packet_life_time
        if args.negotiated_id is not None:
            kw["negotiated"] = True
            kw["id"] = args.negotiated_id
        return pc.createDataChannel(args.label, **kw)

    if args.answer and args.negotiated_id is None:
        @pc.on("datachannel")
        def on_datachannel(channel):
            attach(channel)

    async def wait_or_stop(aw, timeout, what):
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({task, stopper}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if stopper in done:
            raise KeyboardInterrupt
        raise RuntimeError(f"timed out {what}")

    remote_sdp = ""
    try:
        t0 = time.monotonic()
        if args.offer:
            attach(make_channel())
            await pc.setLocalDescription(await pc.createOffer())
            out_json({"type": "offer", "sdp": pc.localDescription.sdp})
            log(f"offer printed after {time.monotonic() - t0:.3f}s")
            remote_sdp = await wait_or_stop(read_signal_line(stdin, "answer", args.timeout),
                                            args.timeout + 1, "reading the answer")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=remote_sdp, type="answer"))
        else:
            remote_sdp = await wait_or_stop(read_signal_line(stdin, "offer", args.timeout),
                                            args.timeout + 1, "reading the offer")
            t0 = time.monotonic()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=remote_sdp, type="offer"))
            if args.negotiated_id is not None:
                attach(make_channel())
            await pc.setLocalDescription(await pc.createAnswer())
            out_json({"type": "answer", "sdp": pc.localDescription.sdp})
            log(f"answer printed after {time.monotonic() - t0:.3f}s")

        opener = asyncio.ensure_future(opened.wait())
        failer = asyncio.ensure_future(failed.wait())
        await wait_or_stop(asyncio.wait({opener, failer}, return_when=asyncio.FIRST_COMPLETED),
                           args.timeout, "waiting for the channel to open")
        opener.cancel()
        failer.cancel()
        if not opened.is_set():
            raise RuntimeError("connection failed before the channel opened")
    except KeyboardInterrupt:
        log("interrupted before the channel opened")
        await pc.close()
        return 0
    except Exception as e:  # noqa: BLE001
        log(f"error: {e}")
        await pc.close()
        return 1

    channel = state["channel"]
    status(f"channel open label={channel.label} id={channel.id}")

    exit_code = 0
    selftest_task = None
    if args.selftest:
        state["selftest"] = SelfTest(args, channel, remote_sdp, closed)
        selftest_task = asyncio.ensure_future(state["selftest"].run())

    stdin_task = asyncio.ensure_future(stdin.get())
    closed_task = asyncio.ensure_future(closed.wait())
    failed_task = asyncio.ensure_future(failed.wait())
    stop_task = asyncio.ensure_future(stop.wait())
    local_close = False
    while True:
        waiting = {stdin_task, closed_task, failed_task, stop_task}
        if selftest_task is not None:
            waiting.add(selftest_task)
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if selftest_task is not None and selftest_task in done:
            ok, res = selftest_task.result()
            out_json(res)
            exit_code = 0 if ok else 1
            selftest_task = None
            local_close = True
            break
        if closed_task in done:
            if selftest_task is not None:
                # the selftest sees the close too: let it report
                ok, res = await selftest_task
                out_json(res)
                exit_code = 0 if ok else 1
                selftest_task = None
            break
        if failed_task in done:
            log("error: connection failed")
            if selftest_task is not None:
                out_json({"selftest": "fail", "reason": "connection failed"})
            exit_code = 1
            break
        if stop_task in done:
            local_close = True
            break
        if stdin_task in done:
            line = stdin_task.result()
            if line is None:
                if args.selftest:
                    # stdin is not needed by the selftest: let it finish first
                    stdin_task = asyncio.ensure_future(asyncio.Event().wait())
                    continue
                local_close = True
                break
            stdin_task = asyncio.ensure_future(stdin.get())
            if channel.readyState != "open":
                continue
            if line.startswith(b"binary:"):
                try:
                    data = base64.b64decode(line[7:], validate=True)
                except (binascii.Error, ValueError):
                    log("error: bad base64 after 'binary:' on stdin, line ignored")
                    continue
                channel.send(data)
            else:
                channel.send(line.decode("utf-8", "replace"))

    for t in (stdin_task, closed_task, failed_task, stop_task):
        t.cancel()
    if selftest_task is not None:
        selftest_task.cancel()

    if local_close and not closed.is_set() and channel.readyState == "open":
        await drain(channel)
        channel.close()
        try:
            await asyncio.wait_for(closed.wait(), 5.0)
        except asyncio.TimeoutError:
            # read by pair.py, which fails the pair on any 'interop-check:' line
            sys.stderr.write("interop-check: our channel close was not completed within 5 s: the remote "
                             "did not answer our stream reset\n")
            sys.stderr.flush()
    status("channel closed")
    try:
        await asyncio.wait_for(pc.close(), 5.0)
    except Exception as e:  # noqa: BLE001
        log(f"warning: closing the connection: {e}")
    return exit_code


def main():
    args = parse_args(sys.argv[1:])
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
