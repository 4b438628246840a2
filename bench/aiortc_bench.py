#!/usr/bin/python3
"""Reference benchmark: aiortc (pure-Python WebRTC), two RTCPeerConnections in
one asyncio process, SDP handed over in memory, 127.0.0.1 candidates only.

Prints ONE JSON object on stdout with the same keys as `rtcmesh bench --json`
(plus a few informative extra keys).  Progress and errors go to stderr.

Run it with Debian's interpreter (/usr/bin/python3, package python3-aiortc),
preferably inside a network namespace that has only `lo` (bench/run does that).
"""

import argparse
import asyncio
import json
import logging
import sys
import time

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc import __version__ as AIORTC_VERSION


def _loopback_only(use_ipv4=True, use_ipv6=True):
    # aioice leaves 127.0.0.1 out of its host candidates; we want nothing else.
    return ["127.0.0.1"]


aioice.ice.get_host_addresses = _loopback_only


def log(*args):
    print("[aiortc]", *args, file=sys.stderr, flush=True)


def percentile(values, q):
    """Linear interpolation between closest ranks (same as the other benches)."""
    s = sorted(values)
    if not s:
        return None
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def now_ms():
    return time.perf_counter_ns() / 1e6


class Pair:
    def __init__(self, pc1, pc2, dc1, dc2, ms):
        self.pc1, self.pc2, self.dc1, self.dc2, self.ms = pc1, pc2, dc1, dc2, ms

    async def close(self):
        await self.pc1.close()
        await self.pc2.close()


async def connect_pair(label, timeout=15.0):
    """Connect one pair; the time runs from createOffer to "open" on both sides.

    aiortc does not trickle: candidates are gathered inside setLocalDescription
    and carried in the SDP, so the SDP is handed over after that."""
    cfg = RTCConfiguration(iceServers=[])  # None would mean Google's STUN server
    pc1 = RTCPeerConnection(cfg)
    pc2 = RTCPeerConnection(cfg)
    loop = asyncio.get_running_loop()
    open1 = loop.create_future()
    open2 = loop.create_future()

    dc1 = pc1.createDataChannel(label, ordered=True)

    @dc1.on("open")
    def _on_open1():
        if not open1.done():
            open1.set_result(None)

    @pc2.on("datachannel")
    def _on_dc(channel):
        if channel.readyState == "open":
            if not open2.done():
                open2.set_result(channel)
        else:
            @channel.on("open")
            def _on_open2():
                if not open2.done():
                    open2.set_result(channel)

    t0 = now_ms()
    try:
        offer = await pc1.createOffer()
        await pc1.setLocalDescription(offer)
        await pc2.setRemoteDescription(pc1.localDescription)
        answer = await pc2.createAnswer()
        await pc2.setLocalDescription(answer)
        await pc1.setRemoteDescription(pc2.localDescription)
        _, dc2 = await asyncio.wait_for(asyncio.gather(open1, open2), timeout)
    except BaseException:
        await pc1.close()
        await pc2.close()
        raise
    ms = now_ms() - t0
    return Pair(pc1, pc2, dc1, dc2, ms)


async def bench_setup(n):
    out = []
    for i in range(n):
        p = await connect_pair(f"setup{i}")
        out.append(p.ms)
        await p.close()
        await asyncio.sleep(0.02)
    return out


async def bench_memory(pairs):
    await asyncio.sleep(0.3)
    before = rss_kb()
    held = []
    for i in range(pairs):
        held.append(await connect_pair(f"mem{i}"))
    # every channel works: one message each way... one way is enough
    loop = asyncio.get_running_loop()
    futs = []
    for p in held:
        f = loop.create_future()

        def on_msg(_m, f=f):
            if not f.done():
                f.set_result(None)

        p.dc2.on("message", on_msg)
        p.dc1.send(b"x")
        futs.append(f)
    await asyncio.wait_for(asyncio.gather(*futs), 30)
    await asyncio.sleep(0.5)
    after = rss_kb()
    for p in held:
        await p.close()
    return before, after


async def bench_throughput(msg_size, low, high, warmup_s, duration_s):
    p = await connect_pair("bulk")
    dc1, dc2 = p.dc1, p.dc2
    payload = bytes(msg_size)
    state = {"rx": 0, "msgs": 0, "sending": True}

    @dc2.on("message")
    def _on_message(m):
        state["rx"] += len(m)
        state["msgs"] += 1

    dc1.bufferedAmountLowThreshold = low

    def fill():
        while state["sending"] and dc1.readyState == "open" and dc1.bufferedAmount < high:
            dc1.send(payload)

    dc1.on("bufferedamountlow", fill)
    fill()
    await asyncio.sleep(warmup_s)
    rx0, t0 = state["rx"], time.perf_counter()
    await asyncio.sleep(duration_s)
    rx1, t1 = state["rx"], time.perf_counter()
    state["sending"] = False
    await p.close()
    if rx1 == rx0:
        raise RuntimeError("no data received during the measurement")
    return {"MBps": (rx1 - rx0) / (t1 - t0) / 1e6, "seconds": t1 - t0, "messages": state["msgs"]}


