"""The SAs every fuzz target and every seed uses: one per named profile, fixed keys.

Theory of operation: an input's first byte picks the profile (modulo the profiles a
target covers), the rest is the packet. Keys are a hash of the profile's name, so a seed
written today opens tomorrow and a crash input replays anywhere. ``SPI`` is the base SPI
of every SA (sub-SA IDs in the SPI are ORed into it). ``history_counters`` is the short
history the structure-aware targets send before each input.
"""

from __future__ import annotations

import hashlib

from spec_model import NAMED, Framing, Profile
from spec_model.keying import keymat_len

SPI = 0x1000
PROFILES: tuple[str, ...] = tuple(sorted(NAMED))


def keymat(profile: Profile) -> bytes:
    n = keymat_len(profile)
    return hashlib.sha256(profile.name.encode()).digest()[:n].ljust(n, b"\x01")


def profiles_of(*framings: Framing) -> tuple[str, ...]:
    """The named profiles with one of ``framings`` (all of them without an argument)."""
    return tuple(n for n in PROFILES if not framings or NAMED[n].framing in framings)


def split(data: bytes, names: tuple[str, ...] = PROFILES) -> tuple[Profile, bytes]:
    """An input as (profile, packet): the first byte picks among ``names``."""
    return NAMED[names[data[0] % len(names)]], data[1:]


def tag(name: str, names: tuple[str, ...] = PROFILES) -> bytes:
    """The first byte that makes ``split`` pick ``name``."""
    return bytes([names.index(name)])


def history_counters(profile: Profile) -> tuple[int, ...]:
    """The counters of sub-SA 0 every structure-aware target sends before an input (see
    ``oracle.history``): the window gets a top (W + 10), holes and a left edge."""
    return (1, 2, 3, profile.window + 10) if profile.replay_protected else ()
