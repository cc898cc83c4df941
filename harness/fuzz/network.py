"""Fuzzing a daemon over the wire: mutated packets through a TUN-daemon IUT.

Theory of operation: ``network_target(iut)`` is ``oracle.Pair`` with a network adapter
(``harness.adapters.tun_daemon``: the reference daemon, a mutant daemon, strongSwan, a
vendor's daemon) in place of the in-process IUT: per input the SAs are installed again
(one more generation of the same daemon, not a restart), the history, the input and its
replay are injected, and what comes out of the TUN device is held against the model. The
daemon must stay alive (``IutCrash`` and ``IutHang`` become ``IutDied``, a finding) and
deliver exactly what the model delivers. Inputs are the structure-aware target's (the
first byte picks among all named profiles; those the IUT lacks are skipped), and so are
the seeds (``corpora/resealed/``). An IUT that negotiates its keys (strongSwan) keeps one
SA per profile for the whole run, with a model receiver beside it, and gets each input
re-sealed under the negotiated keys (``Negotiated``).
The rig is made at the first input and lives as long as the process; the target script
runs supervised (``engine.run(supervise=True)``) because libFuzzer ends the process
without running its ``atexit`` cleanup.
"""

from __future__ import annotations

from typing import Callable

from spec_model import Delivered, Mode, Profile, Receiver, Sender

from ..contract import IutCrash, IutHang, SaConfig
from .oracle import Finding, Pair, compare, iut_target
from .reseal import open_packet, seal
from .sas import SPI, keymat


class IutDied(Finding):
    """The implementation crashed or stopped answering on an input."""


def through_tun(profile: Profile, outcome):
    """The model's outcome as a TUN device shows it: a drop as it is (nothing comes out);
    a delivery in tunnel mode only when the payload is an IP packet the TUN driver takes
    (version 4 with a 20-byte header, or 6 with a 40-byte one; the kernel discards
    anything else before espspec could see it: None), and with the next header the
    packet's version gives (4 or 41: a TUN device carries no other)."""
    if not isinstance(outcome, Delivered) or profile.mode is not Mode.TUNNEL:
        return outcome
    p = outcome.payload
    version = p[0] >> 4 if p else 0
    if version == 4 and len(p) >= 20 and (p[0] & 0x0F) >= 5:
        return outcome._replace(next_header=4)
    if version == 6 and len(p) >= 40:
        return outcome._replace(next_header=41)
    return None


def network_target(iut_name: str) -> Callable[[bytes], None]:
    def judge(iut, caps, profile: Profile, packet: bytes) -> None:
        try:
            if caps.negotiates_keys:
                negotiated(iut, profile).judge(packet)
            else:
                Pair(profile, iut, through_tun).judge(packet)
        except (IutCrash, IutHang) as e:
            raise IutDied(f"{iut_name} on {profile.name}: {e}") from None
    return iut_target(iut_name, judge=judge)


class Negotiated:
    """An IUT that negotiates its own keys (strongSwan): its SA is installed once per
    profile and kept, and so is the model receiver beside it, so the two see the same
    packets in the same order. An input is first opened under the fuzz SA's keys and
    sealed again, field for field, under the negotiated SA's; one the fuzz keys do not
    open goes as it is (the IUT cannot open it either). State carries over from input
    to input here: a saved input replays the finding only after the inputs before it."""

    def __init__(self, iut, profile: Profile) -> None:
        self.iut, self.profile = iut, profile
        k = keymat(profile)
        _, inbound = iut.install(SaConfig(profile, SPI + 0x100, k), SaConfig(profile, SPI, k))
        self.model = Receiver(profile, inbound.keymat, inbound.spi)
        self.sender = Sender(profile, inbound.keymat, inbound.spi)
        self.reasons = iut.capabilities().reports_drop_reasons

    def judge(self, packet: bytes) -> None:
        f = open_packet(self.profile, packet)
        wire = packet if f is None else seal(self.profile, f, sender=self.sender)
        for where in ("the input", "the input again"):
            model = through_tun(self.profile, self.model.open(wire))
            theirs = self.iut.unprotect(wire)
            if model is not None:
                compare(self.profile, model, theirs, reasons=self.reasons, where=where)


_NEGOTIATED: dict[int, Negotiated] = {}


def negotiated(iut, profile: Profile) -> Negotiated:
    hit = _NEGOTIATED.get(id(iut))
    if hit is None or hit.profile is not profile:
        hit = _NEGOTIATED[id(iut)] = Negotiated(iut, profile)
    return hit
