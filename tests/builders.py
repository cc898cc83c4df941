"""Test helpers: key material and payloads for any profile, and raw-body sealing.

Kept out of the model on purpose: the model has no way to build a packet with a wrong
body, and these helpers build exactly such packets, with the model's own header codec,
AAD and nonce, so that each receiver check can be reached.
"""

from __future__ import annotations

import struct

from spec_model import Mode, Profile, Sender
from spec_model.keying import keymat_len
from harness.engine.craft import seal_custom

SPI = 0x0000_1000


def keymat_for(profile: Profile, seed: int = 1) -> bytes:
    n = keymat_len(profile)
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(n))


def ipv4_packet(body: bytes = b"", proto: int = 17) -> bytes:
    total = 20 + len(body)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, proto, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + body


def ipv6_packet(body: bytes = b"", nh: int = 17) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), nh, 64, bytes(16),
                       bytes(15) + b"\x01") + body


def payload_for(profile: Profile, body: bytes = b"", v6: bool = False) -> tuple[bytes, int | None]:
    """(payload, next header) that suits the profile's mode."""
    if profile.mode is Mode.TUNNEL:
        return (ipv6_packet(body) if v6 else ipv4_packet(body)), None
    return body, 17


def seal_raw_body(sender: Sender, sub_sa: int, body: bytes, next_header: int = 17,
                  crypt_offset: int = 0) -> bytes:
    """The sender's next packet on a sub-SA with an arbitrary body (harness.engine.craft)."""
    return seal_custom(sender, sub_sa, body, next_header=next_header,
                       crypt_offset=crypt_offset)
