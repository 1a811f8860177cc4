"""A small MQTT 3.1.1 client: enough to drive a broker the way devices do (connect, publish,
subscribe, ping, disconnect, or drop the connection), to log in with a wrong password, and to
send what no client should. The packet codec is pure; ``Client`` is the socket around it."""

from __future__ import annotations

import socket
import struct

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, DISCONNECT = 1, 2, 3, 4, 8, 9, 12, 14


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def connect(client_id: str, *, keepalive: int = 60, clean: bool = True, username: str | None = None,
            password: str | None = None) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _str("MQTT") + bytes([4, flags]) + struct.pack(">H", keepalive) + _str(client_id)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _str(password)
    return packet(CONNECT, 0, body)


def publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 1, retain: bool = False) -> bytes:
    body = _str(topic) + (struct.pack(">H", packet_id) if qos else b"") + payload
    return packet(PUBLISH, (qos << 1) | int(retain), body)


def subscribe(topic: str, *, qos: int = 0, packet_id: int = 1) -> bytes:
    return packet(SUBSCRIBE, 0x2, struct.pack(">H", packet_id) + _str(topic) + bytes([qos]))


def read_packet(data: bytes) -> tuple[int, bytes, int] | None:
    """(kind, body, bytes used) of the first whole packet in ``data``, None when it is not all there."""
    if len(data) < 2:
        return None
    n, mult, i = 0, 1, 1
    while True:
        if i >= len(data):
            return None
        b = data[i]
        n += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    if len(data) < i + n:
        return None
    return data[0] >> 4, data[i: i + n], i + n


class Client:
    """One MQTT connection to ``port`` on loopback."""

    def __init__(self, port: int, client_id: str, *, timeout_s: float = 3.0, **login) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.buf = b""
        self.sock.sendall(connect(client_id, **login))
        kind, body = self.expect()
        self.accepted = kind == CONNACK and len(body) == 2 and body[1] == 0

    def expect(self) -> tuple[int, bytes]:
        while True:
            got = read_packet(self.buf)
            if got is not None:
                kind, body, used = got
                self.buf = self.buf[used:]
                return kind, body
            chunk = self.sock.recv(65536)
            if not chunk:
                return 0, b""
            self.buf += chunk

    def publish(self, topic: str, payload: bytes, qos: int = 0, packet_id: int = 1) -> None:
        self.sock.sendall(publish(topic, payload, qos=qos, packet_id=packet_id))
        if qos:
            self.expect()

    def subscribe(self, topic: str, qos: int = 0) -> None:
        self.sock.sendall(subscribe(topic, qos=qos))
        self.expect()

    def ping(self) -> None:
        self.sock.sendall(packet(PINGREQ, 0, b""))
        self.expect()

    def disconnect(self) -> None:
        """A clean goodbye."""
        try:
            self.sock.sendall(packet(DISCONNECT, 0, b""))
        finally:
            self.sock.close()

    def drop(self) -> None:
        """The connection just goes (a device losing power or network)."""
        self.sock.close()
