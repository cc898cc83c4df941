"""What is encrypted: the payload with its trailer, Payload Info Header or nothing.

Theory of operation: each framing wraps the inner packet differently before encryption
(the "body"; a crypt offset leaves the body's first bytes in clear, but the layout is the
same):

==============  =====================================================  ==================
framing         body                                                   padding content
==============  =====================================================  ==================
esp             payload | padding | Pad Length | Next Header           1, 2, 3, ...
eesp-full       PIH (0x0 | R(12) | Next Header | Pad Length) |         zeros
                payload | padding
eesp-optimized  inner IP packet | padding (its own length delimits it)  zeros
psp             payload (next header is in the PSP header)             no padding
==============  =====================================================  ==================

``pack`` builds a body, ``unpack`` checks and splits one; how much padding the alignment
needs is decided by the sender, which knows the header length.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import BadInnerPacket, BadPadding, PadLengthTooLong, ReservedBitsSet, Truncated
from ..profile import Framing

ESP_PAD = bytes(range(1, 256))
ZEROS = bytes(255)
MAX_PAD = 255
NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, NEXT_HEADER_DUMMY = 4, 41, 59


class Inner(NamedTuple):
    payload: bytes
    next_header: int
    pad_len: int


def inner_ip_length(payload: bytes) -> int:
    """Length an IPv4 or IPv6 packet says it has (BadInnerPacket if neither)."""
    if not payload:
        raise BadInnerPacket("empty inner packet", offset=0)
    version = payload[0] >> 4
    if version == 4 and len(payload) >= 4:
        return int.from_bytes(payload[2:4], "big")
    if version == 6 and len(payload) >= 6:
        return 40 + int.from_bytes(payload[4:6], "big")
    raise BadInnerPacket(f"inner packet of version {version} and {len(payload)} bytes is "
                         f"not IPv4 or IPv6", offset=0)


def next_header_of_ip(payload: bytes) -> int:
    version = payload[0] >> 4 if payload else 0
    if version == 4:
        return NEXT_HEADER_IPV4
    if version == 6:
        return NEXT_HEADER_IPV6
    raise BadInnerPacket(f"inner packet of version {version} is not IPv4 or IPv6", offset=0)


class EspTrailer:
    overhead = 2

    @staticmethod
    def pack(payload: bytes, next_header: int, pad_len: int) -> bytes:
        return payload + ESP_PAD[:pad_len] + bytes((pad_len, next_header))

    @staticmethod
    def unpack(body: bytes, next_header: int | None = None) -> Inner:
        n = len(body)
        if n < 2:
            raise Truncated(f"{n} decrypted bytes, the ESP trailer needs 2", offset=n)
        pad_len, nh = body[-2], body[-1]
        end = n - 2 - pad_len
        if end < 0:
            raise PadLengthTooLong(f"pad length {pad_len} with {n - 2} bytes before the "
                                   f"trailer", offset=n - 2)
        if body[end:n - 2] != ESP_PAD[:pad_len]:
            raise BadPadding("padding is not 1, 2, 3, ...", offset=end)
        return Inner(body[:end], nh, pad_len)


class PayloadInfoHeader:
    overhead = 4

    @staticmethod
    def pack(payload: bytes, next_header: int, pad_len: int) -> bytes:
        return bytes((0, 0, next_header, pad_len)) + payload + ZEROS[:pad_len]

    @staticmethod
    def unpack(body: bytes, next_header: int | None = None) -> Inner:
        n = len(body)
        if n < 4:
            raise Truncated(f"{n} bytes, the Payload Info Header needs 4", offset=n)
        if body[0] or body[1]:
            raise ReservedBitsSet(f"Payload Info Header starts {body[:2].hex()}, "
                                  f"expected 0000", offset=0)
        nh, pad_len = body[2], body[3]
        end = n - pad_len
        if end < 4:
            raise PadLengthTooLong(f"pad length {pad_len} with {n - 4} bytes after the "
                                   f"Payload Info Header", offset=3)
        if body[end:] != ZEROS[:pad_len]:
            raise BadPadding("padding is not zeros", offset=end)
        return Inner(body[4:end], nh, pad_len)


class Optimized:
    overhead = 0

    @staticmethod
    def pack(payload: bytes, next_header: int, pad_len: int) -> bytes:
        return payload + ZEROS[:pad_len]

    @staticmethod
    def unpack(body: bytes, next_header: int | None = None) -> Inner:
        length = inner_ip_length(body)
        if length > len(body):
            raise BadInnerPacket(f"inner packet says {length} bytes, {len(body)} decrypted",
                                 offset=0)
        if length < 20:
            raise BadInnerPacket(f"inner packet says {length} bytes, less than an IP header",
                                 offset=0)
        pad_len = len(body) - length
        if pad_len > MAX_PAD:
            raise PadLengthTooLong(f"{pad_len} bytes after the inner packet", offset=length)
        if body[length:] != ZEROS[:pad_len]:
            raise BadPadding("padding is not zeros", offset=length)
        return Inner(body[:length], next_header_of_ip(body), pad_len)


class Unpadded:
    overhead = 0

    @staticmethod
    def pack(payload: bytes, next_header: int, pad_len: int) -> bytes:
        return payload

    @staticmethod
    def unpack(body: bytes, next_header: int | None = None) -> Inner:
        return Inner(body, next_header if next_header is not None else 0, 0)


LAYOUTS = {
    Framing.ESP: EspTrailer,
    Framing.EESP_FULL: PayloadInfoHeader,
    Framing.EESP_OPTIMIZED: Optimized,
    Framing.PSP: Unpadded,
}
