#!/usr/bin/env python3
"""ICE with STUN and TURN (UDP, TCP, TLS) against a real coturn on 127.0.0.1.

Usage: turn_test.py RTCMESH_BINARY CASE   (ctest runs one test per case)

Each case starts its own coturn (/usr/bin/turnserver, Debian 12: 4.6.1) on free
ports with a temporary directory, drives two `rtcmesh connect` processes
through pipes (this script carries the offer and answer lines between them),
and kills everything at the end. It records the packets to and from coturn on
`lo` (AF_PACKET) to check what really went on the wire. On failure it prints
both peers' stderr and the coturn log.

Cases:
  relay_udp         relay-only peers, turn:127.0.0.1:PORT (long-term user)
  relay_tcp         relay-only peers, turn:127.0.0.1:PORT?transport=tcp
  relay_tls         relay-only peers, turns:127.0.0.1:TLSPORT?transport=tcp: real TLS
                    on the wire, and an untrusted or wrongly named certificate fails
  rest_credentials  TURN REST credentials (--use-auth-secret): a fresh one works;
                    an expired one and a wrong one fail with exit 1, quickly
  stun_srflx        peers with a stun: server (not relay-only) connect; on plain
                    loopback the mapped address equals the host candidate, so libnice
                    drops the srflx candidate as redundant (RFC 8445 section 5.1.3)
  stun_srflx_nat    the same behind a NAT made with nftables on loopback (the offerer
                    on 127.77.0.2, seen as 127.77.0.3): a distinct srflx is gathered and,
                    with the direct path blocked, the pair host <-> srflx is selected.
                    Needs /usr/sbin/nft (Debian package nftables): exit 77 (skip) without

Runs inside scripts/netns.sh (only loopback; root there gives CAP_NET_RAW for the
capture and CAP_NET_ADMIN for nft). Python standard library only. A missing
coturn fails the test.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rtcmesh_testlib.failures import Skip, TestFailure, require  # noqa: E402
from rtcmesh_testlib.process import HOST  # noqa: E402
from rtcmesh_testlib.turn import (CRED_REJECTED, REMOTE_EMPTY, Capture, Coturn, Session,  # noqa: E402
                                  candidates, check_relay_only_candidates, parallel,
                                  rest_credentials, run, turn_args)

BIN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else ""
STUN_COOKIE = b"\x21\x12\xa4\x42"
CASE_INDEX = 0  # set in main: the case's own range of ports (rtcmesh_testlib.turn.free_port_block)


# --------------------------------------------------------------------------- STUN on the wire


def parse_stun(payload):
    """(type, transaction id, attributes, has_cookie) of one STUN message, or None."""
    if len(payload) < 20 or payload[0] & 0xC0:
        return None
    length = int.from_bytes(payload[2:4], "big")
    if 20 + length != len(payload) or length % 4:
        return None
    attrs, i = {}, 20
    while i + 4 <= len(payload):
        atype = int.from_bytes(payload[i:i + 2], "big")
        alen = int.from_bytes(payload[i + 2:i + 4], "big")
        attrs.setdefault(atype, payload[i + 4:i + 4 + alen])
        i += 4 + ((alen + 3) & ~3)
    return int.from_bytes(payload[0:2], "big"), payload[8:20], attrs, payload[4:8] == STUN_COOKIE


def mapped_address(attrs):
    """(ip, port) of XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS (RFC 3489 style)."""
    if 0x0020 in attrs:
        v = attrs[0x0020]
        ip = bytes(a ^ b for a, b in zip(v[4:8], STUN_COOKIE))
        return socket.inet_ntoa(ip), int.from_bytes(v[2:4], "big") ^ 0x2112
    if 0x0001 in attrs:
        v = attrs[0x0001]
        return socket.inet_ntoa(v[4:8]), int.from_bytes(v[2:4], "big")
    return None


def udp_to(packets, port):
    return [p for p in packets if p[0] == "udp" and p[4] == port]


def tcp_streams_to(packets, port):
    """Client -> server bytes of each TCP connection to `port`, by client port."""
    streams = {}
    for proto, _src, sport, _dst, dport, payload in packets:
        if proto == "tcp" and dport == port and payload:
            streams[sport] = streams.get(sport, b"") + payload
    return streams


def answered_bindings(packets, port):
    """(src, sport, has_cookie, mapped) of each STUN Binding to `port` that got a success response."""
    requests, out = {}, []
    for proto, src, sport, _dst, dport, payload in packets:
        m = parse_stun(payload) if proto == "udp" else None
        if m and m[0] == 0x0001 and dport == port:
            requests[m[1]] = (src, sport, m[3])
        elif m and m[0] == 0x0101 and sport == port and m[1] in requests:
            out.append((*requests[m[1]], mapped_address(m[2])))
    return out


# --------------------------------------------------------------------------- cases


def relay_case(transport):
    t0 = time.monotonic()
    things = []

    def body():
        coturn = Coturn(CASE_INDEX, auth="user", tls=transport == "tls")
        things.append(coturn)
        cap = Capture([coturn.port, coturn.tls_port])
        things.append(cap)
        url = {"udp": f"turn:{HOST}:{coturn.port}",
               "tcp": f"turn:{HOST}:{coturn.port}?transport=tcp",
               "tls": f"turns:{HOST}:{coturn.tls_port}?transport=tcp"}[transport]
        # The TLS tunnel verifies coturn's self-signed certificate: trust it.
        env = {"SSL_CERT_FILE": coturn.cert} if transport == "tls" else {}
        s = Session(BIN, f"relay_{transport}", turn_args(url, *coturn.user), turn_args(url, *coturn.user),
                    coturn, env=env)
        things.append(s)
        pairs, took = s.expect_connected("relay", "relay")
        check_relay_only_candidates(s, coturn)
        packets = cap.snapshot()
        allocs_udp = [p for p in udp_to(packets, coturn.port) if (parse_stun(p[5]) or (0,))[0] == 0x0003]
        data_udp = [p for p in udp_to(packets, coturn.port) if p[5] and 0x40 <= p[5][0] <= 0x4F]
        streams = tcp_streams_to(packets, coturn.tls_port if transport == "tls" else coturn.port)
        if transport == "udp":
            s.check(allocs_udp and not streams, "expected TURN Allocate over UDP only")
            s.check(data_udp, "no ChannelData to coturn: the data did not go through the relay")
            wire = f"{len(allocs_udp)} Allocate and {len(data_udp)} ChannelData datagrams to coturn"
        elif transport == "tcp":
            s.check(streams and not allocs_udp, "expected TURN over TCP only")
            s.check(all(b[0:2] == b"\x00\x03" and b[4:8] == STUN_COOKIE for b in streams.values()),
                    "each TCP connection to coturn starts with a plaintext Allocate")
            wire = f"{len(streams)} TCP connections to coturn, each starting with an Allocate"
        else:
            s.check(streams and not allocs_udp, "expected TURN over TLS only")
            for port, data in streams.items():
                # 0x16 0x03: a TLS handshake record (ClientHello). libnice alone
                # would send a plaintext Allocate (0x00 0x03) here.
                s.check(data[0:2] == b"\x16\x03", f"connection from port {port} starts with "
                                                  f"{data[:8].hex()}, not a TLS ClientHello")
                s.check(STUN_COOKIE not in data, f"plaintext STUN seen on the TLS connection from {port}")
            wire = f"{len(streams)} TLS connections to coturn (ClientHello first, no plaintext STUN)"
        print(f"relay_{transport}: offer {[c['line'] for c in candidates(s.offer)]}")
        print(f"relay_{transport}: selected offerer {pairs[0]}, answerer {pairs[1]}")
        print(f"relay_{transport}: connected and 20 lines each way after {took:.2f} s; {wire}")

        if transport == "tls":
            tls_failures(coturn, things)
        print(f"relay_{transport}: case took {time.monotonic() - t0:.1f} s")

    run(things, body)


def tls_failures(coturn, things):
    """turns: must check the server: an untrusted certificate, and a trusted one
    that names another address, both fail the relay-only connection."""
    other = Coturn(CASE_INDEX, auth="user", tls=True, cert_ip="127.0.0.2")
    things.append(other)
    cases = [
        ("untrusted certificate", coturn, {}, r"certificate rejected: self.signed certificate"),
        ("certificate for 127.0.0.2", other, {"SSL_CERT_FILE": other.cert},
         r"certificate rejected: IP address mismatch"),
    ]
    sessions = []
    for what, server, env, _ in cases:  # in parallel: each takes libnice's TCP timeout
        url = f"turns:{HOST}:{server.tls_port}?transport=tcp"
        s = Session(BIN, f"relay_tls ({what})", turn_args(url, *server.user), turn_args(url, *server.user),
                    server, env=env)
        things.append(s)
        sessions.append(s)
    results = parallel([lambda s=s, p=pattern: s.expect_failure(15, offerer=p + r"[\s\S]*" + CRED_REJECTED,
                                                                answerer=p)
                        for s, (_, _, _, pattern) in zip(sessions, cases)])
    for s, (what, _, _, _), took in zip(sessions, cases, results):
        print(f"relay_tls: {what}: both peers exit 1 after {took:.1f} s: "
              f"{s.o.wait_err('certificate rejected').string.split('ice: ')[-1]}")


def test_relay_udp():
    relay_case("udp")


def test_relay_tcp():
    relay_case("tcp")


def test_relay_tls():
    relay_case("tls")


def test_rest_credentials():
    t0 = time.monotonic()
    things = []

    def body():
        coturn = Coturn(CASE_INDEX, auth="secret")
        things.append(coturn)
        url = f"turn:{HOST}:{coturn.port}"
        # The form a hub hands out: "<expiry>:<opaque id>" and the HMAC.
        fresh_a = rest_credentials(coturn.secret, "peer-a", 3600)
        fresh_b = rest_credentials(coturn.secret, "peer-b", 3600)
        s = Session(BIN, "fresh REST credentials", turn_args(url, *fresh_a), turn_args(url, *fresh_b), coturn)
        things.append(s)
        pairs, took = s.expect_connected("relay", "relay")
        check_relay_only_candidates(s, coturn)
        print(f"rest_credentials: fresh ({fresh_a[0]}): relay <-> relay {pairs[0]}, open after {took:.2f} s")

        bad = {
            "expired": rest_credentials(coturn.secret, "peer-x", -60),
            "wrong secret": rest_credentials("not-the-secret", "peer-y", 3600),
        }
        sessions = {}
        for what, creds in bad.items():  # the offerer has the bad credential
            good = rest_credentials(coturn.secret, "peer-b", 3600)
            sessions[what] = Session(BIN, f"{what} REST credential", turn_args(url, *creds), turn_args(url, *good),
                                     coturn)
            things.append(sessions[what])
        took = dict(zip(sessions, parallel([
            lambda s=s: s.expect_failure(10, offerer=CRED_REJECTED, answerer=REMOTE_EMPTY)
            for s in sessions.values()])))
        for what, s in sessions.items():
            user = bad[what][0]
            s.check(re.search(rf"user <{re.escape(user)}>: incoming packet \S+ processed, error 401",
                              coturn.log_text()), f"coturn did not answer 401 to {user}")
            print(f"rest_credentials: {what} ({user}): coturn 401, "
                  f"both peers exit 1 after {took[what]:.1f} s")
        print(f"rest_credentials: case took {time.monotonic() - t0:.1f} s")

    run(things, body)


def test_stun_srflx():
    t0 = time.monotonic()
    things = []

    def body():
        coturn = Coturn(CASE_INDEX, auth="user")
        things.append(coturn)
        cap = Capture([coturn.port])
        things.append(cap)
        args = ["--ice-server", f"stun:{HOST}:{coturn.port}"]
        s = Session(BIN, "stun_srflx", args, args, coturn)
        things.append(s)
        pairs, took = s.expect_connected("host", "host")
        packets = cap.snapshot()
        bindings = answered_bindings(packets, coturn.port)
        for desc, who in ((s.offer, "offerer"), (s.answer, "answerer")):
            cands = candidates(desc)
            hosts = [(c["address"], c["port"]) for c in cands if c["type"] == "host"]
            s.check(hosts, f"the {who} has no host candidate")
            # The Binding exchange happened, from the host candidate's socket...
            mine = [b for b in bindings if b[:2] in hosts]
            s.check(mine, f"no answered STUN Binding from the {who}'s host candidate {hosts}")
            # ...coturn saw it come from exactly that address (no NAT on lo)...
            for src, sport, cookie, mapped in mine:
                s.check(mapped == (src, sport), f"coturn mapped {src}:{sport} to {mapped}")
            # ...so the server-reflexive candidate equals its base, and libnice
            # drops it as redundant (RFC 8445 section 5.1.3): no srflx in the SDP.
            srflx = [c["line"] for c in cands if c["type"] == "srflx"]
            s.check(not srflx, f"the {who} announced srflx on loopback: {srflx}")
            classic = sum(1 for b in mine if not b[2])
            print(f"stun_srflx: {who}: {len(mine)} answered Bindings from its host candidate "
                  f"{mine[0][0]}:{mine[0][1]} ({classic} RFC 3489 style without magic cookie, "
                  f"{len(mine) - classic} RFC 5389), mapped address = host candidate -> no srflx announced")
        print(f"stun_srflx: selected offerer {pairs[0]}, answerer {pairs[1]}; open after {took:.2f} s")
        print(f"stun_srflx: case took {time.monotonic() - t0:.1f} s")

    run(things, body)


SKIPPED = 77  # ctest SKIP_RETURN_CODE
NFT = shutil.which("nft") or "/usr/sbin/nft"
NAT_INSIDE, NAT_OUTSIDE = "127.77.0.2", "127.77.0.3"


def nat_rules(table):
    """A full-cone NAT for one host on loopback: UDP from NAT_INSIDE leaves as
    NAT_OUTSIDE (same port when free); UDP to NAT_OUTSIDE is sent on to
    NAT_INSIDE; direct UDP to NAT_INSIDE is dropped unless it is the NAT's doing
    (a translated packet or a reply), so a peer can reach the inside host only
    through its server-reflexive address. Only these two addresses are touched,
    so tests running in parallel on 127.0.0.1 are not affected."""
    return f"""
