"""A worked example of an espspec adapter: a tiny ESP implementation (AES-GCM-16, 32-bit
sequence numbers, tunnel mode) written from scratch with the ``cryptography`` package,
with a 64-packet anti-replay window. Copy it, then replace its insides with calls into
your implementation.

Run:  espspec run --iut examples.toy_iut:ToyEsp --profile esp
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness.contract import Capabilities, Delivered, DropReason, Dropped, Refused, SaConfig


class ToyEsp:
    name = "toy-esp"
    version = "1.0 (the worked example of docs/adapters.md)"

    def capabilities(self) -> Capabilities:
        return Capabilities(framings=frozenset({"esp"}), aeads=frozenset({"aes128gcm16"}),
                            seq=frozenset({"32"}), modes=frozenset({"tunnel"}),
                            replay_window=64, can_set_counters=True,
                            reports_drop_reasons=True)

    def install(self, outbound: SaConfig, inbound: SaConfig) -> None:
        self.out_spi, self.in_spi = outbound.spi, inbound.spi
        self.out = AESGCM(outbound.keymat[:16]), outbound.keymat[16:]    # key, salt
        self.inb = AESGCM(inbound.keymat[:16]), inbound.keymat[16:]
        self.seq = 0                   # last sequence number sent
        self.top, self.bitmap = 0, 1   # highest accepted; bit i = top - i seen (0 "seen")

    def protect(self, sub_sa: int, payload: bytes, next_header: int | None):
        if sub_sa != 0:
            return Refused("SUBSA-ID-RANGE", "one sub-SA only")
        if self.seq == 0xFFFFFFFF:
            return Refused("SEQ-NO-WRAP", "sequence number space exhausted")
        self.seq += 1
        nh = 41 if payload[:1] and payload[0] >> 4 == 6 else 4
        pad = -(len(payload) + 2) % 4
        body = payload + bytes(range(1, pad + 1)) + bytes((pad, nh))
        header = struct.pack("!II", self.out_spi, self.seq)
        iv = struct.pack("!Q", self.seq)
        aead, salt = self.out
        return header + iv + aead.encrypt(salt + iv, body, header)

    def unprotect(self, wire: bytes):
        if len(wire) < 8 + 8 + 16 + 4 or (len(wire) - 16) % 4:
            return Dropped(DropReason.MALFORMED, "", "too short or misaligned")
        spi, seq = struct.unpack_from("!II", wire)
        if spi != self.in_spi:
            return Dropped(DropReason.UNKNOWN_SPI, "", f"SPI {spi:#x}")
        if seq + 64 <= self.top:
            return Dropped(DropReason.TOO_OLD, "", f"SN {seq}")
        if seq <= self.top and self.bitmap >> (self.top - seq) & 1:
            return Dropped(DropReason.REPLAY, "", f"SN {seq}")
        aead, salt = self.inb
        try:
            body = aead.decrypt(salt + wire[8:16], wire[16:], wire[:8])
        except InvalidTag:
            return Dropped(DropReason.ICV, "", "ICV")
        if seq > self.top:                       # window moves only after the ICV
            self.bitmap = (self.bitmap << (seq - self.top) | 1) & ((1 << 64) - 1)
            self.top = seq
        else:
            self.bitmap |= 1 << (self.top - seq)
        pad, nh = body[-2], body[-1]
        if pad > len(body) - 2 or body[-2 - pad:-2] != bytes(range(1, pad + 1)):
            return Dropped(DropReason.MALFORMED, "", "padding")
        if nh == 59:
            return Dropped(DropReason.DUMMY, "", "dummy")
        return Delivered(0, seq, body[:-2 - pad], nh)

    def set_counter(self, sub_sa: int, value: int) -> None:
        self.seq = value

    def counters(self) -> list[int]:
        return [self.seq]

    def close(self) -> None:
        pass


