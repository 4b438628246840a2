#!/usr/bin/python3
"""Capture real aiortc data-channel SDP (offer and answer) for the parser tests
and the sdp_fuzzer seed corpus.

Run it through fuzz/tools/capture.sh, which isolates it in a private network
namespace so nothing leaves the machine. Usage: capture_aiortc.py <out_dir>
"""
import asyncio
import pathlib
import sys

from aiortc import RTCPeerConnection


async def main(out_dir: pathlib.Path) -> None:
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


if __name__ == "__main__":
    asyncio.run(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