table ip {table} {{
  chain out_nat {{
    type nat hook output priority -100;
    ip daddr {NAT_OUTSIDE} meta l4proto udp dnat to {NAT_INSIDE};
  }}
  chain post_nat {{
    type nat hook postrouting priority 100;
    ip saddr {NAT_INSIDE} meta l4proto udp snat to {NAT_OUTSIDE};
  }}
  chain out_filter {{
    type filter hook output priority 0;
    ip daddr {NAT_INSIDE} ct direction reply accept;
    ip daddr {NAT_INSIDE} ct status dnat accept;
    ip daddr {NAT_INSIDE} meta l4proto udp drop;
  }}
}}
"""


def test_stun_srflx_nat():
    t0 = time.monotonic()
    if not os.path.exists(NFT):
        raise Skip(f"{NFT} missing (Debian package nftables): the NAT case needs it")
    table = f"rtcmesh_turn_test_{os.getpid()}"
    things = []

    def body():
        r = subprocess.run([NFT, "-f", "-"], input=nat_rules(table), capture_output=True, text=True,
                           timeout=10)
        require(r.returncode == 0, f"nft failed: {r.stderr}")
        coturn = Coturn(CASE_INDEX, auth="user")
        things.append(coturn)
        cap = Capture([coturn.port])
        things.append(cap)
        stun = ["--ice-server", f"stun:{HOST}:{coturn.port}"]
        # The offerer gathers on NAT_INSIDE only (no --loopback), the answerer on 127.0.0.1.
        s = Session(BIN, "stun_srflx_nat", stun + ["--bind", NAT_INSIDE], stun, coturn, offer_loopback=False)
        things.append(s)
        pairs, took = s.expect_connected("srflx", "host", answerer=("host", "srflx"))
        cands = candidates(s.offer)
        hosts = [c for c in cands if c["type"] == "host"]
        srflx = [c for c in cands if c["type"] == "srflx"]
        s.check(len(hosts) == 1 and hosts[0]["address"] == NAT_INSIDE, f"offer host candidates {hosts}")
        s.check(len(srflx) == 1, f"expected one srflx candidate in the offer: {[c['line'] for c in cands]}")
        c = srflx[0]
        s.check(c["address"] == NAT_OUTSIDE and c.get("raddr") == NAT_INSIDE and
                c.get("rport") == str(hosts[0]["port"]),
                f"srflx must be {NAT_OUTSIDE} with raddr/rport = its host base: {c['line']}")
        mapped = [b[3] for b in answered_bindings(cap.snapshot(), coturn.port) if b[0] == NAT_OUTSIDE]
        s.check((NAT_OUTSIDE, c["port"]) in mapped, f"coturn never mapped the offerer to {c['address']}:"
                                                    f"{c['port']} (mapped: {mapped})")
        # The answerer reached the offerer through its server-reflexive address.
        s.check(pairs[1][3] == "srflx" and (pairs[1][4], int(pairs[1][5])) == (NAT_OUTSIDE, c["port"]),
                f"the answerer's remote candidate is {pairs[1][3:]}, "
                f"expected srflx {NAT_OUTSIDE}:{c['port']}")
        print(f"stun_srflx_nat: offer {[c['line'] for c in cands]}")
        print(f"stun_srflx_nat: selected offerer {pairs[0]}, answerer {pairs[1]}; open after {took:.2f} s")
        print(f"stun_srflx_nat: case took {time.monotonic() - t0:.1f} s")

    try:
        run(things, body)
    finally:
        subprocess.run([NFT, "delete", "table", "ip", table], capture_output=True, timeout=10)


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print(f"usage: {sys.argv[0]} RTCMESH_BINARY {{{','.join(CASES)}}}", file=sys.stderr)
        sys.exit(2)
    CASE_INDEX = list(CASES).index(sys.argv[2])
    try:
        CASES[sys.argv[2]]()
    except Skip as e:
        print(f"{sys.argv[2]}: SKIPPED: {e}")
        sys.exit(SKIPPED)
    except TestFailure as e:
        print(f"{sys.argv[2]}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{sys.argv[2]}: ok")
