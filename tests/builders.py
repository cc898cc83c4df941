"""Test helpers: key material and payloads for any profile, and raw-body sealing.

Kept out of the model on purpose: the model has no way to build a packet with a wrong
body, and these helpers build exactly such packets, with the model's own header codec,
AAD and nonce, so that each receiver check can be reached.
"""

from __future__ import annotations

import struct

from spec_model import Kdf, Mode, Profile, Sender
from spec_model.kdf import ROOT_KEY_LEN
from spec_model.nonce import build_nonce, explicit_iv, iv_value
from spec_model.subsa import seq_for, seq_on_wire, session_id_for, spi_for

SPI = 0x0000_1000


def keymat_for(profile: Profile, seed: int = 1) -> bytes:
    n = ROOT_KEY_LEN[profile.kdf] if profile.kdf is not Kdf.NONE else profile.aead_spec.keymat_len
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
    """Encrypt an arbitrary body (trailer, PIH, padding of the caller's choice) as the
    sender's next packet on a sub-SA, with correct headers, AAD and ICV."""
    p = sender.profile
    counter = sender.counters[sub_sa] + 1
    seq = seq_for(p, sub_sa, counter) if p.replay_protected else None
    iv = iv_value(p, sub_sa, seq, counter)
    cipher, salt, _ = sender.keying.get(sub_sa)
    spi = spi_for(p, sender.base_spi, sub_sa)
    header = sender.codec.header(spi, session_id_for(p, sub_sa), seq_on_wire(p, seq),
                                 explicit_iv(p, iv), crypt_offset, next_header)
    clear = 4 * crypt_offset
    ct, icv = cipher.seal(build_nonce(p, salt, spi, iv), body[clear:],
                          sender.codec.aad(header, seq) + body[:clear])
    sender.counters[sub_sa] = counter
    return header + body[:clear] + ct + icv
