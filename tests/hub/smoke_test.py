"""Smoke test of `rtcmesh hub` over real sockets on 127.0.0.1 (the full protocol
suite is hub_test.py): start the hub on port 0, two clients join a room, an offer
reaches the other with "from", an unknown target gets target_offline, /api/health
answers, SIGTERM ends it with server-shutdown and exit 0.

usage: smoke_test.py PATH/TO/rtcmesh
"""
import asyncio
import json
import os
import signal
import sys
import urllib.request

import websockets

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.hub import Hub, dump_hubs  # noqa: E402


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def scenario(port):
    url = f"ws://127.0.0.1:{port}/signaling"
    async with websockets.connect(url) as alice, websockets.connect(url) as bob:
        await alice.send(json.dumps({"type": "join", "room": "smoke", "peer": "alice", "id": 1}))
        welcome = await recv_json(alice)
        assert welcome["type"] == "welcome" and welcome["peers"] == [] and welcome["ref"] == 1, welcome
        assert welcome["resumed"] is False and len(welcome["resume"]) >= 16, welcome

        await bob.send(json.dumps({"type": "join", "room": "smoke", "peer": "bob",
                                   "metadata": {"name": "Bob"}}))
        welcome = await recv_json(bob)
        assert [p["peer"] for p in welcome["peers"]] == ["alice"], welcome
        joined = await recv_json(alice)
        assert joined == {"type": "peer-joined", "peer": "bob", "metadata": {"name": "Bob"}}, joined

        offer = {"type": "offer", "to": "bob", "session": "k3J9x0ab", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}
        await alice.send(json.dumps(offer))
        got = await recv_json(bob)
        assert got == dict(offer, **{"from": "alice"}), got

        await alice.send(json.dumps({"type": "offer", "to": "carol", "session": "k3J9x0ab",
                                     "sdp": "v=0\r\n", "id": "o2"}))
        err = await recv_json(alice)
        assert err["type"] == "error" and err["code"] == "target_offline", err
        assert err["to"] == "carol" and err["ref"] == "o2", err

        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5).read())
        assert health["status"] == "ok" and health["connections"] == 2, health
    return True


def main():
    hub = Hub(sys.argv[1])
    port = hub.port
    try:
        asyncio.run(scenario(port))

        async def shutdown_seen():
            async with websockets.connect(f"ws://127.0.0.1:{port}/signaling") as ws:
                hub.signal(signal.SIGTERM)
                msg = await recv_json(ws)
                assert msg == {"type": "server-shutdown"}, msg
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                    raise AssertionError("expected the connection to close")
                except websockets.ConnectionClosed as closed:
                    assert closed.code == 1001, closed.code
        asyncio.run(shutdown_seen())
        rc = hub.wait(10)
        assert rc == 0, f"hub exited with {rc}"
    except BaseException:
        hub.kill()
        dump_hubs()
        raise
    print("PASS")


if __name__ == "__main__":
    main()
