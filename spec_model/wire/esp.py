"""RFC 4303 ESP framing: header, AAD (RFC 4106 / RFC 7634 / RFC 8750) and decoding.

Theory of operation: an ESP packet is ``SPI | SN | IV | ciphertext | ICV``. The SN field is
32 bits (also for ESN, which sends the low half) or, in the seed draft's §4.8 variant,
64 bits. The IV is 8 bytes, or absent with an implicit IV. The AAD is SPI || SN, with the
full 64-bit number for ESN and 64-bit SNs. The trailer (padding, pad length, next header)
sits inside the ciphertext and is ``payload.py``'s business; so are keys and nonces
(``nonce.py``). ``decode`` checks only what can be checked before decryption: lengths and
the alignment of the ICV.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import Misaligned, Truncated
from ..profile import SEQ_WIRE_BITS, Profile, SeqWire

_II = struct.Struct("!II")
_IQ = struct.Struct("!IQ")


@dataclass(frozen=True)
class EspPacket:
    spi: int
    seq: int                # the sequence number field as sent
    iv: bytes
    ciphertext: bytes
    icv: bytes
    session_id: int = 0     # no such field in ESP; keeps the packet types uniform
    exposed: bytes = b""    # ESP leaves nothing in clear


class EspCodec:
    """Encoder and decoder of one profile's ESP packets."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.seq_len = SEQ_WIRE_BITS[profile.seq] // 8
        self.iv_len = profile.iv_len
        self.icv_len = profile.aead_spec.icv_len
        self.alignment = profile.alignment
        self.esn = profile.seq is SeqWire.ESN
        self._head = _IQ if self.seq_len == 8 else _II
        self.header_len = 4 + self.seq_len + self.iv_len
        self.min_len = self.header_len + 2 + self.icv_len

    # --- sender side -----------------------------------------------------------------
    def header(self, spi: int, session_id: int, seq: int, iv: bytes, crypt_offset: int,
               next_header: int = 0) -> bytes:
        return self._head.pack(spi, seq) + iv

    def aad(self, header: bytes, seq: int) -> bytes:
        """RFC 4106 §5: SPI || SN, or SPI || ESN (64 bits, high half never sent)."""
        if self.esn:
            return _IQ.pack(_II.unpack_from(header)[0], seq)
        return header[:4 + self.seq_len]

    def encode(self, pkt: EspPacket) -> bytes:
        return self._head.pack(pkt.spi, pkt.seq) + pkt.iv + pkt.ciphertext + pkt.icv

    # --- receiver side ---------------------------------------------------------------
    def decode(self, data: bytes) -> EspPacket:
        n = len(data)
        if n < self.min_len:
            raise Truncated(f"{n} bytes, ESP with this profile needs at least {self.min_len}",
                            offset=n)
        if (n - self.icv_len) % self.alignment:
            raise Misaligned(f"ICV starts at {n - self.icv_len}, not a multiple of "
                             f"{self.alignment}", offset=n - self.icv_len)
        spi, seq = self._head.unpack_from(data)
        h = self.header_len
        return EspPacket(spi, seq, bytes(data[4 + self.seq_len:h]), bytes(data[h:n - self.icv_len]),
                         bytes(data[n - self.icv_len:]))

    def header_len_of(self, data: bytes) -> int:
        return self.header_len
