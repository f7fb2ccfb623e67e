#!/usr/bin/env python3
"""A minimal swift-net RPC client written from docs/PROTOCOL.md alone (socket + struct).

Usage: rpc_client.py HOST PORT
Makes an echo call (method 2, raw codec), an unknown-method call and a cancelled call
(method 3 holds until the test releases it or the call is cancelled, wire codec), and exits 0 if every answer is
what the protocol says.
"""
import socket
import struct
import sys

VERSION = 1
REQUEST, RESPONSE, ERROR, CANCEL, ONE_WAY, PING, PONG, GO_AWAY, HELLO = range(1, 10)


def send_frame(sock, frame):
    sock.sendall(struct.pack(">I", len(frame)) + frame)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def recv_frame(sock):
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    frame = recv_exact(sock, length)
    version, kind, flags, call_id = struct.unpack(">BBHQ", frame[:12])
    assert version == VERSION, f"version {version}"
    return kind, call_id, frame[12:]


def header(kind, call_id, flags=0):
    return struct.pack(">BBHQ", VERSION, kind, flags, call_id)


def request(call_id, method_id, payload):
    return header(REQUEST, call_id) + struct.pack(">I", method_id) + payload


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def next_non_hello(sock):
    while True:
        kind, call_id, body = recv_frame(sock)
        if kind not in (HELLO, PING, PONG):
            return kind, call_id, body


def status(body):
    code, n = struct.unpack(">HH", body[:4])
    return code, body[4:4 + n].decode()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port), timeout=20)
    send_frame(sock, header(HELLO, 0) + b"SNRP" + struct.pack(">BBII", 1, 1, 16, 4096))

    # 1. echo
    send_frame(sock, request(1, 2, b"hello from python"))
    kind, call_id, body = next_non_hello(sock)
    assert (kind, call_id, body) == (RESPONSE, 1, b"hello from python"), (kind, call_id, body)
    print("echo ok")

    # 2. unknown method
    send_frame(sock, request(2, 99, b""))
    kind, call_id, body = next_non_hello(sock)
    code, message = status(body)
    assert (kind, call_id, code) == (ERROR, 2, 12), (kind, call_id, code, message)
    print("unknown method ok:", message)

    # 3. cancel a call that holds until released (method 3, key 10000)
    send_frame(sock, request(3, 3, varint(zigzag(10_000))))
    send_frame(sock, header(CANCEL, 3))
    kind, call_id, body = next_non_hello(sock)
    code, message = status(body)
    assert (kind, call_id, code) == (ERROR, 3, 1), (kind, call_id, code, message)
    print("cancel ok:", message)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
