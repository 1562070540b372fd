#!/usr/bin/env python3
"""Encodes AWS event-stream messages, independently of the gateway's Swift code, and checks each
with botocore's own decoder before writing it out (so the frames are what an AWS SDK accepts).

Input (stdin): a JSON list of messages, each {"headers": [[name, type, value], ...], "payload": base64}
with type one of bool, byte, short, integer, long, bytes (base64), string, timestamp, uuid (hex).
Output (stdout): the messages' bytes, one after another, in base64.
"""
import base64
import json
import struct
import sys
import uuid
import zlib

from botocore.eventstream import EventStreamBuffer


def encode_header(name, kind, value):
    out = bytes([len(name.encode())]) + name.encode()
    if kind == "bool":
        return out + bytes([0 if value else 1])
    if kind == "byte":
        return out + bytes([2]) + struct.pack(">b", value)
    if kind == "short":
        return out + bytes([3]) + struct.pack(">h", value)
    if kind == "integer":
        return out + bytes([4]) + struct.pack(">i", value)
    if kind == "long":
        return out + bytes([5]) + struct.pack(">q", value)
    if kind == "bytes":
        data = base64.b64decode(value)
        return out + bytes([6]) + struct.pack(">H", len(data)) + data
    if kind == "string":
        data = value.encode()
        return out + bytes([7]) + struct.pack(">H", len(data)) + data
    if kind == "timestamp":
        return out + bytes([8]) + struct.pack(">q", value)
    if kind == "uuid":
        return out + bytes([9]) + uuid.UUID(hex=value).bytes
    raise ValueError(kind)


def encode(message):
    headers = b"".join(encode_header(*header) for header in message["headers"])
    payload = base64.b64decode(message["payload"])
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def main():
    frames = [encode(message) for message in json.load(sys.stdin)]
    check = EventStreamBuffer()
    check.add_data(b"".join(frames))
    decoded = list(check)
    assert len(decoded) == len(frames), f"botocore read {len(decoded)} of {len(frames)} messages"
    sys.stdout.write(base64.b64encode(b"".join(frames)).decode())


if __name__ == "__main__":
    main()