async def bench_rtt(warm, n, size):
    p = await connect_pair("ping")
    dc1, dc2 = p.dc1, p.dc2
    msg = bytes(size)
    done = asyncio.get_running_loop().create_future()
    samples = []
    st = {"i": 0, "t": 0}

    @dc2.on("message")
    def _echo(m):
        dc2.send(m)

    @dc1.on("message")
    def _pong(_m):
        t = time.perf_counter_ns()
        if st["i"] >= warm:
            samples.append((t - st["t"]) / 1e3)
        st["i"] += 1
        if st["i"] >= warm + n:
            if not done.done():
                done.set_result(None)
            return
        st["t"] = time.perf_counter_ns()
        dc1.send(msg)

    st["t"] = time.perf_counter_ns()
    dc1.send(msg)
    await asyncio.wait_for(done, 120)
    await p.close()
    return samples


async def main(opt):
    t_start = time.perf_counter()
    log(f"setup: {opt.setup_count} connections")
    setup = await bench_setup(opt.setup_count)

    pairs = opt.connections // 2
    log(f"memory: {opt.connections} RTCPeerConnections ({pairs} pairs)")
    t_mem = time.perf_counter()
    before, after = await bench_memory(pairs)
    t_mem = time.perf_counter() - t_mem

    log(f"throughput: {opt.message_size}-B messages, {opt.warmup}+{opt.duration} s")
    tp = await bench_throughput(opt.message_size, opt.low_water, opt.high_water,
                                opt.warmup, opt.duration)

    log(f"rtt: {opt.rtt_warmup} + {opt.rtt_count} round trips of {opt.rtt_size} B")
    rtt = await bench_rtt(opt.rtt_warmup, opt.rtt_count, opt.rtt_size)

    def r(x, d):
        return None if x is None else round(x, d)

    return {
        "throughput_MBps": r(tp["MBps"], 2),
        "rtt_p50_us": r(percentile(rtt, 0.5), 1),
        "rtt_p99_us": r(percentile(rtt, 0.99), 1),
        "setup_ms": r(percentile(setup, 0.5), 2),
        "setup_p10_ms": r(percentile(setup, 0.1), 2),
        "setup_p90_ms": r(percentile(setup, 0.9), 2),
        "setup_max_ms": r(max(setup), 2),
        "rss_per_connection_kB": r((after - before) / opt.connections, 1),
        # informative extras
        "stack": "aiortc",
        "version": AIORTC_VERSION,
        "message_size": opt.message_size,
        "throughput_seconds": r(tp["seconds"], 3),
        "rtt_count": len(rtt),
        "setup_count": len(setup),
        "setup_samples_ms": [r(x, 2) for x in setup],
        "connections": opt.connections,
        "rss_before_kB": before,
        "rss_after_kB": after,
        "memory_workload_seconds": r(t_mem, 2),
        "total_seconds": r(time.perf_counter() - t_start, 2),
    }


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3.0, help="bulk measurement, s")
    ap.add_argument("--warmup", type=float, default=0.5, help="bulk warm-up, s")
    ap.add_argument("--message-size", type=int, default=65536)
    ap.add_argument("--low-water", type=int, default=256 * 1024)
    ap.add_argument("--high-water", type=int, default=1024 * 1024)
    ap.add_argument("--rtt-count", type=int, default=2000)
    ap.add_argument("--rtt-warmup", type=int, default=100)
    ap.add_argument("--rtt-size", type=int, default=100)
    ap.add_argument("--setup-count", type=int, default=15)
    ap.add_argument("--connections", type=int, default=100,
                    help="RTCPeerConnection objects for the memory figure (pairs x 2)")
    ap.add_argument("--timeout", type=float, default=120.0, help="whole run, s")
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    opt = ap.parse_args()
    if opt.quick:
        opt.duration, opt.warmup, opt.rtt_count, opt.setup_count, opt.connections = 1, 0.2, 300, 5, 20
    if opt.connections % 2:
        ap.error("--connections must be even (pairs)")
    return opt


if __name__ == "__main__":
    opt = parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # aiortc/aioice chatter stays quiet
    try:
        result = asyncio.run(asyncio.wait_for(main(opt), opt.timeout))
    except Exception as e:  # noqa: BLE001
        log(f"error: {type(e).__name__}: {e}")
        sys.exit(1)
    print(json.dumps(result), flush=True)
