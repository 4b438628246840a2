#!/usr/bin/env python3
"""The hub (`rtcmesh hub`) against docs/signaling-protocol.md Part 1 and the CLI
contract, as real processes over 127.0.0.1.

Usage: hub_test.py RTCMESH_BINARY CASE   (ctest runs one process per case, hub.<case>)

Each case starts its own hub(s) on port 0 and parses the listening line. The
"limits and hostile input" cases keep a bystander pair in the same room that must
still exchange an offer and an answer afterwards and must have received nothing
unexpected; after each abuse /api/health must answer and
rtcmesh_hub_rejections_total must have counted it. On failure the hub's stderr
is printed. Python standard library + websockets 10.4 (Debian's /usr/bin/python3);
turn_relay also needs coturn (rtcmesh_testlib.turn: Coturn, Session).
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib import hub as testlib_hub  # noqa: E402
from rtcmesh_testlib import turn  # noqa: E402
from rtcmesh_testlib.failures import TestFailure, require  # noqa: E402
from rtcmesh_testlib.process import HOST  # noqa: E402

import hublib  # noqa: E402  (this suite's WebSocket clients, beside this file)
from hublib import (Bystanders, Client, RawWS, check_rejected, http_exchange, joined, log,  # noqa: E402
                    upgrade_status)

BIN = ""  # set in main


def Hub(*args, **kw):  # noqa: N802  (reads as the class it makes)
    """A hub of the binary under test (rtcmesh_testlib.hub.Hub)."""
    return testlib_hub.Hub(BIN, *args, **kw)


SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"


def is_subset(small, big):
    return all(k in big and big[k] == v for k, v in small.items())


# =========================================================================== protocol


async def case_protocol():
    hub = Hub()
    MA, MB, MC = ({"name": n, "kind": "test", "capabilities": ["chat", "file"], "n": [1, 2.5, None, True]}
                  for n in ("Alice", "Bob", "Carol"))

    a = await Client.connect(hub, "alice")
    # heartbeat works before joining, and carries its id back
    t = time.time() * 1000
    await a.send({"type": "heartbeat", "id": 1})
    ack = await a.expect("heartbeat-ack", ref=1)
    require(isinstance(ack.get("time"), int) and abs(ack["time"] - t) < 5000,
            f"heartbeat-ack time {ack.get('time')!r} is not the hub's unix ms (now {t:.0f})")

    # not_joined for everything but join/heartbeat
    for i, msg in enumerate([
            {"type": "offer", "to": "bob", "session": "s1234567", "sdp": SDP},
            {"type": "answer", "to": "bob", "session": "s1234567", "sdp": SDP},
            {"type": "candidate", "to": "bob", "session": "s1234567", "candidate": None},
            {"type": "relay", "to": "bob", "data": {"type": "chat", "text": "x"}},
            {"type": "announce", "metadata": {}},
            {"type": "broadcast", "data": {}},
            {"type": "leave"}]):
        await a.send(dict(msg, id=f"nj{i}"))
        await a.expect_error("not_joined", ref=f"nj{i}")
    log("protocol: not_joined for offer/answer/candidate/relay/announce/broadcast/leave before join")

    # invalid_id
    for i, (room, peer) in enumerate([("bad room", "alice"), ("demo", "-alice"), ("demo", "a" * 65),
                                      ("", "alice"), ("demo", ""), ("demo", "al/ice"), ("d\u00e9mo", "alice"),
                                      (".demo", "alice"), ("demo", "alice\n"), ("x" * 65, "alice")]):
        await a.send({"type": "join", "room": room, "peer": peer, "id": 100 + i})
        await a.expect_error("invalid_id", ref=100 + i)
    log("protocol: invalid_id for 10 bad room/peer ids")

    w = await a.join("demo", "alice", ref="j1", metadata=MA)
    require(w.get("peers") == [], f"first welcome peers {w.get('peers')!r}, expected []")
    require(isinstance(w.get("resume"), str) and len(w["resume"]) >= 16,
            f"welcome resume {w.get('resume')!r}: expected a secret string (>= 16 chars)")
    require(w.get("resumed") is False, f"welcome resumed {w.get('resumed')!r}")
    require(w.get("heartbeat_interval") == 30000 and w.get("peer_timeout") == 60000,
            f"welcome heartbeat_interval/peer_timeout {w.get('heartbeat_interval')}/{w.get('peer_timeout')}")
    limits = {"max_frame": 65536, "messages_per_second": 200, "peers_per_room": 256}
    require(isinstance(w.get("limits"), dict) and is_subset(limits, w["limits"]),
            f"welcome limits {w.get('limits')!r}, expected {limits}")

    b = await joined(hub, "demo", "bob", metadata=MB)
    require(b.welcome.get("peers") == [{"peer": "alice", "metadata": MA}],
            f"bob's welcome peers {b.welcome.get('peers')!r}")
    require(b.welcome["resume"] != w["resume"], "two peers got the same resume secret")
    got = await a.expect("peer-joined", peer="bob")
    require(got == {"type": "peer-joined", "peer": "bob", "metadata": MB}, f"alice got {got!r}")
    c = await joined(hub, "demo", "carol", metadata=MC)
    peers = sorted(c.welcome.get("peers") or [], key=lambda p: p.get("peer", ""))
    require(peers == [{"peer": "alice", "metadata": MA}, {"peer": "bob", "metadata": MB}],
            f"carol's welcome peers {c.welcome.get('peers')!r}")
    for x in (a, b):
        await x.expect("peer-joined", peer="carol", metadata=MC)
    long_id = "Z" + "a1_.-" * 12 + "xyz"  # 64 characters, the longest allowed
    d = await joined(hub, "room." + "r" * 58, long_id)
    log("protocol: welcome (peers, resume, limits), peer-joined to the others; 64-char ids accepted")

    # forwarding: exactly the sent object plus from, only to the target
    ext = {"x-ext": {"nested": [1, "two", None, {"k": False}]}, "unicode": "\u00e9\u4e2d\U0001F600"}
    msgs = [
        {"type": "offer", "to": "bob", "session": "k3J9x0ab", "sdp": SDP, **ext},
        {"type": "answer", "to": "bob", "session": "k3J9x0ab", "sdp": SDP},
        {"type": "candidate", "to": "bob", "session": "k3J9x0ab",
         "candidate": {"candidate": "candidate:1 1 UDP 2122252543 127.0.0.1 50000 typ host",
                       "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}},
        {"type": "candidate", "to": "bob", "session": "k3J9x0ab", "candidate": None},
        {"type": "relay", "to": "bob", "data": {"type": "chat", "text": "hi \"bob\"\n", "ts": 1767225600123}},
    ]
    for msg in msgs:
        await a.send(msg)
        got = await b.recv(5, f"forwarded {msg['type']}")
        require(got == dict(msg, **{"from": "alice"}),
                f"bob got {got!r}\nexpected {dict(msg, **{'from': 'alice'})!r}")
    await b.send({"type": "answer", "to": "alice", "session": "k3J9x0ab", "sdp": SDP})
    await a.expect("answer", **{"from": "bob", "to": "alice", "session": "k3J9x0ab", "sdp": SDP})
    # with an id: forwarded, and nothing comes back to the sender
    await a.send({"type": "offer", "to": "carol", "session": "zz99zz99", "sdp": SDP, "id": 77})
    got = await c.recv(5, "offer with id")
    require(is_subset({"type": "offer", "to": "carol", "session": "zz99zz99", "sdp": SDP, "from": "alice"}, got),
            f"carol got {got!r}")
    for x in (a, b, c, d):
        await x.silence(0.1)
    log("protocol: offer/answer/candidate/candidate null/relay forwarded with from, every other member "
        "unchanged, to the target only")

    # target_offline
    await a.send({"type": "offer", "to": "nobody", "session": "s1234567", "sdp": SDP, "id": "t1"})
    await a.expect_error("target_offline", ref="t1", to="nobody")
    await a.send({"type": "relay", "to": long_id, "data": {}, "id": 42})  # in another room
    await a.expect_error("target_offline", ref=42, to=long_id)
    await d.silence(0.1)
    log("protocol: target_offline with to and ref (never joined; another room)")

    # announce
    MA2 = {"name": "Alice 2", "capabilities": ["chat"]}
    await a.send({"type": "announce", "metadata": MA2})
    for x in (b, c):
        got = await x.recv(5, "peer-announced")
        require(got == {"type": "peer-announced", "peer": "alice", "metadata": MA2}, f"{x.name} got {got!r}")
    await a.silence(0.1)
    # broadcast
    data = {"k": [1, 2, {"z": "w"}], "s": "text"}
    await a.send({"type": "broadcast", "data": data})
    for x in (b, c):
        got = await x.recv(5, "broadcast")
        require(got == {"type": "broadcast", "from": "alice", "data": data}, f"{x.name} got {got!r}")
    await a.silence(0.1)
    await d.silence(0.0)
    log("protocol: announce -> peer-announced, broadcast to the others only")

    # heartbeat when joined
    await c.send({"type": "heartbeat", "id": "hb"})
    await c.expect("heartbeat-ack", ref="hb")
    # already_joined (same room and another room)
    await a.send({"type": "join", "room": "demo", "peer": "alice", "id": "aj1"})
    await a.expect_error("already_joined", ref="aj1")
    await a.send({"type": "join", "room": "other", "peer": "alice2", "id": "aj2"})
    await a.expect_error("already_joined", ref="aj2")
    # unknown_type
    await a.send({"type": "frobnicate", "id": 3})
    await a.expect_error("unknown_type", ref=3)
    await a.send({"type": "welcome", "id": 4})  # a hub -> client type
    await a.expect_error("unknown_type", ref=4)
    for x in (b, c):
        await x.silence(0.1)
    log("protocol: heartbeat-ack, already_joined, unknown_type")

    # leave: the others see "left"; the connection stays usable
    await b.send({"type": "leave"})
    for x in (a, c):
        await x.expect("peer-left", peer="bob", reason="left")
    await b.send({"type": "offer", "to": "alice", "session": "s1234567", "sdp": SDP, "id": "after-leave"})
    await b.expect_error("not_joined", ref="after-leave")
    w2 = await b.join("demo", "bob", metadata=MB)
    peers = sorted(w2.get("peers") or [], key=lambda p: p.get("peer", ""))
    require(peers == [{"peer": "alice", "metadata": MA2}, {"peer": "carol", "metadata": MC}],
            f"bob's second welcome peers {w2.get('peers')!r} (alice's metadata must be the announced one)")
    for x in (a, c):
        await x.expect("peer-joined", peer="bob")
    log("protocol: leave -> peer-left left; the same connection joins again (announced metadata listed)")

    # socket close: "closed"
    await c.close()
    for x in (a, b):
        await x.expect("peer-left", peer="carol", reason="closed")
    await a.send({"type": "offer", "to": "carol", "session": "s1234567", "sdp": SDP, "id": 5})
    await a.expect_error("target_offline", ref=5, to="carol")
    await d.silence(0.0)
    log("protocol: socket close -> peer-left closed; then target_offline")
    for x in (a, b, d):
        await x.close()


async def case_no_relay():
    hub = Hub("--no-relay")
    a = await joined(hub, "demo", "alice")
    b = await joined(hub, "demo", "bob")
    await a.expect("peer-joined", peer="bob")
    before = hub.rejections()
    await a.send({"type": "relay", "to": "bob", "data": {"type": "chat", "text": "x"}, "id": 9})
    await a.expect_error("relay_disabled", ref=9)
    await b.silence(0.3)
    await a.send({"type": "offer", "to": "bob", "session": "s1234567", "sdp": SDP})
    await b.expect("offer", **{"from": "alice"})
    await check_rejected(hub, before, "relay_disabled", "no_relay")
    log("no_relay: relay refused with relay_disabled, nothing reaches bob, offers still forwarded")


# =========================================================================== resume


async def case_resume():
    hub = Hub()
    a = await joined(hub, "demo", "alice", metadata={"v": 1})
    b = await joined(hub, "demo", "bob")
    await a.expect("peer-joined", peer="bob")
    secret = a.welcome["resume"]

    x = await Client.connect(hub, "alice-2")
    await x.send({"type": "join", "room": "demo", "peer": "alice", "id": "r1"})
    await x.expect_error("id_taken", ref="r1")
    await x.send({"type": "join", "room": "demo", "peer": "alice", "resume": secret[::-1] + "x", "id": "r2"})
    await x.expect_error("id_taken", ref="r2")
    await x.send({"type": "join", "room": "demo", "peer": "alice", "resume": b.welcome["resume"], "id": "r3"})
    await x.expect_error("id_taken", ref="r3")
    await a.silence(0.1)
    await b.silence(0.1)
    log("resume: a live id without (or with a wrong, or another peer's) resume -> id_taken")

    w = await x.join("demo", "alice", resume=secret, metadata={"v": 1})
    require(w.get("resumed") is True, f"resumed join: welcome resumed {w.get('resumed')!r}")
    require(w.get("peers") == [{"peer": "bob", "metadata": {}}] or
            [p.get("peer") for p in w.get("peers", [])] == ["bob"], f"resumed welcome peers {w.get('peers')}")
    code, reason, before = await a.closed(5)
    require(code == 4000, f"the replaced connection closed with {code} {reason!r}, expected 4000")
    await b.silence(0.5)
    await b.send({"type": "offer", "to": "alice", "session": "s1234567", "sdp": SDP})
    await x.expect("offer", **{"from": "bob"})
    await x.send({"type": "answer", "to": "bob", "session": "s1234567", "sdp": SDP})
    await b.expect("answer", **{"from": "alice"})
    log("resume: with the secret the old socket closes 4000 (reason %r), welcome resumed:true, bob saw "
        "no leave/join and reaches the new connection" % reason)

    secret2 = w.get("resume", secret)
    await x.close()
    await b.expect("peer-left", peer="alice", reason="closed")
    y = await Client.connect(hub, "alice-3")
    w3 = await y.join("demo", "alice", resume=secret2)
    require(w3.get("resumed") is False, f"join after the old connection is gone: resumed {w3.get('resumed')!r}")
    await b.expect("peer-joined", peer="alice")
    z = await Client.connect(hub, "alice-4")
    await z.send({"type": "join", "room": "demo", "peer": "alice", "id": "r4"})
    await z.expect_error("id_taken", ref="r4")
    log("resume: after the old connection closed, a join with the stale secret is ordinary "
        "(resumed:false, bob sees peer-joined); the id is held again")

    # a hub restart frees every id (same port)
    port = hub.port
    rc = await asyncio.to_thread(hub.stop)
    require(rc == 0, f"hub exit code {rc} on SIGTERM")
    for c in (y, b, z):
        await c.close()
    hub2 = await asyncio.to_thread(lambda: Hub(port=port))
    n = await joined(hub2, "demo", "alice", resume=w3["resume"])
    require(n.welcome.get("resumed") is False and n.welcome.get("peers") == [],
            f"after a restart: welcome {n.welcome}")
    m = await joined(hub2, "demo", "bob")
    await n.expect("peer-joined", peer="bob")
    log("resume: after a hub restart on the same port every id is free (old secret -> ordinary join)")
    for c in (n, m):
        await c.close()


# =========================================================================== tokens


async def case_tokens():
    S = "tok-secret-\u00e9-1"
    hub = Hub("--token-secret", S, "--turn-secret", "ts", "--turn-url", "turn:127.0.0.1:3478?transport=udp")
    now = int(time.time())
    good = {"room": "demo", "sub": "alice", "exp": now + 600}
    valid = hublib.jwt(S, good)
    h, p, sig = valid.split(".")
    tampered = h + "." + hublib.b64url(json.dumps(dict(good, sub="bob")).encode()) + "." + sig
    bad = [
        ("no token", None),
        ("empty token", ""),
        ("not a JWT", "abc"),
        ("three garbage parts", "a.b.c"),
        ("bad signature", hublib.jwt("wrong-secret", good)),
        ("expired", hublib.jwt(S, dict(good, exp=now - 60))),
        ("no exp", hublib.jwt(S, {"room": "demo", "sub": "alice"})),
        ("exp as string", hublib.jwt(S, dict(good, exp=str(now + 600)))),
        ("other room", hublib.jwt(S, dict(good, room="other"))),
        ("other peer", hublib.jwt(S, dict(good, sub="bob"))),
        ("alg none", hublib.jwt(S, good, header={"alg": "none", "typ": "JWT"}, alg=None)),
        ("alg none, HS256 signature kept", hublib.jwt(S, good, header={"alg": "none", "typ": "JWT"}).rsplit(".", 1)[0]
         + "." + sig),
        ("alg HS384", hublib.jwt(S, good, header={"alg": "HS384", "typ": "JWT"}, alg="sha384")),
        ("payload changed, signature kept", tampered),
        ("signature stripped", h + "." + p + "."),
    ]
    c = await Client.connect(hub, "alice")
    for i, (what, token) in enumerate(bad):
        msg = {"type": "join", "room": "demo", "peer": "alice", "id": i}
        if token is not None:
            msg["token"] = token
        await c.send(msg)
        m = await c.recv(5, f"the answer to a join with {what}")
        require(m.get("type") == "error" and m.get("code") == "unauthorized" and m.get("ref") == i,
                f"join with {what}: got {m!r}, expected error unauthorized ref {i}")
    log(f"tokens: unauthorized for {', '.join(w for w, _ in bad)}")

    # the CLI's token
    r = subprocess.run([BIN, "hub", "token", "--secret", S, "--room", "demo", "--peer", "alice",
                        "--ttl", "600"], capture_output=True, text=True, timeout=10)
    require(r.returncode == 0, f"rtcmesh hub token: exit {r.returncode}: {r.stderr}")
    cli = r.stdout.strip()
    require("\n" not in cli and cli.count(".") == 2, f"rtcmesh hub token printed {r.stdout!r}")
    ch, cp, cs = cli.split(".")
    header, payload = json.loads(hublib.b64url_decode(ch)), json.loads(hublib.b64url_decode(cp))
    require(header.get("alg") == "HS256", f"CLI token header {header}")
    require(payload.get("room") == "demo" and payload.get("sub") == "alice" and
            abs(payload.get("exp", 0) - (now + 600)) <= 5, f"CLI token payload {payload}")
    expect_sig = hublib.b64url(hmac.new(S.encode(), f"{ch}.{cp}".encode(), hashlib.sha256).digest())
    require(cs == expect_sig, "the CLI token's signature is not HMAC-SHA256(secret, header.payload)")
    await c.send({"type": "join", "room": "demo", "peer": "alice", "token": cli, "id": "ok"})
    await c.expect("welcome", peer="alice", ref="ok")
    log("tokens: `rtcmesh hub token` prints an HS256 JWT (checked in python); join with it -> welcome on the "
        "same connection that was refused before")

    b = await joined(hub, "demo", "bob", token=hublib.jwt(S, {"room": "demo", "sub": "bob", "exp": now + 60}))
    await c.expect("peer-joined", peer="bob")
    anyroom = hublib.jwt(S, {"room": "*", "sub": "carol", "exp": now + 60})
    cr = await joined(hub, "elsewhere", "carol", token=anyroom)
    anypeer = hublib.jwt(S, {"room": "demo", "sub": "*", "exp": now + 60})
    dv = await joined(hub, "demo", "dave", token=anypeer)
    for x in (c, b):
        await x.expect("peer-joined", peer="dave")
    e = await Client.connect(hub, "eve")
    await e.send({"type": "join", "room": "other", "peer": "eve", "token": anypeer, "id": 1})
    await e.expect_error("unauthorized", ref=1)
    await e.send({"type": "join", "room": "demo", "peer": "eve", "token": anyroom, "id": 2})
    await e.expect_error("unauthorized", ref=2)
    log("tokens: python-minted token -> welcome; room \"*\" and sub \"*\" wildcards (and only those)")

    # /api/signaling/stats leaves the peer lists out
    st = await asyncio.to_thread(hub.get_json, "/api/signaling/stats")
    rooms = st.get("rooms") or []
    require(rooms and all("peers" not in r for r in rooms), f"stats with --token-secret lists peers: {st}")
    require("alice" not in json.dumps(st), f"stats with --token-secret names a peer: {st}")
    # /api/ice-servers needs a token and uses its sub
    for path, hdrs in (("/api/ice-servers?peer=alice", {}),
                       ("/api/ice-servers?peer=alice", {"Authorization": "Bearer " + hublib.jwt("x", good)}),
                       ("/api/ice-servers?token=" + hublib.jwt(S, dict(good, exp=now - 5)), {})):
        status, _, body = await asyncio.to_thread(hub.get, path, hdrs)
        require(status in (401, 403), f"GET {path} {hdrs}: status {status}, expected 401/403: {body[:200]!r}")
    for path, hdrs in (("/api/ice-servers?peer=mallory", {"Authorization": "Bearer " + valid}),
                       ("/api/ice-servers?token=" + valid, {})):
        j = await asyncio.to_thread(hub.get_json, path, hdrs)
        users = [s.get("username", "") for s in j.get("iceServers", []) if "username" in s]
        require(users and all(u.endswith(":alice") for u in users),
                f"GET {path}: TURN usernames {users}, expected the token's sub (alice)")
    log("tokens: stats without peer lists; /api/ice-servers 401/403 without a valid token, and uses the "
        "token's sub (Bearer or ?token=)")
    before = hub.rejections()
    await e.send({"type": "join", "room": "demo", "peer": "eve", "id": 3})
    await e.expect_error("unauthorized", ref=3)
    await check_rejected(hub, before, "unauthorized", "tokens")

    for x in (c, b, cr, dv, e):
        await x.close()


# =========================================================================== origin


async def case_origin():
    hub = Hub("--allow-origin", "http://good.example", "--allow-origin", "https://app.example")
    before = hub.rejections()
    for origin, want in (("http://evil.example", 403), ("http://good.example.evil.example", 403),
                         ("null", 403), ("http://good.example", 101), ("https://app.example", 101), (None, 101)):
        status, head = await asyncio.to_thread(upgrade_status, hub.port, origin)
        require(status == want, f"--allow-origin: upgrade with Origin {origin}: status {status}, expected {want}: "
                                f"{head[:200]!r}")
    c = await Client.connect(hub, "good", origin="http://good.example")
    await c.join("demo", "good")
    await check_rejected(hub, before, None, "origin")
    log("origin: --allow-origin (twice): evil/look-alike/null origins -> 403; listed origins and no Origin -> 101")

    plain = Hub()
    same = f"http://127.0.0.1:{plain.port}"
    for origin, want in (("http://evil.example", 403), (same, 101), (None, 101)):
        status, head = await asyncio.to_thread(upgrade_status, plain.port, origin)
        require(status == want, f"no --allow-origin: upgrade with Origin {origin}: status {status}, "
                                f"expected {want}: {head[:200]!r}")
    log("origin: without --allow-origin: cross-origin -> 403, same-origin and no Origin -> 101")
    await c.close()


# =========================================================================== limits and hostile input


async def case_malformed():
    hub = Hub()
    by = await Bystanders(hub).start()
    x = await joined(hub, "demo", "mal")
    before = hub.rejections()
    bad_json = ["{not json", "", " ", '{"type":"heartbeat"', '{"type":"heartbeat"} x',
                '{"type":"heartbeat"}{"type":"heartbeat"}', '"string"', "42", "null", "true", "[1,2,3]",
                '[{"type":"heartbeat"}]', "{'type':'heartbeat'}", '{"type":"heartbeat",}', "\ufeff{}",
                "[" * 30000, '{"a":' * 10000]
    for text in bad_json:
        await x.send(text)
        m = await x.recv(5, f"the answer to {text[:30]!r}")
        require(m.get("type") == "error" and m.get("code") == "bad_json", f"frame {text[:40]!r}: got {m!r}, "
                                                                            "expected error bad_json")
    log(f"malformed: bad_json for {len(bad_json)} frames (broken, empty, trailing data, non-object, "
        "30000-deep nesting)")
    await check_rejected(hub, before, "bad_json", "malformed (bad_json)")

    before = hub.rejections()
    deep = '{"type":"relay","to":"nobody","id":1,"data":' + "[" * 20000 + "]" * 20000 + "}"
    await x.send(deep)
    m = await x.recv(5, "the answer to a deeply nested relay")
    require(m.get("type") == "error" and m.get("code") in ("target_offline", "bad_message", "bad_json"),
            f"deeply nested relay: {m!r}")
    bad_message = [
        {"type": "offer", "session": "s1234567", "sdp": SDP},              # no to
        {"type": "offer", "to": 5, "session": "s1234567", "sdp": SDP},     # to not a string
        {"type": "relay", "to": ["by-a"], "data": {}},
        {"type": "announce", "metadata": "x"},                             # not an object
        {"type": "announce", "metadata": {"blob": "m" * 5000}},            # > 4 KiB
        {"type": "join", "room": 5, "peer": "y"},
        {"type": "offer", "to": "by-a", "session": "s1234567", "sdp": SDP, "from": "mal"},
    ]
    for i, msg in enumerate(bad_message):
        await x.send(dict(msg, id=i))
        m = await x.recv(5, f"the answer to {msg}")
        require(m.get("type") == "error" and m.get("code") == "bad_message" and m.get("ref") == i,
                f"{json.dumps(msg)[:80]}: got {m!r}, expected error bad_message ref {i}")
    for i, msg in enumerate([{"type": 5}, {"id": "no-type"}, {"type": None}]):
        await x.send(msg)
        m = await x.recv(5, f"the answer to {msg}")
        require(m.get("type") == "error" and m.get("code") in ("bad_message", "unknown_type"),
                f"{msg}: got {m!r}")
    # huge metadata in a join: refused, and the connection can still join
    y = await Client.connect(hub, "y")
    await y.send({"type": "join", "room": "demo", "peer": "y", "metadata": {"blob": "z" * 5000}, "id": "big"})
    await y.expect_error("bad_message", ref="big")
    await y.join("demo", "y", metadata={"small": 1})
    await x.expect("peer-joined", peer="y")
    await x.send({"type": "heartbeat", "id": "alive"})
    await x.expect("heartbeat-ack", ref="alive")
    await check_rejected(hub, before, "bad_message", "malformed (bad_message)")
    log("malformed: bad_message for missing/mistyped members, metadata over 4 KiB (announce and join), "
        "a client-sent from; the connections stay open")
    await by.check(abusers=("mal", "y"), what="malformed")


async def case_binary_frame():
    hub = Hub()
    by = await Bystanders(hub).start()
    x = await joined(hub, "demo", "bin")
    await by.see("peer-joined", peer="bin")
    before = hub.rejections()
    await x.send(b"\x00\x01\x02binary")
    code, reason, msgs = await x.closed(5)
    require(code == 1003, f"binary frame: closed with {code} {reason!r}, expected 1003")
    require(all(m.get("type") == "error" for m in msgs if isinstance(m, dict)), f"before the close: {msgs}")
    await by.see("peer-left", peer="bin")
    await check_rejected(hub, before, None, "binary frame")
    log(f"binary_frame: closed 1003 ({reason!r})")
    await by.check(abusers=("bin",), what="binary frame")


async def case_oversize_frame():
    hub = Hub("--max-frame", "4096")
    by = await Bystanders(hub).start()
    x = await joined(hub, "demo", "big")
    require(x.welcome.get("limits", {}).get("max_frame") == 4096, f"welcome limits {x.welcome.get('limits')}")
    await x.send({"type": "relay", "to": "by-a", "data": {"blob": "q" * 3900}})
    await by.see("peer-joined", peer="big")
    got = await by.a.recv(5, "the 3.9 KB relay")
    require(got.get("type") == "relay" and len(got["data"]["blob"]) == 3900, f"by-a got {str(got)[:100]}")
    before = hub.rejections()
    await x.send(json.dumps({"type": "relay", "to": "by-a", "data": {"blob": "q" * 5000}}))
    code, reason, _ = await x.closed(5)
    require(code == 1009, f"5 KB frame with --max-frame 4096: closed with {code} {reason!r}, expected 1009")
    await by.see("peer-left", peer="big")
    await check_rejected(hub, before, None, "oversize frame")
    log(f"oversize_frame: a 3.9 KB message passes, a 5 KB one closes 1009 ({reason!r})")

    # fragmented: three 2000-byte fragments of one message
    raw = await asyncio.to_thread(RawWS, hub.port)
    raw.send_frame(1, b'{"type":"heartbeat","pad":"' + b"p" * 1980, fin=False)
    raw.send_frame(0, b"p" * 2000, fin=False)
    raw.send_frame(0, b"p" * 2000 + b'"}', fin=True)
    code, texts, _, how = await asyncio.to_thread(raw.read_until_close, 5)
    require(code == 1009, f"a 6 KB message in 3 fragments: {how} {code}, expected close 1009 (got {texts[:2]})")
    raw.close()
    # a header that declares 2^40 bytes, then nothing: refused at once
    raw = await asyncio.to_thread(RawWS, hub.port)
    raw.sock.sendall(bytes([0x81, 0x80 | 127]) + (1 << 40).to_bytes(8, "big") + os.urandom(4) + b"abc")
    t0 = time.monotonic()
    code, texts, _, how = await asyncio.to_thread(raw.read_until_close, 5)
    require(code == 1009, f"a frame header declaring 2^40 bytes: {how} {code}, expected close 1009")
    raw.close()
    log(f"oversize_frame: fragmented 6 KB message -> 1009; a 2^40-byte header -> 1009 after "
        f"{time.monotonic() - t0:.2f} s")
    await by.check(abusers=("big",), what="oversize frame")


async def case_flood():
    hub = Hub("--max-messages-per-second", "50")
    by = await Bystanders(hub).start()
    x = await joined(hub, "demo", "flood")
    require(x.welcome.get("limits", {}).get("messages_per_second") == 50, f"limits {x.welcome.get('limits')}")
    before = hub.rejections()
    t0 = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - t0 < 8 and x.close_code is None:
            await x.send({"type": "heartbeat", "id": sent})
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0.001)
    except Exception:
        pass  # closed by the hub
    code, reason, msgs = await x.closed(5)
    took = time.monotonic() - t0
    acks = [m for m in msgs if m.get("type") == "heartbeat-ack"]
    limited = [m for m in msgs if m.get("type") == "error" and m.get("code") == "rate_limited"]
    others = [m for m in msgs if m not in acks and m not in limited]
    log(f"flood: {sent} heartbeats in {took:.2f} s -> {len(acks)} acks, {len(limited)} rate_limited, "
        f"then close {code} {reason!r}")
    require(not others, f"flood: unexpected messages {others[:3]}")
    require(90 <= len(acks) <= 100 + 50 * took + 10,
            f"flood: {len(acks)} heartbeats answered in {took:.2f} s; a 50/s bucket with a burst of 100 allows "
            f"{100 + 50 * took:.0f}")
    require(limited, "flood: no rate_limited error")
    require(limited[0].get("ref") is not None, f"rate_limited without ref: {limited[0]}")
    require(code == 1008, f"flood: the flooding connection closed with {code} {reason!r} (expected 1008 "
                          f"after {sent} messages in {took:.1f} s)")
    await check_rejected(hub, before, "rate_limited", "flood")
    # a client at half the rate is never limited
    y = await joined(hub, "demo", "steady")
    for i in range(20):
        await y.send({"type": "heartbeat", "id": i})
        await y.expect("heartbeat-ack", ref=i)
        await asyncio.sleep(0.04)
    log("flood: a client at 25/s is never limited")
    await by.check(abusers=("flood", "steady"), what="flood")


async def case_forged_from():
    hub = Hub()
    by = await Bystanders(hub).start()
    x = await joined(hub, "demo", "forger")
    before = hub.rejections()
    for i, msg in enumerate([
            {"type": "offer", "to": "by-b", "session": "s1234567", "sdp": SDP, "from": "by-a"},
            {"type": "relay", "to": "by-b", "data": {"type": "chat", "text": "I am by-a"}, "from": "by-a"},
            {"type": "broadcast", "data": {}, "from": "by-a"},
            {"type": "announce", "metadata": {}, "from": "by-a"},
            {"type": "candidate", "to": "by-b", "session": "s1234567", "candidate": None, "from": None}]):
        await x.send(dict(msg, id=i))
        await x.expect_error("bad_message", ref=i)
    await check_rejected(hub, before, "bad_message", "forged from")
    log("forged_from: offer/relay/broadcast/announce/candidate carrying from -> bad_message, nothing delivered")
    await by.check(abusers=("forger",), what="forged from")


async def case_forged_target():
    hub = Hub()
    by = await Bystanders(hub).start()
    x = await joined(hub, "demo", "forger")
    other = await joined(hub, "other", "victim")
    before = hub.rejections()
    await x.send({"type": "offer", "to": "victim", "session": "s1234567", "sdp": SDP, "id": 1})
    await x.expect_error("target_offline", ref=1, to="victim")
    await x.send({"type": "relay", "to": "victim", "data": {}, "id": 2})
    await x.expect_error("target_offline", ref=2, to="victim")
    await other.send({"type": "offer", "to": "by-a", "session": "s1234567", "sdp": SDP, "id": 3})
    await other.expect_error("target_offline", ref=3, to="by-a")
    await other.send({"type": "broadcast", "data": {"x": 1}})
    await other.silence(0.3)
    await check_rejected(hub, before, "target_offline", "forged target")
    log("forged_target: offers/relays across rooms -> target_offline; the other room's peer got nothing, "
        "its broadcast stays in its room")
    await by.check(abusers=("forger",), what="forged target")


async def case_room_full():
    hub = Hub("--max-peers-per-room", "2")
    by = await Bystanders(hub).start()
    require(by.a.welcome.get("limits", {}).get("peers_per_room") == 2, f"limits {by.a.welcome.get('limits')}")
    before = hub.rejections()
    x = await Client.connect(hub, "third")
    await x.send({"type": "join", "room": "demo", "peer": "third", "id": "f"})
    await x.expect_error("room_full", ref="f")
    await x.join("other", "third")
    await check_rejected(hub, before, "room_full", "room_full")
    await by.check(what="room_full")
    await by.b.send({"type": "leave"})
    await by.a.expect("peer-left", peer="by-b", reason="left")
    y = await joined(hub, "demo", "fourth")
    require([p["peer"] for p in y.welcome["peers"]] == ["by-a"], f"fourth's welcome {y.welcome}")
    await by.a.expect("peer-joined", peer="fourth")
    log("room_full: a third join -> room_full (the connection then joins another room); after a leave the "
        "room takes a peer again")


async def case_too_many_rooms():
    hub = Hub("--max-rooms", "1")
    by = await Bystanders(hub).start()
    before = hub.rejections()
    x = await Client.connect(hub, "x")
    await x.send({"type": "join", "room": "other", "peer": "x", "id": "r"})
    await x.expect_error("too_many_rooms", ref="r")
    await x.join("demo", "x")
    await check_rejected(hub, before, "too_many_rooms", "too_many_rooms")
    await by.check(abusers=("x",), what="too_many_rooms")
    for c in (x, by.a, by.b):
        await c.send({"type": "leave"})
    await asyncio.sleep(0.2)
    y = await joined(hub, "other", "y")
    log("too_many_rooms: a second room -> too_many_rooms; once the first room is empty another room opens")
    await y.close()


async def case_max_connections():
    hub = Hub("--max-connections", "2")
    by = await Bystanders(hub).start()
    before = hub.rejections()
    status, head = await asyncio.to_thread(upgrade_status, hub.port, None)
    require(status == 503, f"a third connection with --max-connections 2: status {status}: {head[:200]!r}")
    try:
        c = await Client.connect(hub, "third")
        raise TestFailure(f"a third WebSocket opened with --max-connections 2 ({c.ws})")
    except TestFailure as e:
        require("503" in str(e) or "cannot open" in str(e), str(e))
    await by.check(what="max_connections")
    await by.b.close()
    await by.a.expect("peer-left", peer="by-b", reason="closed")
    await check_rejected(hub, before, None, "max_connections")
    c = await joined(hub, "demo", "third")
    await by.a.expect("peer-joined", peer="third")
    log("max_connections: a third upgrade -> 503; after one closes a new one joins")
    await c.close()


async def case_idle_timeout():
    hub = Hub("--peer-timeout", "1000", "--heartbeat-interval", "400")
    by = await Bystanders(hub).start()
    require(by.a.welcome.get("peer_timeout") == 1000 and by.a.welcome.get("heartbeat_interval") == 400,
            f"welcome {by.a.welcome}")
    stop = asyncio.Event()

    async def keepalive(c):
        c.ignore.add("heartbeat-ack")
        while not stop.is_set():
            await c.send({"type": "heartbeat"})
            await asyncio.sleep(0.3)

    tasks = [asyncio.ensure_future(keepalive(c)) for c in (by.a, by.b)]
    before = hub.rejections()

    def idle_joined():
        raw = RawWS(hub.port)
        raw.send_json({"type": "join", "room": "demo", "peer": "idle"})
        w = raw.recv_json()
        require(w.get("type") == "welcome", f"idle join: {w}")
        t0 = time.monotonic()
        code, texts, _, how = raw.read_until_close(6)
        return code, how, time.monotonic() - t0

    def idle_unjoined():
        raw = RawWS(hub.port)
        t0 = time.monotonic()
        code, texts, _, how = raw.read_until_close(6)
        return code, how, time.monotonic() - t0

    (c1, h1, t1), (c2, h2, t2) = await asyncio.gather(asyncio.to_thread(idle_joined),
                                                      asyncio.to_thread(idle_unjoined))
    require(c1 == 4001 and 0.9 <= t1 <= 3.5, f"idle joined connection: {h1} {c1} after {t1:.2f} s, expected "
                                             "close 4001 after ~1 s")
    require(c2 == 4001 and 0.9 <= t2 <= 3.5, f"idle unjoined connection: {h2} {c2} after {t2:.2f} s, expected "
                                             "close 4001 after ~1 s")
    for c in (by.a, by.b):
        await c.expect("peer-joined", peer="idle")
        await c.expect("peer-left", peer="idle", reason="timeout")
    await check_rejected(hub, before, None, "idle timeout")
    log(f"idle_timeout: silent connections closed 4001 after {t1:.2f} s (joined) and {t2:.2f} s (not joined); "
        "others saw peer-left timeout; heartbeating bystanders kept")
    await by.check(what="idle timeout")
    stop.set()
    await asyncio.gather(*tasks)


async def case_slow_consumer():
    hub = Hub("--max-write-queue", "65536")
    by = await Bystanders(hub).start()
    raw = await asyncio.to_thread(RawWS, hub.port, 4096)
    raw.send_json({"type": "join", "room": "demo", "peer": "slow"})
    w = await asyncio.to_thread(raw.recv_json)
    require(w.get("type") == "welcome", f"slow join: {w}")
    for c in (by.a, by.b):
        await c.expect("peer-joined", peer="slow")
    before = hub.rejections()
    blob = "s" * 60000
    t0 = time.monotonic()
    n = 100
    for i in range(n):
        for c in (by.a, by.b):
            await c.send({"type": "relay", "to": "slow", "data": {"i": i, "blob": blob}})
    sent_took = time.monotonic() - t0
    sent_bytes = 2 * n * 60000
    await by.a.expect("peer-left", peer="slow", timeout=10)
    await by.b.expect("peer-left", peer="slow", timeout=10)
    dropped_after = time.monotonic() - t0
    code, texts, total, how = await asyncio.to_thread(raw.read_until_close, 10)
    errors = [json.loads(t) for t in texts if t.startswith(b'{"type":"error"') or b'"error"' in t[:40]]
    require(code == 1008, f"slow consumer: {how} {code} after reading {total} bytes, expected close 1008")
    require(any(e.get("code") == "slow_consumer" for e in errors), f"slow consumer: no slow_consumer error "
                                                                   f"before the close ({errors[:2]})")
    require(total < sent_bytes, f"slow consumer received all {total} bytes: nothing was dropped")
    await check_rejected(hub, before, "slow_consumer", "slow consumer")
    log(f"slow_consumer: {sent_bytes >> 20} MiB of relays sent in {sent_took:.2f} s without blocking the senders; "
        f"the reader was dropped after {dropped_after:.2f} s; it got {total >> 10} KiB, then slow_consumer and "
        f"close 1008")
    await by.check(allow=lambda m: m.get("type") == "error" and m.get("code") == "target_offline"
                   and m.get("to") == "slow", abusers=("slow",), what="slow consumer")
    raw.close()


async def case_garbage_http():
    hub = Hub()
    by = await Bystanders(hub).start()
    before = hub.rejections()
    rng = random.Random(7)
    inputs = [
        ("random bytes", bytes(rng.randrange(256) for _ in range(4096)) + b"\r\n\r\n"),
        ("a TLS ClientHello", bytes.fromhex("16030100a5010000a10303") + os.urandom(160)),
        ("a non-HTTP line", b"HELLO THERE GENERAL\r\n\r\n"),
        ("a bad request line", b"GET\r\nHost: x\r\n\r\n"),
        ("a 64 KiB header", b"GET /signaling HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"),
        ("a bad Content-Length", b"POST /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        ("an upgrade without a key", b"GET /signaling HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        ("an upgrade with version 8", b"GET /signaling HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      b"Sec-WebSocket-Version: 8\r\n\r\n"),
    ]

    def one(what, data):
        s = socket.create_connection((HOST, hub.port), timeout=5)
        t0 = time.monotonic()
        try:
            s.sendall(data)
        except OSError:
            pass
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise TestFailure(f"garbage ({what}): the hub kept the connection open for 5 s "
                              f"(got {got[:80]!r})") from None
        finally:
            s.close()
        if got:
            require(got.startswith(b"HTTP/1.1 4") or got.startswith(b"HTTP/1.0 4"),
                    f"garbage ({what}): answered {got[:80]!r}, expected a 4xx or a close")
        first = got.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
        return f"{what}: {first} in {time.monotonic() - t0:.2f} s"

    # one at a time, so that each must be counted in rtcmesh_hub_rejections_total
    uncounted = []
    for what, data in inputs:
        log("garbage_http: " + await asyncio.to_thread(one, what, data))
        try:
            await check_rejected(hub, before, None, f"garbage ({what})", wait=1.0)
        except TestFailure as e:
            uncounted.append(what)
            log(str(e))
        before = hub.rejections()
    await by.check(what="garbage")
    require(not uncounted, f"garbage: not counted in rtcmesh_hub_rejections_total: {', '.join(uncounted)}")


async def case_unmasked_frame():
    hub = Hub()
    by = await Bystanders(hub).start()
    raw = await asyncio.to_thread(RawWS, hub.port)
    raw.send_json({"type": "join", "room": "demo", "peer": "nomask"})
    w = await asyncio.to_thread(raw.recv_json)
    require(w.get("type") == "welcome", f"join: {w}")
    for c in (by.a, by.b):
        await c.expect("peer-joined", peer="nomask")
    before = hub.rejections()
    raw.send_json({"type": "broadcast", "data": {"unmasked": True}}, mask=False)
    code, texts, _, how = await asyncio.to_thread(raw.read_until_close, 5)
    require(how in ("close", "eof", "reset"), how)
    require(code in (None, 1002), f"unmasked frame: close code {code}, expected 1002 (or no close frame)")
    require(not any(b"unmasked" in t for t in texts), f"the hub echoed the unmasked frame: {texts}")
    for c in (by.a, by.b):
        await c.expect("peer-left", peer="nomask")
    await check_rejected(hub, before, None, "unmasked frame")
    log(f"unmasked_frame: connection ended ({how} {code}), the broadcast inside reached nobody")
    await by.check(what="unmasked frame")
    raw.close()


async def case_half_handshakes():
    hub = Hub()
    by = await Bystanders(hub).start()
    base = await asyncio.to_thread(hub.gauge, "rtcmesh_hub_connections")
    health0 = (await asyncio.to_thread(hub.health)).get("connections")

    def fds():
        return len(os.listdir(f"/proc/{hub.proc.pid}/fd"))

    fd0 = fds()
    peak = []

    def storm():
        socks = []
        for i in range(200):
            s = socket.create_connection((HOST, hub.port), timeout=5)
            req, _ = hublib.upgrade_request(hub.port)
            kind = i % 4
            if kind == 1:
                s.sendall(req[:len(req) // 2])
            elif kind >= 2:
                s.sendall(req)
            if kind == 3 or i % 3 == 0:  # some end with RST
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            socks.append(s)
        time.sleep(0.3)
        peak.append(fds())
        for s in socks:
            s.close()

    t0 = time.monotonic()
    await asyncio.to_thread(storm)
    deadline = time.monotonic() + 5
    while True:
        now = await asyncio.to_thread(hub.gauge, "rtcmesh_hub_connections")
        if now == base:
            break
        require(time.monotonic() < deadline, f"200 dropped handshakes: rtcmesh_hub_connections is {now} 5 s "
                                             f"later, was {base} before")
        await asyncio.sleep(0.1)
    require(peak[0] >= fd0 + 150, f"the hub holds {peak[0]} descriptors with 200 sockets open (was {fd0}): "
                                  "the storm did not reach it")
    while fds() > fd0 + 2:
        require(time.monotonic() < deadline + 2, f"200 dropped handshakes: the hub holds {fds()} descriptors, "
                                                 f"{fd0} before (peak {peak[0]})")
        await asyncio.sleep(0.1)
    h = await asyncio.to_thread(hub.health)
    require(h.get("connections") == health0, f"/api/health connections {h.get('connections')}, was {health0}")
    log(f"half_handshakes: 200 connections dropped mid-handshake; connections back to {base:.0f} and the "
        f"hub's descriptors from {peak[0]} back to {fds()} (was {fd0}) after {time.monotonic() - t0:.2f} s")
    await by.check(what="half handshakes")


# =========================================================================== HTTP


async def case_http():
    hub = Hub("--turn-secret", "s3cret", "--turn-url", "turn:127.0.0.1:3478?transport=udp",
              "--turn-url", "turn:127.0.0.1:3478?transport=tcp", "--stun-url", "stun:127.0.0.1:3478")
    h = await asyncio.to_thread(hub.health)
    require(h.get("version") == "0.1.0" and isinstance(h.get("uptime_seconds"), int) and
            h.get("connections") == 0, f"/api/health {h}")

    a = await joined(hub, "demo", "alice")
    b = await joined(hub, "demo", "bob")
    c = await joined(hub, "demo", "carol")
    d = await joined(hub, "lobby", "dave")
    for p in ("bob", "carol"):
        await a.expect("peer-joined", peer=p)
    st = await asyncio.to_thread(hub.get_json, "/api/signaling/stats")
    require(st.get("totalRooms") == 2 and st.get("totalPeers") == 4, f"stats {st}")
    rooms = {r.get("roomId"): r for r in st.get("rooms", [])}
    require(set(rooms) == {"demo", "lobby"}, f"stats rooms {st.get('rooms')}")
    require(rooms["demo"].get("peerCount") == 3 and sorted(rooms["demo"].get("peers", [])) == ["alice", "bob", "carol"],
            f"stats room demo {rooms['demo']}")
    require(rooms["lobby"].get("peerCount") == 1 and rooms["lobby"].get("peers") == ["dave"], f"lobby {rooms['lobby']}")
    require(isinstance(st.get("rejected"), dict), f"stats rejected {st.get('rejected')!r}")
    await b.expect("peer-joined", peer="carol")
    await a.send({"type": "offer", "to": "bob", "session": "s1234567", "sdp": SDP})
    await b.expect("offer")
    await a.send("{bad json")
    await a.expect_error("bad_json")
    st2 = await asyncio.to_thread(hub.get_json, "/api/signaling/stats")
    require(st2.get("messagesForwarded", 0) >= st.get("messagesForwarded", 0) + 1 and
            st2.get("messagesReceived", 0) >= st.get("messagesReceived", 0) + 1,
            f"stats counters did not move: {st} -> {st2}")
    require(st2["rejected"].get("bad_json", 0) >= 1, f"stats rejected {st2['rejected']}")
    h = await asyncio.to_thread(hub.health)
    require(h.get("connections") == 4, f"/api/health connections {h.get('connections')} with 4 clients")
    log("http: /api/health, /api/signaling/stats (rooms, peers, counters, rejected)")

    # ICE servers: REST credentials per the TURN REST API
    now = time.time()
    j = await asyncio.to_thread(hub.get_json, "/api/ice-servers?peer=alice")
    servers = j.get("iceServers")
    require(isinstance(servers, list) and len(servers) == 2, f"/api/ice-servers {j}")
    stun = [s for s in servers if "username" not in s]
    turn = [s for s in servers if "username" in s]
    require(len(stun) == 1 and stun[0].get("urls") == ["stun:127.0.0.1:3478"], f"stun entry {stun}")
    require(len(turn) == 1 and turn[0].get("urls") == ["turn:127.0.0.1:3478?transport=udp",
                                                       "turn:127.0.0.1:3478?transport=tcp"], f"turn entry {turn}")
    user, cred = turn[0]["username"], turn[0].get("credential")
    expiry, _, peer = user.partition(":")
    require(peer == "alice" and expiry.isdigit() and abs(int(expiry) - (now + 86400)) <= 5,
            f"TURN username {user!r}, expected '<now+86400>:alice'")
    want = base64.b64encode(hmac.new(b"s3cret", user.encode(), hashlib.sha1).digest()).decode()
    require(cred == want, f"TURN credential {cred!r}, expected base64(HMAC-SHA1) {want!r}")
    require(j.get("ttl") == 86400 and j.get("expiresAt") == int(expiry), f"ttl/expiresAt {j}")
    log(f"http: /api/ice-servers: {user} / {cred} = base64(HMAC-SHA1(secret, username)), ttl 86400")

    # 404, the browser client, path traversal
    for path in ("/nope", "/api/nope", "/api/health/x", "/signalingx"):
        status, _, _ = await asyncio.to_thread(hub.get, path)
        require(status == 404, f"GET {path}: {status}, expected 404")
    status, hdrs, body = await asyncio.to_thread(hub.get, "/")
    require(status == 200 and hdrs.get("content-type", "").startswith("text/html") and b"<" in body,
            f"GET /: {status} {hdrs.get('content-type')!r} {body[:80]!r}")
    status, hdrs, body = await asyncio.to_thread(hub.get, "/rtcmesh-client.js")
    require(status == 200 and hdrs.get("content-type", "").split(";")[0] in ("application/javascript",
                                                                             "text/javascript") and body,
            f"GET /rtcmesh-client.js: {status} {hdrs.get('content-type')!r}")
    log("http: 404 for unknown paths; / is HTML and /rtcmesh-client.js JavaScript (embedded copy)")

    tmp = tempfile.mkdtemp(prefix="rtcmesh-hubtest-")
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("<!doctype html><title>webroot-marker</title>")
    with open(os.path.join(tmp, "secret.txt"), "w") as f:
        f.write("TOPSECRET")
    hub2 = await asyncio.to_thread(lambda: Hub("--web-root", www))
    status, hdrs, body = await asyncio.to_thread(hub2.get, "/")
    require(status == 200 and b"webroot-marker" in body, f"--web-root: GET / {status} {body[:80]!r}")
    j2 = await asyncio.to_thread(hub2.get_json, "/api/ice-servers?peer=alice")
    require(j2.get("iceServers") == [], f"no --stun-url/--turn-url: {j2}")
    for srv in (hub, hub2):
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
                     "/x/../../secret.txt", "/../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                     "/..%2f..%2f..%2fetc%2fpasswd", "/%2E%2E/secret.txt", "/..\\secret.txt",
                     "//etc/passwd", "/%00/etc/passwd", "/index.html%00.js"):
            status, _, body = await asyncio.to_thread(srv.get, path)
            require(b"TOPSECRET" not in body and b"root:" not in body,
                    f"path traversal: GET {path} served a file outside the web root")
            require(status in (400, 403, 404), f"path traversal: GET {path}: {status}, expected 400/403/404")
    log("http: --web-root serves its index; 13 traversal paths (.., %2e%2e, %2f, \\, NUL) refused on both hubs; "
        "iceServers [] without STUN/TURN")
    for x in (a, b, c, d):
        await x.close()


async def case_metrics():
    hub = Hub()
    m0 = await asyncio.to_thread(hub.metrics)
    require(m0.get(("rtcmesh_hub_peers", frozenset())) == 0 and m0.get(("rtcmesh_hub_rooms", frozenset())) == 0,
            "peers/rooms gauges not 0 at start")

    def val(m, name, **labels):
        return m.get((name, frozenset(labels.items())), 0)

    ids = ["peer-k2x9q", "peer-m4w7r", "peer-p6v5s"]
    room = "room-q8z1t"
    cs = [await joined(hub, room, i) for i in ids]
    for p in ids[1:]:
        await cs[0].expect("peer-joined", peer=p)
    await cs[0].send({"type": "offer", "to": ids[1], "session": "s1234567", "sdp": SDP})
    await cs[1].expect("peer-joined", peer=ids[2])
    await cs[1].expect("offer")
    await cs[0].send({"type": "zz-unknown-type-91x", "id": 1})
    await cs[0].expect_error("unknown_type")
    await cs[0].send("{bad")
    await cs[0].expect_error("bad_json")
    await asyncio.to_thread(hub.get, "/nonexistent-path-zz91")
    m1 = await asyncio.to_thread(hub.metrics)
    status, _, text = await asyncio.to_thread(hub.get, "/metrics")
    types = {l.split()[2]: l.split()[3] for l in text.decode().splitlines() if l.startswith("# TYPE")}
    for name, typ in (("rtcmesh_hub_connections", "gauge"), ("rtcmesh_hub_rooms", "gauge"),
                      ("rtcmesh_hub_peers", "gauge"), ("rtcmesh_hub_messages_received_total", "counter"),
                      ("rtcmesh_hub_messages_forwarded_total", "counter"),
                      ("rtcmesh_hub_rejections_total", "counter"), ("rtcmesh_hub_http_requests_total", "counter")):
        fam = name[:-6] if name.endswith("_total") else name
        require(types.get(name) == typ or types.get(fam) == typ, f"/metrics: no '# TYPE {name} {typ}' ({types})")
    require(val(m1, "rtcmesh_hub_peers") == 3 and val(m1, "rtcmesh_hub_rooms") == 1 and
            val(m1, "rtcmesh_hub_connections") >= 3, "gauges after 3 joins: peers %s rooms %s connections %s" % (
                val(m1, "rtcmesh_hub_peers"), val(m1, "rtcmesh_hub_rooms"), val(m1, "rtcmesh_hub_connections")))
    for name in ("rtcmesh_hub_messages_received_total", "rtcmesh_hub_messages_forwarded_total"):
        require(val(m1, name, type="offer") == val(m0, name, type="offer") + 1,
                f"{name}{{type=\"offer\"}}: {val(m0, name, type='offer')} -> {val(m1, name, type='offer')}")
    require(val(m1, "rtcmesh_hub_messages_received_total", type="join") >= 3, "received{type=join} < 3")
    require(val(m1, "rtcmesh_hub_rejections_total", reason="bad_json") == 1 and
            val(m1, "rtcmesh_hub_rejections_total", reason="unknown_type") == 1, "rejections bad_json/unknown_type")
    require(val(m1, "rtcmesh_hub_http_requests_total", path="/metrics") >= 2, "http_requests_total{path=/metrics}")
    for (name, labels) in m1:
        for k, v in labels:
            require(v not in ids and v != room, f"/metrics: a peer or room id as a label: {name} {dict(labels)}")
            require("zz91" not in v and "zz-unknown" not in v,
                    f"/metrics: a client-chosen string became a label value (unbounded series): {name} {dict(labels)}")
    log("metrics: every line valid Prometheus text; gauges/counters move with joins, an offer, errors, requests; "
        "no peer/room id or client-chosen path/type as a label")
    await cs[2].close()
    await cs[0].expect("peer-left")
    m2 = await asyncio.to_thread(hub.metrics)
    require(val(m2, "rtcmesh_hub_peers") == 2, f"peers gauge after one closes: {val(m2, 'rtcmesh_hub_peers')}")
    require(val(m2, "rtcmesh_hub_http_requests_total", path="/metrics") >
            val(m1, "rtcmesh_hub_http_requests_total", path="/metrics"), "http_requests_total{/metrics} static")
    for c in cs[:2]:
        await c.close()
    deadline = time.monotonic() + 3
    while True:
        m3 = await asyncio.to_thread(hub.metrics)
        if val(m3, "rtcmesh_hub_peers") == 0 and val(m3, "rtcmesh_hub_rooms") == 0 and \
                val(m3, "rtcmesh_hub_connections") <= 1:
            break
        require(time.monotonic() < deadline, "after every client closed: peers %s rooms %s connections %s" % (
            val(m3, "rtcmesh_hub_peers"), val(m3, "rtcmesh_hub_rooms"), val(m3, "rtcmesh_hub_connections")))
        await asyncio.sleep(0.1)
    log("metrics: peers 3 -> 2 -> 0, rooms 1 -> 0, connections back to 0 after the clients leave")


# =========================================================================== TLS


async def case_tls():
    tmp = tempfile.mkdtemp(prefix="rtcmesh-hubtest-tls-")
    cert, key, ctx = hublib.self_signed_cert(tmp)
    hub = await asyncio.to_thread(lambda: Hub("--cert", cert, "--key", key, tls_context=ctx))
    h = await asyncio.to_thread(hub.health)
    a = await Client.connect(hub, "alice", server_hostname="localhost")
    await a.join("demo", "alice")
    b = await Client.connect(hub, "bob", server_hostname="localhost")
    await b.join("demo", "bob")
    await a.expect("peer-joined", peer="bob")
    await a.send({"type": "offer", "to": "bob", "session": "s1234567", "sdp": SDP})
    await b.expect("offer", **{"from": "alice"})
    log(f"tls: listening line https/wss; GET https://.../api/health {h}; two wss:// peers exchange an offer")

    # an untrusting client, plain HTTP and plain ws on the TLS port: refused, the hub keeps serving
    try:
        await Client.connect(hub, "untrusting", ssl=ssl.create_default_context(), server_hostname="localhost")
        raise TestFailure("a client that does not trust the certificate connected")
    except TestFailure as e:
        require("cannot open" in str(e), str(e))

    def plain():
        s, status, head, _ = http_exchange(hub.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n", 5)
        s.close()
        return status, head

    status, head = await asyncio.to_thread(plain)
    require(status != 200, f"plain HTTP on the TLS port answered 200: {head[:100]!r}")
    await asyncio.to_thread(hub.health)
    await a.send({"type": "heartbeat", "id": 1})
    await a.expect("heartbeat-ack", ref=1)
    log(f"tls: untrusted-certificate client refused, plain HTTP on the TLS port -> {status or 'closed'}; "
        "wss clients unaffected")
    for x in (a, b):
        await x.close()


# =========================================================================== shutdown


async def case_shutdown():
    for sig in (signal.SIGTERM, signal.SIGINT):
        hub = Hub()
        a = await joined(hub, "demo", "alice")
        b = await joined(hub, "demo", "bob")
        await a.expect("peer-joined", peer="bob")
        c = await Client.connect(hub, "unjoined")
        idle = socket.create_connection((HOST, hub.port), timeout=5)  # never sends its request
        t0 = time.monotonic()
        hub.signal(sig)
        for x in (a, b, c):
            code, reason, msgs = await x.closed(5)
            types = [m.get("type") for m in msgs]
            require("server-shutdown" in types and all(t in ("server-shutdown", "peer-left") for t in types),
                    f"{sig.name}: {x.name} received {msgs}, expected server-shutdown")
            require(code == 1001, f"{sig.name}: {x.name} closed with {code} {reason!r}, expected 1001")
        rc = await asyncio.to_thread(hub.wait, 5)
        require(rc == 0, f"{sig.name}: hub exit code {rc} (None: still running 5 s later)")
        idle.close()
        log(f"shutdown: {sig.name} -> server-shutdown and close 1001 to 3 clients, exit 0 after "
            f"{time.monotonic() - t0:.2f} s (one idle TCP connection open)")


async def case_cli():
    wrong = []
    for args in (["--max-frame", "abc"], ["--listen", "nonsense"], ["--listen", "127.0.0.1:99999"],
                 ["--no-such-flag"], ["--cert", "/nonexistent.pem", "--key", "/nonexistent.key"],
                 ["--cert", "/nonexistent.pem"], ["--max-messages-per-second", "-1"], ["--peer-timeout", "x"],
                 ["--max-frame", "0"], ["token", "--room", "demo", "--peer", "alice"],
                 ["token", "--secret", "s", "--room", "bad room", "--peer", "alice"]):
        r = await asyncio.to_thread(lambda: subprocess.run([BIN, "hub", *args], capture_output=True,
                                                           text=True, timeout=10))
        line = f"rtcmesh hub {' '.join(args)}: exit {r.returncode}, stderr {r.stderr.strip()!r}"
        log(line)
        if r.returncode != 2 or not r.stderr.strip() or "listening on" in r.stderr:
            wrong.append(line)
    require(not wrong, "bad arguments must print a message and exit 2:\n  " + "\n  ".join(wrong))
    hub = Hub()
    r = await asyncio.to_thread(lambda: subprocess.run([BIN, "hub", "--listen", f"127.0.0.1:{hub.port}"],
                                                       capture_output=True, text=True, timeout=10))
    require(r.returncode != 0 and "listening on" not in r.stderr, f"a second hub on a port in use: exit "
                                                                   f"{r.returncode} {r.stderr!r}")
    await asyncio.to_thread(hub.health)
    log("cli: bad arguments -> message and exit 2; missing certificate and a port in use -> error exit")


# =========================================================================== coturn


def case_turn_relay():
    port_range = 7  # a port range of its own (20000 + 7 * 1500), clear of the turn.* cases
    S = "hub-turn-secret-1"
    things = []

    def body():
        t0 = time.monotonic()
        coturn = turn.Coturn(port_range, auth="secret", secret=S)
        things.append(coturn)
        url = f"turn:127.0.0.1:{coturn.port}?transport=udp"
        hub = Hub("--turn-secret", S, "--turn-url", url)
        wrong = Hub("--turn-secret", "not-" + S, "--turn-url", url)

        def creds(h, peer):
            j = h.get_json(f"/api/ice-servers?peer={peer}")
            relays = [s for s in j.get("iceServers", []) if "username" in s]
            require(relays and url in relays[0].get("urls", []), f"/api/ice-servers: {j}")
            require(relays[0]["username"].endswith(":" + peer), f"username {relays[0]['username']}")
            return relays[0]["username"], relays[0]["credential"]

        ua, ca = creds(hub, "peer-a")
        ub, cb = creds(hub, "peer-b")
        s = turn.Session(BIN, "hub-issued credentials", turn.turn_args(url, ua, ca), turn.turn_args(url, ub, cb),
                         coturn)
        things.append(s)
        pairs, took = s.expect_connected("relay", "relay")
        turn.check_relay_only_candidates(s, coturn)
        log(f"turn_relay: credentials from the hub ({ua}): selected offerer {pairs[0]}, answerer {pairs[1]}; "
            f"20 lines each way after {took:.2f} s")

        ux, cx = creds(wrong, "peer-x")
        s2 = turn.Session(BIN, "wrong-secret credential", turn.turn_args(url, ux, cx),
                          turn.turn_args(url, *creds(hub, "peer-b")), coturn)
        things.append(s2)
        took = s2.expect_failure(10, offerer=turn.CRED_REJECTED, answerer=turn.REMOTE_EMPTY)
        import re
        s2.check(re.search(rf"user <{re.escape(ux)}>: incoming packet \S+ processed, error 401", coturn.log_text()),
                 f"coturn did not answer 401 to {ux}")
        log(f"turn_relay: a credential from a hub with the wrong secret: coturn 401, both peers exit 1 after "
            f"{took:.1f} s; case took {time.monotonic() - t0:.1f} s")

    turn.run(things, body)


# =========================================================================== main

CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("case_")}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print(f"usage: {sys.argv[0]} RTCMESH_BINARY {{{','.join(CASES)}}}", file=sys.stderr)
        sys.exit(2)
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    name, fn = sys.argv[2], CASES[sys.argv[2]]
    t0 = time.monotonic()
    try:
        if asyncio.iscoroutinefunction(fn):
            async def body():
                try:
                    await asyncio.wait_for(fn(), 50)
                finally:
                    # Killed here, the hubs reset the clients' connections, so the
                    # loop does not sit in websockets' closing handshakes at exit.
                    if sys.exc_info()[0] is None:
                        testlib_hub.kill_hubs()
            asyncio.run(body())
        else:
            fn()
    except BaseException as e:  # every failure prints the hubs' stderr
        if isinstance(e, TestFailure):
            msg = str(e)
        elif isinstance(e, asyncio.TimeoutError):
            msg = "the case did not finish within 50 s"
        else:
            msg = "".join(traceback.format_exception(e))
        testlib_hub.dump_hubs()
        print(f"{name}: FAILED after {time.monotonic() - t0:.1f} s: {msg}", file=sys.stderr)
        testlib_hub.kill_hubs()
        sys.exit(1)
    testlib_hub.kill_hubs()
    print(f"{name}: ok ({time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()
