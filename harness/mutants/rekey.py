"""Rekey mutants: a rekey that carries state of the old SA into the new one.

Theory of operation: the reference's ``rekey`` verb (``ReferenceIut.rekey``) installs a
fresh ``spec_model.Sender`` and ``Receiver`` on the new SAs and forgets the old ones (it
declares no overlap). Each mutant here runs that same verb and then hands one piece of
the old SA to the new one: the sender's counters (the new SA goes on from the old
sequence numbers), its packet and byte counts (limits and rekey thresholds do not
restart), the receiver's windows (the new SA's SN 1 looks like a replay), or the old
receiver itself (old-SA packets are still accepted, without an overlap being declared).
The rest of each mutant is the reference, so only the rekey cases (``suites/rekey.py``)
see them; they file under the ``limits`` and ``replay`` families as those cases do.
"""

from __future__ import annotations

from spec_model import DropReason, Dropped

from ..contract import SaConfig
from .base import MutantIut, register
from .replay import REPLAY_PROTECTED

ALL_PROFILES = REPLAY_PROTECTED + ("psp-v0",)


@register(family="limits",
          bug="the new SA's counters go on from the old SA's: its first packet does not "
              "carry SN 1",
          requirements=("REKEY-FRESH-COUNTER",),
          profiles=REPLAY_PROTECTED)
class RekeyKeepsCounter(MutantIut):
    name = "mutant:rekey-keeps-counter"

    def rekey(self, outbound: SaConfig, inbound: SaConfig) -> None:
        old = self.sender
        super().rekey(outbound, inbound)
        self.sender.counters = list(old.counters)


@register(family="limits",
          bug="the new SA's packet and byte counts go on from the old SA's: hard limits, "
              "the 2^64 cap and the rekey threshold do not restart with the new key",
          requirements=("REKEY-LIMITS-RESTART", "REKEY-DUE-LEADS-TO-REKEY"),
          profiles=(),
          needs="hard_packets or soft_packets set (the rekey cases set them)")
class RekeyKeepsLimits(MutantIut):
    name = "mutant:rekey-keeps-limits"

    def rekey(self, outbound: SaConfig, inbound: SaConfig) -> None:
        old = self.sender
        super().rekey(outbound, inbound)
        new = self.sender
        new.packets, new.nbytes = list(old.packets), list(old.nbytes)
        new._total_packets, new._total_bytes = old._total_packets, old._total_bytes
        new._limited = True       # the counts are now checked on every packet


@register(family="replay",
          bug="the new inbound SA keeps the old SA's replay windows: its SN 1 is dropped "
              "as too old after the old SA saw high sequence numbers",
          requirements=("REKEY-FRESH-WINDOW",),
          profiles=REPLAY_PROTECTED)
class RekeyKeepsWindow(MutantIut):
    name = "mutant:rekey-keeps-window"

    def rekey(self, outbound: SaConfig, inbound: SaConfig) -> None:
        old = self.receiver
        super().rekey(outbound, inbound)
        self.receiver.windows = old.windows


@register(family="replay",
          bug="the old inbound SA is still accepted after a rekey, though the IUT declares "
              "no overlap (Capabilities.rekey_overlap is False)",
          requirements=("REKEY-OLD-SA", "SPI-UNKNOWN-DROP"),
          profiles=ALL_PROFILES)
class RekeyKeepsOldSa(MutantIut):
    name = "mutant:rekey-keeps-old-sa"

    def __init__(self) -> None:
        super().__init__()
        self.old_receiver = None

    def rekey(self, outbound: SaConfig, inbound: SaConfig) -> None:
        self.old_receiver = self.receiver
        super().rekey(outbound, inbound)

    def unprotect(self, wire: bytes):
        out = super().unprotect(wire)
        if (self.old_receiver is not None and isinstance(out, Dropped)
                and out.reason is DropReason.UNKNOWN_SPI):
            return self.old_receiver.open(wire)
        return out
