#!/usr/bin/python3
"""Capture real aiortc data-channel SDP (offer and answer) for the parser tests
and the sdp_fuzzer seed corpus.

Run it through fuzz/tools/capture.sh, which isolates it in a private network
namespace so nothing leaves the machine.
Usage: capture_aiortc.py <out_dir> [modern_offer.sdp]
With a modern-form offer (e.g. Chromium's), also writes aiortc's answer to it,
which aiortc then produces in the modern UDP/DTLS/SCTP form.
"""
import asyncio
import pathlib
import sys

from aiortc import RTCPeerConnection, RTCSessionDescription


async def main(out_dir: pathlib.Path, modern_offer: pathlib.Path | None) -> None:
    offerer = RTCPeerConnection()
    answerer = RTCPeerConnection()
    offerer.createDataChannel("chat")

    await offerer.setLocalDescription(await offerer.createOffer())
    offer = offerer.localDescription.sdp
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    answer = answerer.localDescription.sdp

    out_dir.mkdir(parents=True, exist_ok=True)
    # newline="" keeps aiortc's own \r\n line endings byte for byte.
    with open(out_dir / "aiortc_offer.sdp", "w", newline="") as f:
        f.write(offer)
    with open(out_dir / "aiortc_answer.sdp", "w", newline="") as f:
        f.write(answer)
    print(offer)
    print(answer)
    await offerer.close()
    await answerer.close()

    if modern_offer is not None:
        pc = RTCPeerConnection()
        await pc.setRemoteDescription(
            RTCSessionDescription(modern_offer.read_text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        with open(out_dir / "aiortc_answer_modern.sdp", "w", newline="") as f:
            f.write(pc.localDescription.sdp)
        print(pc.localDescription.sdp)
        await pc.close()


if __name__ == "__main__":
    asyncio.run(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "."),
                     pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None))
