"""Pairwise coverage of the profile axes.

Theory of operation: the suites run on named profiles, but a mature implementation must
hold on any point of the design space it claims. ``pairwise_profiles`` builds a small set
of valid profiles in which every pair of values of the main axes — AEAD, sub-SA count,
sequence-number width, framing, crypt offset, window — that occurs in some valid profile
occurs in at least one chosen profile. The remaining axes (where the sub-SA ID lives, the
nonce scheme, the KDF, the mode, alignment) are completed from a table of known-good
choices per framing, so every chosen profile passes validation. A greedy set-cover over
the candidates is deterministic. No I/O.
"""

from __future__ import annotations

import itertools

from spec_model import Framing, Kdf, Mode, NonceScheme, Profile, ProfileError, SeqWire
from spec_model import SubSaLocation

AXES: dict[str, tuple] = {
    "aead": ("aes128gcm16", "aes256gcm16", "aes128gcm12", "aes128gcm8", "chacha20poly1305"),
    "n_sub_sas": (1, 2, 5, 16),
    "seq": (SeqWire.SEQ32, SeqWire.ESN, SeqWire.SEQ64, SeqWire.NONE),
    "framing": (Framing.ESP, Framing.EESP_FULL, Framing.EESP_OPTIMIZED, Framing.PSP),
    "crypt_offset": (0, 1, 3),
    "window": ("min", 128, 1000, 4096),
}

# completions tried in order: (sub-SA location, nonce scheme, KDF, mode) per framing
COMPLETIONS = {
    Framing.ESP: [(SubSaLocation.SPI, NonceScheme.PARTITIONED_IV, Kdf.NONE, Mode.TUNNEL),
                  (SubSaLocation.SEQ, NonceScheme.EXPLICIT_COUNTER, Kdf.NONE, Mode.TRANSPORT),
                  (SubSaLocation.SPI, NonceScheme.SUBSA_SALT, Kdf.NONE, Mode.TRANSPORT),
                  (SubSaLocation.NONE, NonceScheme.IMPLICIT_IV, Kdf.NONE, Mode.TUNNEL),
                  (SubSaLocation.NONE, NonceScheme.EXPLICIT_COUNTER, Kdf.NONE, Mode.TUNNEL)],
    Framing.EESP_FULL: [(SubSaLocation.HEADER, NonceScheme.SUBSA_KEY, Kdf.HKDF_SHA256,
                         Mode.TRANSPORT),
                        (SubSaLocation.NONE, NonceScheme.IMPLICIT_IV, Kdf.NONE, Mode.TRANSPORT)],
    Framing.EESP_OPTIMIZED: [(SubSaLocation.HEADER, NonceScheme.SUBSA_KEY, Kdf.HKDF_SHA512,
                              Mode.TUNNEL),
                             (SubSaLocation.HEADER, NonceScheme.SUBSA_SALT, Kdf.NONE,
                              Mode.TUNNEL)],
    Framing.PSP: [(SubSaLocation.SPI, NonceScheme.SUBSA_KEY, Kdf.PSP_CMAC, Mode.TRANSPORT)],
}


def _build(values: dict) -> Profile | None:
    framing, seq = values["framing"], values["seq"]
    window = values["window"]
    if seq is SeqWire.NONE:
        window = 0
    elif window == "min":
        window = 32 if framing is Framing.ESP else 64
    co = values["crypt_offset"]
    options = COMPLETIONS[framing]
    start = sum(AXES[k].index(v) for k, v in values.items()) % len(options)
    for loc, nonce, kdf, mode in options[start:] + options[:start]:   # vary the completion
        if values["n_sub_sas"] == 1:
            loc = SubSaLocation.NONE if loc is not SubSaLocation.SPI or framing is not \
                Framing.PSP else loc
        for alignment in (8, 4):
            try:
                return Profile(name="pairwise", framing=framing, seq=seq, subsa=loc,
                               nonce=nonce, kdf=kdf, mode=mode, aead=values["aead"],
                               n_sub_sas=values["n_sub_sas"], window=window,
                               crypt_offset=co, max_crypt_offset=max(co, 16 if co else 0),
                               alignment=alignment)
            except ProfileError:
                continue
    return None


def _pairs(values: dict) -> set[tuple]:
    items = sorted((k, str(v)) for k, v in values.items())
    return set(itertools.combinations(items, 2))


def pairs_of(profile: Profile) -> set[tuple]:
    """The pairs of (normalised) axis values a profile has."""
    window = profile.window
    values = {"aead": profile.aead, "n_sub_sas": profile.n_sub_sas, "seq": profile.seq,
              "framing": profile.framing, "crypt_offset": profile.crypt_offset,
              "window": "none" if window == 0 else "min" if window in (32, 64) else window}
    return _pairs(values)


def _candidates() -> list[Profile]:
    built = (_build(dict(zip(AXES, combo))) for combo in itertools.product(*AXES.values()))
    return [p for p in built if p is not None]


def coverable_pairs() -> set[tuple]:
    """Every pair of axis values that some valid profile has."""
    return set().union(*(pairs_of(p) for p in _candidates()))


def pairwise_profiles() -> list[Profile]:
    """A deterministic set of valid profiles covering every coverable pair of values."""
    candidates = [(pairs_of(p), p) for p in _candidates()]
    uncovered = set().union(*(pairs for pairs, _ in candidates))
    chosen: list[Profile] = []
    while uncovered:
        pairs, profile = max(candidates, key=lambda c: len(c[0] & uncovered))
        uncovered -= pairs
        chosen.append(profile.replace(name=f"pairwise-{len(chosen) + 1:02d}"))
    return chosen
