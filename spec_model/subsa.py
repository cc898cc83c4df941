"""Axis A: where the sub-SA ID lives on the wire.

Theory of operation: a sender protects a packet on sub-SA ``i`` with its own counter
``c``; this module says how ``(i, c)`` appear on the wire (the SPI, the sequence number
field or the EESP Session ID) and how a receiver gets them back. It knows nothing of keys,
nonces or windows. With the ID in the SPI, the child SA owns a 2^k-aligned block of SPIs
(k = bits for N sub-SAs) and sub-SA i uses ``base | i``. With the ID in the sequence
number, it takes the top k bits of the transmitted field and the counter the rest. With
the ID in the EESP Session ID, it is that 16-bit field.
"""

from __future__ import annotations

from .errors import ConfigError
from .profile import SEQ_WIRE_BITS, Profile, SeqWire, SubSaLocation


def check_base_spi(profile: Profile, base_spi: int) -> None:
    """Refuse an SPI that cannot be the base of this profile's SPI block."""
    if not 256 <= base_spi < 1 << 32:
        raise ConfigError(f"SPI {base_spi:#x} is reserved or too large (RFC 4303 §2.1: "
                          f"0 is local, 1..255 IANA-reserved)", requirement="WIRE-ESP-LAYOUT")
    if profile.subsa is SubSaLocation.SPI and base_spi & ((1 << profile.subsa_bits) - 1):
        raise ConfigError(f"SPI {base_spi:#x} is not aligned to a block of "
                          f"{1 << profile.subsa_bits} SPIs for {profile.n_sub_sas} sub-SAs",
                          requirement="SUBSA-ID-LOCATION")


def spi_for(profile: Profile, base_spi: int, sub_sa: int) -> int:
    return base_spi | sub_sa if profile.subsa is SubSaLocation.SPI else base_spi


def session_id_for(profile: Profile, sub_sa: int) -> int:
    return sub_sa if profile.subsa is SubSaLocation.HEADER else 0


def seq_for(profile: Profile, sub_sa: int, counter: int) -> int:
    """The sequence number of the packet (full 64-bit value, sub-SA bits included)."""
    if profile.subsa is SubSaLocation.SEQ:
        return (sub_sa << (SEQ_WIRE_BITS[profile.seq] - profile.subsa_bits)) | counter
    return counter


def seq_on_wire(profile: Profile, seq: int) -> int | None:
    """What the sequence number field carries: all of it, its low 32 bits, or nothing."""
    if profile.seq is SeqWire.NONE:
        return None
    if profile.seq is SeqWire.ESN:
        return seq & 0xFFFFFFFF
    return seq


def locate(profile: Profile, base_spi: int, spi: int, session_id: int,
           seq: int | None) -> tuple[int, int | None]:
    """(sub-SA ID, counter) a receiver reads from a packet. ``seq`` is the full sequence
    number (after ESN inference). The ID may be >= N: range checks are the caller's."""
    loc = profile.subsa
    if loc is SubSaLocation.SPI:
        return spi - base_spi, seq
    if loc is SubSaLocation.HEADER:
        return session_id, seq
    if loc is SubSaLocation.SEQ:
        shift = SEQ_WIRE_BITS[profile.seq] - profile.subsa_bits
        return seq >> shift, seq & ((1 << shift) - 1)
    return 0, seq


def owns_spi(profile: Profile, base_spi: int, spi: int) -> bool:
    """Whether an SPI belongs to the child SA whose block starts at base_spi."""
    if profile.subsa is SubSaLocation.SPI:
        return spi >> profile.subsa_bits == base_spi >> profile.subsa_bits
    return spi == base_spi
