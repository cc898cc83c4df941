"""Which SA a captured packet belongs to: framing kind, SPI position, SPI tables.

Theory of operation
-------------------
The dissector (``harness.capture``) says whether a payload is ESP, EESP or PSP and where
it starts; the SPI then sits at ``SPI_OFFSET[kind]`` (EESP and PSP carry 4 bytes before
it). ``spi_tables`` turns the key file's SAs into one table per kind, SPI -> value (a
``SaCheck``, an SA index, ...), where every SPI of an SA (one per sub-SA when the sub-SA
ID lives in the SPI) points at it. Several SAs of a key file may share an SPI when
their addresses tell them apart; such an SPI maps to a list of (source, destination,
value), and ``by_address`` picks the most specific entry that matches the packet's outer
addresses (an address the key file leaves out matches any).

Both passes over captures use this: the sender check (``senderpass``) and the receiver
judge (``rxjudge``). Nothing here checks a packet.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Iterable

from spec_model.profile import Framing

from .keys import SaKey

__all__ = ["FRAMING_KIND", "KINDS", "SPI_FIELD", "SPI_OFFSET", "addr_bytes", "by_address",
           "spi_of", "spi_tables"]

#: the dissector's name of each framing's payload
FRAMING_KIND = {Framing.ESP: "esp", Framing.EESP_FULL: "eesp",
                Framing.EESP_OPTIMIZED: "eesp", Framing.PSP: "psp"}
KINDS = ("esp", "eesp", "psp")
#: where the SPI starts in the payload of each kind
SPI_OFFSET = {"esp": 0, "eesp": 4, "psp": 4}
SPI_FIELD = struct.Struct("!I")


def spi_of(pkt: bytes, kind: str) -> int | None:
    """The SPI of a payload of ``kind``, or None when it is too short to carry one."""
    at = SPI_OFFSET[kind]
    return SPI_FIELD.unpack_from(pkt, at)[0] if len(pkt) >= at + 4 else None


def addr_bytes(text: str | None) -> bytes | None:
    """An address of the key file as the dissector reports addresses (None: any)."""
    return None if text is None else ipaddress.ip_address(text).packed


def spi_tables(entries: Iterable[tuple[SaKey, object]]) -> dict[str, dict]:
    """{kind: {SPI: value, or [(source, destination, value), ...] when SAs share it}}
    from (SA, value) pairs, in order."""
    tables: dict[str, dict] = {k: {} for k in KINDS}
    for sa, value in entries:
        table = tables[FRAMING_KIND[sa.profile.framing]]
        for spi in sa.spis():
            table.setdefault(spi, []).append((sa, value))
    for table in tables.values():
        for spi, hs in list(table.items()):
            if len(hs) == 1:
                table[spi] = hs[0][1]
            else:
                table[spi] = [(addr_bytes(sa.src), addr_bytes(sa.dst), v) for sa, v in hs]
    return tables


def by_address(cands, src: bytes, dst: bytes):
    """The value of the most specific (source, destination, value) entry that matches."""
    best = None
    for s, d_, h in cands:
        if (s is None or s == src) and (d_ is None or d_ == dst):
            if best is None or (s is not None) + (d_ is not None) > best[0]:
                best = ((s is not None) + (d_ is not None), h)
    return None if best is None else best[1]
