"""The fence: how espspec knows at once that ipsec-secgw dropped a packet.

Theory of operation: ipsec-secgw says nothing when it drops an inbound packet (no log
line, no counter: its per-SA error counter stays 0 for replay and ICV drops), so without
help a drop is only known by a bounded wait of silence. But one lcore with one RX queue
handles everything in arrival order: a burst is received, its ESP goes through SA
lookup, replay check and the crypto device (one queue pair, completed in order), and
what survives is queued for the plaintext port, whose TX buffer leaves in order. So a
packet that arrives *after* the one under test and is surely accepted comes out of the
plaintext port only after the one under test has been delivered or dropped.

``Fence`` is that second packet's maker. It holds a second inbound SA like the
session's (RFC 4303 ESP, the same AEAD and kind of SN, no limits; its own SPI and fresh
key material: ``sa``) that the rig adds to secgw's file with a policy for inner packets
from ``FENCE_INNER``. ``next_wire()`` seals fence packet n (n = 1, 2, ...: a fresh
sequence number every time, so the fence's own window never refuses it) whose inner
IPv4 packet carries n in its body; ``number(packet)`` reads n back from an inner packet
the plaintext port gave, or None when it is not a fence packet. A rig injects a fence
packet right after every packet under test: once fence n is out, that packet's fate is
known.

Pure: the caller gives the key material (``keymat_len`` bytes), the model's ``Sender``
seals, nothing here opens a socket or starts a process.
What it does not do: outbound fencing (secgw refuses nothing espspec sends it below
the MTU, so a protect never waits long) or any judging.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace

from spec_model import Profile, Sender, SeqWire, named

from ..net.frames import ip_packet
from .config import SALT_LEN, SecgwSa, secgw_aead

__all__ = ["FENCE_INNER", "FENCE_SPI", "Fence"]

FENCE_SPI = 0xE5F0FE0C            # moved by one when a session's SA has it
FENCE_INNER = "203.0.113.254"     # the fence's inner source (documentation addresses)
MAGIC = b"espspec-fence"
PROTOCOL = 253                    # RFC 3692 experimental, as the suites' inner packets


class Fence:
    """Fence packets for one secgw start: see the module's docstring."""

    @staticmethod
    def keymat_len(aead: str) -> int:
        """Bytes of key material (key || salt) the fence SA needs for ``aead``."""
        return secgw_aead(aead).key_len + SALT_LEN

    def __init__(self, profile: Profile, inner_local: str, taken: tuple[int, ...],
                 keymat: bytes) -> None:
        spi = FENCE_SPI
        while spi in taken:
            spi += 1
        # RFC 4303 ESP with the session's AEAD and kind of SN, and no limits: the fence
        # sends one packet per packet under test, however many the session's limits allow
        base = named("esp-esn" if profile.seq is SeqWire.ESN else "esp")
        self.profile = replace(base, aead=profile.aead, name=f"fence-{profile.aead}")
        self.sa = SecgwSa(spi, profile.aead, keymat)
        self._sender = Sender(self.profile, keymat, spi)
        self._src = ipaddress.IPv4Address(FENCE_INNER).packed
        self._inner_local = inner_local
        self.sent = 0                  # fence packets sealed so far (the last one's n)

    def inner(self, n: int) -> bytes:
        """Fence packet n's inner IPv4 packet (valid header checksum)."""
        return ip_packet(FENCE_INNER, self._inner_local, PROTOCOL, MAGIC + struct.pack("!Q", n))

    def next_wire(self) -> bytes:
        """The next fence packet's ESP (SPI to ICV)."""
        self.sent += 1
        return self._sender.seal(0, self.inner(self.sent)).wire

    def number(self, packet: bytes) -> int | None:
        """n if ``packet`` (an inner IP packet) is fence packet n, else None."""
        if (len(packet) == 20 + len(MAGIC) + 8 and packet[0] == 0x45
                and packet[12:16] == self._src and packet[20:20 + len(MAGIC)] == MAGIC):
            return struct.unpack("!Q", packet[-8:])[0]
        return None
