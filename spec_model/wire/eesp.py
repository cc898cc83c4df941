"""EESP framing (draft-ietf-ipsecme-eesp-04): base header, options, peer header, AAD.

Theory of operation: an EESP packet is

    base header (8) | options (Opt Len) | peer header: SN (0/8), IV (0/8) |
    crypt-offset bytes in clear | ciphertext | ICV

The base header is ``1 | Version(4) | R(3) | Opt Len(8) | Session ID(16) | SPI(32)``.
Options are TLVs (Pad1 is the single byte 0); the Crypt Offset option (type 2, two data
bytes) carries ``Payload Offset(6) | Crypt Offset(6) | R(4)`` in 4-octet units, the payload
offset counted from the start of the base header to the Payload Info Header. The AAD is
everything from the base header to the end of the clear bytes. The sender pads the
options (Pad1/PadN) so that the next-layer header starts at a multiple of the profile's
alignment, and the ciphertext ends on it so the ICV is aligned. The Payload Info Header,
the payload and the padding are ``payload.py``'s business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import (BadFixedBit, BadOption, BadVersion, CryptOffsetAboveMaximum,
                      CryptOffsetBeyondPayload, Misaligned, OptionOverrun,
                      PayloadOffsetMismatch, ReservedBitsSet, Truncated)
from ..profile import Framing, Profile, SeqWire

PAD1, PADN, CRYPT_OFFSET = 0, 1, 2
VERSION = 0
_BASE = struct.Struct("!BBHI")
_Q = struct.Struct("!Q")
_H = struct.Struct("!H")
PIH_LEN = 4


@dataclass(frozen=True)
class Option:
    type: int
    data: bytes = b""

    def encode(self) -> bytes:
        if self.type == PAD1:
            return b"\x00"
        return bytes((self.type, len(self.data))) + self.data


def crypt_offset_option(payload_offset: int, crypt_offset: int) -> Option:
    return Option(CRYPT_OFFSET, _H.pack((payload_offset << 10) | (crypt_offset << 4)))


def padding_options(n: int) -> tuple[Option, ...]:
    """Options filling n bytes: nothing, Pad1, or one PadN of zeros."""
    if n == 0:
        return ()
    if n == 1:
        return (Option(PAD1),)
    return (Option(PADN, bytes(n - 2)),)


@dataclass(frozen=True)
class EespPacket:
    spi: int
    session_id: int
    options: tuple[Option, ...]
    seq: int | None
    iv: bytes
    exposed: bytes
    ciphertext: bytes
    icv: bytes

    @property
    def crypt_offset(self) -> int:
        for opt in self.options:
            if opt.type == CRYPT_OFFSET:
                return (_H.unpack(opt.data)[0] >> 4) & 0x3F
        return 0


class EespCodec:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.full = profile.framing is Framing.EESP_FULL
        self.seq_len = 8 if profile.seq is SeqWire.SEQ64 else 0
        self.iv_len = profile.iv_len
        self.peer_len = self.seq_len + self.iv_len
        self.icv_len = profile.aead_spec.icv_len
        self.alignment = profile.alignment
        self.max_co = profile.max_crypt_offset
        self.pih_len = PIH_LEN if self.full else 0
        self._headers: dict[int, tuple[bytes, int]] = {}

    # --- sender side -----------------------------------------------------------------
    def _options(self, crypt_offset: int) -> tuple[bytes, int]:
        """Encoded options and Opt Len for a crypt offset (cached: a handful of values)."""
        hit = self._headers.get(crypt_offset)
        if hit is None:
            co_len = 4 if crypt_offset else 0
            start = 8 + co_len + self.peer_len + self.pih_len
            pad = -start % self.alignment
            payload_offset = (8 + co_len + pad + self.peer_len) // 4
            opts = (crypt_offset_option(payload_offset, crypt_offset),) if crypt_offset else ()
            opts += padding_options(pad)
            raw = b"".join(o.encode() for o in opts)
            hit = self._headers[crypt_offset] = (raw, len(raw))
        return hit

    def header(self, spi: int, session_id: int, seq: int | None, iv: bytes,
               crypt_offset: int, next_header: int = 0) -> bytes:
        opts, opt_len = self._options(crypt_offset)
        head = _BASE.pack(0x80 | VERSION << 3, opt_len, session_id, spi) + opts
        if self.seq_len:
            head += _Q.pack(seq)
        return head + iv

    def aad(self, header: bytes, seq: int | None) -> bytes:
        return header

    def encode(self, pkt: EespPacket) -> bytes:
        opts = b"".join(o.encode() for o in pkt.options)
        out = _BASE.pack(0x80 | VERSION << 3, len(opts), pkt.session_id, pkt.spi) + opts
        if self.seq_len:
            out += _Q.pack(pkt.seq)
        return out + pkt.iv + pkt.exposed + pkt.ciphertext + pkt.icv

    # --- receiver side ---------------------------------------------------------------
    def _parse_options(self, data: bytes, end: int) -> tuple[tuple[Option, ...], int | None]:
        opts, co, i = [], None, 8
        while i < end:
            t = data[i]
            if t == PAD1:
                opts.append(Option(PAD1))
                i += 1
                continue
            if i + 2 > end or i + 2 + data[i + 1] > end:
                raise OptionOverrun(f"option type {t} runs past Opt Len ({end - 8} bytes)",
                                    offset=i)
            body = bytes(data[i + 2:i + 2 + data[i + 1]])
            if t == CRYPT_OFFSET:
                if len(body) != 2:
                    raise BadOption(f"Crypt Offset option with {len(body)} data bytes, "
                                    f"expected 2", offset=i)
                if co is not None:
                    raise BadOption("two Crypt Offset options", offset=i)
                co = (i, _H.unpack(body)[0])
            opts.append(Option(t, body))
            i += 2 + len(body)
        return tuple(opts), co

    def decode(self, data: bytes) -> EespPacket:
        n = len(data)
        if n < 8:
            raise Truncated(f"{n} bytes, the EESP base header needs 8", offset=n)
        b0, opt_len, session_id, spi = _BASE.unpack_from(data)
        if not b0 & 0x80:
            raise BadFixedBit("first bit is 0 (an ESP SPI, not EESP)", offset=0)
        if (b0 >> 3) & 0x0F != VERSION:
            raise BadVersion(f"version {(b0 >> 3) & 0x0F}, expected {VERSION}", offset=0)
        if b0 & 0x07:
            raise ReservedBitsSet(f"base header R bits = {b0 & 7:#x}", offset=0)
        peer = 8 + opt_len
        body = peer + self.peer_len
        if n < body + self.pih_len + self.icv_len:
            raise Truncated(f"{n} bytes, this EESP packet needs at least "
                            f"{body + self.pih_len + self.icv_len}", offset=n)
        options, co_opt = self._parse_options(data, peer)
        co = 0
        if co_opt is not None:
            where, value = co_opt
            payload_offset, co = value >> 10, (value >> 4) & 0x3F
            if payload_offset * 4 != body:
                raise PayloadOffsetMismatch(f"Payload Offset says {payload_offset * 4}, the "
                                            f"payload starts at {body}", offset=where + 2)
            if co > self.max_co:
                raise CryptOffsetAboveMaximum(f"crypt offset {co} > negotiated maximum "
                                              f"{self.max_co}", offset=where + 2)
        if (body + self.pih_len) % self.alignment:
            raise Misaligned(f"next-layer header at {body + self.pih_len}, not a multiple of "
                             f"{self.alignment}", offset=body)
        if (n - self.icv_len) % self.alignment:
            raise Misaligned(f"ICV starts at {n - self.icv_len}, not a multiple of "
                             f"{self.alignment}", offset=n - self.icv_len)
        clear_end = body + 4 * co
        if clear_end > n - self.icv_len:
            raise CryptOffsetBeyondPayload(f"crypt offset {co} ({4 * co} bytes) reaches past "
                                           f"the {n - self.icv_len - body} payload bytes",
                                           offset=body)
        seq = _Q.unpack_from(data, peer)[0] if self.seq_len else None
        return EespPacket(spi, session_id, options, seq,
                          bytes(data[peer + self.seq_len:body]), bytes(data[body:clear_end]),
                          bytes(data[clear_end:n - self.icv_len]), bytes(data[n - self.icv_len:]))

    def header_len_of(self, data: bytes) -> int:
        return 8 + data[1] + self.peer_len
