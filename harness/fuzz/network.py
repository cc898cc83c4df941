"""Fuzzing a daemon over the wire: mutated packets through a TUN-daemon IUT.

Theory of operation: ``network_target(iut)`` is ``oracle.Pair`` with a network adapter
(``harness.adapters.tun_daemon``: the reference daemon, a mutant daemon, strongSwan, a
vendor's daemon) in place of the in-process IUT: per input the SAs are installed again
(one more generation of the same daemon, not a restart), the history, the input and its
replay are injected, and what comes out of the TUN device is held against the model. The
daemon must stay alive (``IutCrash`` and ``IutHang`` become ``IutDied``, a finding) and
deliver exactly what the model delivers. Inputs are the structure-aware target's (the
first byte picks among all named profiles; those the IUT lacks are skipped), and so are
the seeds (``corpora/resealed/``).
The rig is made at the first input and lives as long as the process; the target script
runs supervised (``engine.run(supervise=True)``) because libFuzzer ends the process
without running its ``atexit`` cleanup.
"""

from __future__ import annotations

from typing import Callable

from spec_model import Delivered, Mode, Profile

from ..contract import IutCrash, IutHang
from ..loader import load_iut
from .oracle import Finding, Pair
from .sas import split


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
    factory = load_iut(iut_name)
    caps = factory().capabilities()
    if caps.negotiates_keys:
        raise ValueError(f"{iut_name} negotiates its own keys: the fuzz SA cannot be "
                         f"installed on it")
    live = []

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        profile, packet = split(data)
        if caps.unsupported(profile):
            return
        if not live:
            live.append(factory())
        try:
            Pair(profile, live[0], through_tun).judge(packet)
        except (IutCrash, IutHang) as e:
            raise IutDied(f"{iut_name} on {profile.name}: {e}") from None
    return test_one_input
