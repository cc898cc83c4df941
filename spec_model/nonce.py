"""IVs and nonces (the IV half of axis B).

Theory of operation: every AEAD here takes a 12-byte nonce. This module says what the
explicit IV on the wire is and how the nonce is put together, per nonce scheme:

==================  ===========================================  ===========================
scheme              explicit IV (8 bytes)                        nonce
==================  ===========================================  ===========================
explicit-counter    the packet's sequence number (64-bit; the    salt || IV
                    sub-SA's counter where no SN is sent)
partitioned-iv      sub-SA ID in the top k bits, counter below   salt || IV
subsa-salt          the sub-SA's counter                         salt_i || IV
subsa-key           the sub-SA's counter                         salt_i || IV (EESP);
                                                                 SPI || IV (PSP)
implicit-iv         none; IIV = 64-bit sequence number           salt || IIV (RFC 8750)
==================  ===========================================  ===========================

RFC 8750's IIV for a 32-bit SN is 0^32 || SN, i.e. the same 64-bit big-endian number, so
one packing serves all widths. Which key and salt a sub-SA has is ``keying.py``'s job.
"""

from __future__ import annotations

import struct
from typing import Callable

from .profile import Framing, NonceScheme, Profile

_Q = struct.Struct("!Q")
_IQ = struct.Struct("!IQ")


def iv_value(profile: Profile, sub_sa: int, seq: int, counter: int) -> int:
    """The 64-bit IV (explicit, or implicit with IMPLICIT_IV) of a packet."""
    scheme = profile.nonce
    if scheme is NonceScheme.PARTITIONED_IV:
        return (sub_sa << (64 - profile.subsa_bits)) | counter if profile.subsa_bits else counter
    if scheme in (NonceScheme.EXPLICIT_COUNTER, NonceScheme.IMPLICIT_IV):
        return seq if profile.replay_protected else counter
    return counter


def _no_iv(iv: int) -> bytes:
    return b""


def _psp_nonce(salt: bytes, spi: int, iv: int) -> bytes:
    return _IQ.pack(spi, iv)


def _salted_nonce(salt: bytes, spi: int, iv: int) -> bytes:
    return salt + _Q.pack(iv)


def iv_encoder(profile: Profile) -> Callable[[int], bytes]:
    """The function that writes a packet's IV field (nothing for an implicit IV)."""
    return _no_iv if profile.nonce is NonceScheme.IMPLICIT_IV else _Q.pack


def nonce_builder(profile: Profile) -> Callable[[bytes, int, int], bytes]:
    """The function (salt, SPI, 64-bit IV) -> 12-byte nonce of a profile."""
    return _psp_nonce if profile.framing is Framing.PSP else _salted_nonce


def explicit_iv(profile: Profile, iv: int) -> bytes:
    return iv_encoder(profile)(iv)


def build_nonce(profile: Profile, salt: bytes, spi: int, iv: int) -> bytes:
    return nonce_builder(profile)(salt, spi, iv)
