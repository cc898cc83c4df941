"""PSP framing (PSP Architecture Specification, as in google/psp): header, AAD, decoding.

Theory of operation: a PSP packet (the UDP payload, port 1000) is

    Next Header(8) | Hdr Ext Len(8) | R(2) Crypt Off(6) | S D Version(4) V 1 |
    SPI(32) | IV(64) | crypt-offset bytes in clear | ciphertext | ICV(16)

Hdr Ext Len counts 8-octet units after the first 8 (1 without a virtualization cookie).
The version names the AEAD (0 AES-GCM-128, 1 AES-GCM-256). The nonce is SPI || IV and the
AAD is the 16-byte header plus the clear bytes. There is no padding and no trailer.
Virtualization cookies are not modelled: V = 1 is refused. Key derivation is ``kdf.py``'s.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import (BadFixedBit, BadOption, BadVersion, CryptOffsetAboveMaximum,
                      CryptOffsetBeyondPayload, ReservedBitsSet, Truncated)
from ..profile import PSP_AEADS, Profile

_HDR = struct.Struct("!BBBBIQ")
_HDR8 = struct.Struct("!BBBBI")
HEADER_LEN = 16


@dataclass(frozen=True)
class PspPacket:
    next_header: int
    crypt_offset: int
    spi: int
    iv: bytes
    exposed: bytes
    ciphertext: bytes
    icv: bytes
    sample: bool = False
    drop: bool = False
    session_id: int = 0

    @property
    def seq(self) -> None:
        return None


class PspCodec:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.version = PSP_AEADS[profile.aead]
        self.icv_len = profile.aead_spec.icv_len
        self.max_co = profile.max_crypt_offset

    def _b3(self, sample: bool, drop: bool) -> int:
        return (sample << 7) | (drop << 6) | (self.version << 2) | 1

    def header(self, spi: int, session_id: int, seq: int | None, iv: bytes, crypt_offset: int,
               next_header: int) -> bytes:
        return _HDR8.pack(next_header, 1, crypt_offset, self._b3(False, False), spi) + iv

    def aad(self, header: bytes, seq: int | None) -> bytes:
        return header

    def encode(self, pkt: PspPacket) -> bytes:
        return (_HDR8.pack(pkt.next_header, 1, pkt.crypt_offset, self._b3(pkt.sample, pkt.drop),
                           pkt.spi) + pkt.iv + pkt.exposed + pkt.ciphertext + pkt.icv)

    def decode(self, data: bytes) -> PspPacket:
        n = len(data)
        if n < HEADER_LEN + self.icv_len:
            raise Truncated(f"{n} bytes, PSP needs at least {HEADER_LEN + self.icv_len}",
                            offset=n)
        nh, ext, b2, b3, spi, iv = _HDR.unpack_from(data)
        if not b3 & 1:
            raise BadFixedBit("the last bit of byte 3 is 0", offset=3)
        if b3 & 2:
            raise BadOption("virtualization cookie present (V = 1), not negotiated", offset=3)
        if ext != 1:
            raise BadOption(f"Hdr Ext Len {ext}, expected 1 without a cookie", offset=1)
        if (b3 >> 2) & 0x0F != self.version:
            raise BadVersion(f"version {(b3 >> 2) & 0x0F}, this SA uses {self.version}",
                             offset=3)
        if b2 & 0xC0:
            raise ReservedBitsSet(f"reserved bits of byte 2 = {b2 >> 6:#x}", offset=2)
        co = b2 & 0x3F
        if co > self.max_co:
            raise CryptOffsetAboveMaximum(f"crypt offset {co} > negotiated maximum "
                                          f"{self.max_co}", offset=2)
        clear_end = HEADER_LEN + 4 * co
        if clear_end > n - self.icv_len:
            raise CryptOffsetBeyondPayload(f"crypt offset {co} ({4 * co} bytes) reaches past "
                                           f"the {n - self.icv_len - HEADER_LEN} payload bytes",
                                           offset=HEADER_LEN)
        return PspPacket(nh, co, spi, bytes(data[8:16]), bytes(data[HEADER_LEN:clear_end]),
                         bytes(data[clear_end:n - self.icv_len]), bytes(data[n - self.icv_len:]),
                         bool(b3 & 0x80), bool(b3 & 0x40))

    def header_len_of(self, data: bytes) -> int:
        return HEADER_LEN
