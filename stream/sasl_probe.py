"""Why a reachable broker would not let the client in: ask it which SASL mechanisms it takes.

kafka-python logs ``UnsupportedSaslMechanismError`` and then gives up with "Unable to
bootstrap", which reads as "no broker here" to whoever sees it. When a broker answers on TCP
but the client cannot bootstrap with SASL configured, one ``SaslHandshake`` (v1) request tells
the two apart: the mechanism is not offered (and which are), or it is offered and the failure
is the credentials. The request and response codecs are pure; ``offered_mechanisms`` is the I/O.
"""

from __future__ import annotations

import socket
import ssl
import struct

SASL_HANDSHAKE, VERSION = 17, 1
_CLIENT = b"rlog-probe"


def handshake_request(mechanism: str, correlation_id: int = 1) -> bytes:
    """A framed SaslHandshake v1 request (request header v1: no tagged fields)."""
    mech = mechanism.encode()
    body = (struct.pack(">hhih", SASL_HANDSHAKE, VERSION, correlation_id, len(_CLIENT)) + _CLIENT
            + struct.pack(">h", len(mech)) + mech)
    return struct.pack(">i", len(body)) + body


def handshake_response(frame: bytes) -> tuple[int, list[str]]:
    """(error code, mechanisms the broker enables) from a response frame without its length prefix."""
    if len(frame) < 10:
        raise ValueError("short SaslHandshake response")
    _, error, n = struct.unpack_from(">ihi", frame, 0)
    pos, out = 10, []
    for _ in range(max(0, min(n, 64))):
        (size,) = struct.unpack_from(">h", frame, pos)
        out.append(frame[pos + 2: pos + 2 + size].decode("utf-8", "replace"))
        pos += 2 + size
    return error, out


def offered_mechanisms(host: str, port: int, mechanism: str, *, tls: ssl.SSLContext | None = None,
                       timeout_s: float = 5.0) -> tuple[int, list[str]]:
    """Ask the broker at ``host:port``; raises OSError / ValueError when it does not answer the request."""
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        sock.sendall(handshake_request(mechanism))
        head = _read(sock, 4)
        (size,) = struct.unpack(">i", head)
        if not 0 < size < 1 << 20:
            raise ValueError(f"implausible response size {size}")
        return handshake_response(_read(sock, size))


def _read(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ValueError("the broker closed the connection")
        buf += chunk
    return buf
