"""Nonce-family mutants: ways two packets end up with the same (key, nonce).

Theory of operation: the nonce of a packet is the salt of its sub-SA followed by its
64-bit IV, under the sub-SA's key (``spec_model.nonce``, ``spec_model.keying``). Each
mutant breaks one of the three things that keep the pairs distinct: which key and salt a
sub-SA gets (a ``Keying`` subclass), which IV a packet gets (a ``Sender`` override of the
per-sub-SA constants or of the IV), or how the IV becomes a nonce (the nonce builder).
They are observable from the IUT's packets alone: a nonce that repeats under one key
(NONCE-UNIQUE-PER-KEY), or a packet the model cannot open because its key or nonce is not
the one the specification says.
"""

from __future__ import annotations

import struct

from spec_model import Receiver, Sender
from spec_model.kdf import HKDF_HASHES
from spec_model.keying import Keying
from spec_model.profile import NonceScheme

from .base import MutantIut, Pieces, register

EXPLICIT_IV = ("esp", "esp-esn", "esp-seq64", "esp-subsa-spi", "esp-subsa-salt",
               "esp-subsa-seq", "eesp-v0", "eesp-v0-transport", "psp-v0")


# --- per-sub-SA counters as IVs under one key and salt -----------------------------------

class OneSaltKeying(Keying):
    """Sub-SAs that share a key also share sub-SA 0's salt (no ``salt XOR i``)."""

    def _key_and_salt(self, sub_sa: int):
        return super()._key_and_salt(0 if self.profile.shared_key else sub_sa)


class CounterIvSender(Pieces, Sender):
    """The IV is the sub-SA's bare counter: no sub-SA ID in its top bits (partitioned
    IV) and no sub-SA bits of the sequence number (explicit counter)."""

    keying_class = OneSaltKeying

    def _sub_sa(self, sub_sa: int) -> tuple:
        spi, session_id, seq_prefix, _iv_prefix, *key = super()._sub_sa(sub_sa)
        hit = self._sub[sub_sa] = (spi, session_id, seq_prefix, 0, *key)
        return hit


class OneSaltReceiver(Pieces, Receiver):
    keying_class = OneSaltKeying


@register(family="nonce",
          bug="sub-SAs under one key use their own counters as IVs with one salt "
              "(no IV partition, no salt XOR sub-SA ID)",
          requirements=("NONCE-SUBSA-SEPARATION", "NONCE-UNIQUE-PER-KEY"),
          profiles=("esp-subsa-spi", "esp-subsa-salt", "esp-subsa-seq"))
class CounterIvSharedKey(MutantIut):
    name = "mutant:counter-iv-shared-key"
    sender_class = CounterIvSender
    receiver_class = OneSaltReceiver


# --- the KDF ignores the Session ID ------------------------------------------------------

class SessionBlindKeying(Keying):
    """HKDF-Expand with sub-SA 0's Session ID for every sub-SA."""

    def _key_and_salt(self, sub_sa: int):
        return super()._key_and_salt(0 if self.profile.kdf in HKDF_HASHES else sub_sa)


class SessionBlindSender(Pieces, Sender):
    keying_class = SessionBlindKeying


class SessionBlindReceiver(Pieces, Receiver):
    keying_class = SessionBlindKeying


@register(family="nonce",
          bug="per-sub-SA key derivation ignores the Session ID: every EESP sub-SA gets "
              "sub-SA 0's key and salt",
          requirements=("KDF-SUBSA-KEY", "NONCE-UNIQUE-PER-KEY", "RECV-ACCEPT-VALID"),
          profiles=("eesp-v0", "eesp-v0-transport"))
class KdfIgnoresSessionId(MutantIut):
    name = "mutant:kdf-ignores-session-id"
    sender_class = SessionBlindSender
    receiver_class = SessionBlindReceiver


# --- the explicit IV does not advance ----------------------------------------------------

class StuckIvSender(Sender):
    """Every packet of a sub-SA carries the IV of its first packet (counter 1)."""

    def seal(self, sub_sa, payload, next_header=None, **options):
        if self.profile.iv_len and 0 <= sub_sa < self._n and "iv_override" not in options:
            iv_prefix = (self._sub.get(sub_sa) or self._sub_sa(sub_sa))[3]
            options["iv_override"] = iv_prefix | 1
        return super().seal(sub_sa, payload, next_header, **options)


@register(family="nonce",
          bug="the explicit IV is stuck at its first value (prefix | 1) instead of "
              "following the counter",
          requirements=("NONCE-UNIQUE-PER-KEY",),
          profiles=EXPLICIT_IV)
class IvStuck(MutantIut):
    name = "mutant:iv-stuck"
    sender_class = StuckIvSender


# --- the implicit IV keeps only the low 32 bits of an ESN --------------------------------

_SALTED_LOW32 = struct.Struct("!4xI")


def _low32_nonce(salt: bytes, spi: int, iv: int) -> bytes:
    return salt + _SALTED_LOW32.pack(iv & 0xFFFFFFFF)


class Low32IivMixin:
    """RFC 8750's IIV built as 0^32 || Seql even with ESN (it must be the 64-bit ESN)."""

    def __init__(self, profile, keymat, spi) -> None:
        super().__init__(profile, keymat, spi)
        if profile.nonce is NonceScheme.IMPLICIT_IV:
            self._nonce = _low32_nonce


class Low32IivSender(Low32IivMixin, Sender):
    pass


class Low32IivReceiver(Low32IivMixin, Receiver):
    pass


@register(family="nonce",
          bug="implicit IV (RFC 8750) with ESN uses only the low 32 bits of the sequence "
              "number, so nonces repeat every 2^32 packets",
          requirements=("NONCE-IIV-LAYOUT", "NONCE-UNIQUE-PER-KEY"),
          profiles=("esp-iiv",))
class IivLow32(MutantIut):
    name = "mutant:iiv-low32"
    sender_class = Low32IivSender
    receiver_class = Low32IivReceiver
