#!/usr/bin/python3
"""Writes the hand-made dcep_fuzzer seeds into fuzz/corpus/dcep/ (RFC 8832).

Usage: make_dcep_seeds.py [out_dir]
Valid DATA_CHANNEL_OPENs for all six channel types, an ACK, and a few malformed
messages (truncated header, label length past the end, trailing bytes, unknown
types) so the fuzzer starts next to every error path.
"""
import pathlib
import struct
import sys


def open_msg(channel_type, priority, reliability, label, protocol):
    # RFC 8832 section 5.1, network byte order.
    return struct.pack(">BBHIHH", 0x03, channel_type, priority, reliability,
                       len(label), len(protocol)) + label + protocol


SEEDS = {
    "open_reliable": open_msg(0x00, 256, 0, b"chat", b""),
    "open_reliable_unordered": open_msg(0x80, 256, 0, b"chat", b"json"),
    "open_rexmit": open_msg(0x01, 512, 3, b"game-state", b""),
    "open_rexmit_unordered": open_msg(0x81, 128, 0, b"input", b"proto/v1"),
    "open_timed": open_msg(0x02, 256, 1500, b"telemetry", b""),
    "open_timed_unordered": open_msg(0x82, 1024, 100, "caf\u00e9 \u2603".encode(), b"x"),
    "open_empty_label": open_msg(0x00, 0, 0, b"", b""),
    "ack": bytes([0x02]),
    "ack_trailing": bytes([0x02, 0x00, 0x01]),
    "bad_truncated_header": open_msg(0x00, 256, 0, b"chat", b"")[:11],
    "bad_label_past_end": open_msg(0x00, 256, 0, b"chat", b"")[:-1],
    "bad_trailing_bytes": open_msg(0x00, 256, 0, b"chat", b"") + b"\x00",
    "bad_overlong_lengths": struct.pack(">BBHIHH", 0x03, 0x00, 256, 0, 0xFFFF, 0xFFFF) + b"ab",
    "bad_channel_type": open_msg(0x03, 256, 0, b"chat", b""),
    "bad_message_type": bytes([0x04, 0x00]),
}


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                       pathlib.Path(__file__).resolve().parent.parent / "corpus" / "dcep")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (out / (name + ".bin")).write_bytes(data)


if __name__ == "__main__":
    main()
