"""Profiles: named profiles are valid, every insecure or impossible combination is refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from spec_model import (NAMED, Framing, ImpossibleProfile, InsecureProfile, Kdf, Mode,
                        NonceScheme, Profile, ProfileError, SeqWire, SubSaLocation, named)
from spec_model.errors import UnknownProfile
from spec_model.profile import RULES
from spec_model.requirements import CATALOGUE

REQUIRED_NAMES = {"esp", "esp-esn", "esp-iiv", "esp-subsa-spi", "esp-subsa-seq", "eesp-v0",
                  "psp-v0"}


def test_named_profiles_exist_and_are_valid():
    assert REQUIRED_NAMES <= set(NAMED)
    for name, profile in NAMED.items():
        assert profile.name == name
        assert Profile(**{**profile.axes(), **_enum_axes(profile)}) == profile


def _enum_axes(p: Profile) -> dict:
    return {k: getattr(p, k) for k in ("framing", "seq", "subsa", "nonce", "kdf", "mode")}


def test_unknown_profile_name():
    with pytest.raises(UnknownProfile, match="esp-esn"):
        named("nope")


def test_every_rule_names_a_catalogued_requirement():
    for rule in RULES:
        assert rule.requirement in CATALOGUE, rule.name
    assert len({r.name for r in RULES}) == len(RULES)


# (changes to a base profile, expected class, expected rule) — design space §10 of spec-facts
REFUSED = [
    # 1: shared key + per-sub-SA counters as IVs
    ("esp", dict(subsa=SubSaLocation.SPI, n_sub_sas=4), InsecureProfile, "shared-key-counter-iv"),
    ("esp-iiv", dict(subsa=SubSaLocation.SPI, n_sub_sas=2), InsecureProfile,
     "shared-key-counter-iv"),
    ("eesp-v0", dict(nonce=NonceScheme.EXPLICIT_COUNTER, kdf=Kdf.NONE), InsecureProfile,
     "shared-key-counter-iv"),
    # 2: implicit IV without a sequence number
    ("eesp-v0", dict(seq=SeqWire.NONE, window=0, nonce=NonceScheme.IMPLICIT_IV, kdf=Kdf.NONE,
                     n_sub_sas=1, subsa=SubSaLocation.NONE), ImpossibleProfile,
     "iiv-without-seq"),
    # 3: shared key promising more than 2^64 packets
    ("esp-subsa-spi", dict(hard_packets=(1 << 64) + 1), InsecureProfile, "shared-key-over-2^64"),
    # 6: sub-SA ID in the transmitted low word of an ESN
    ("esp-subsa-seq", dict(seq=SeqWire.ESN), ImpossibleProfile, "subsa-seq-with-esn"),
    # 8: optimized framing outside tunnel mode, and a crypt offset with it
    ("eesp-v0", dict(mode=Mode.TRANSPORT), ImpossibleProfile, "optimized-outside-tunnel"),
    ("eesp-v0", dict(crypt_offset=2, max_crypt_offset=2), ImpossibleProfile,
     "crypt-offset-needs-full-format"),
    # 9: crypt offset in classic ESP (no field to carry it)
    ("esp", dict(crypt_offset=1, max_crypt_offset=1), ImpossibleProfile,
     "crypt-offset-needs-full-format"),
    # 10: exposed bytes left out of the AAD; offset out of range
    ("eesp-v0-transport", dict(exposed_authenticated=False), InsecureProfile,
     "exposed-not-authenticated"),
    ("eesp-v0-transport", dict(crypt_offset=20, max_crypt_offset=16), ImpossibleProfile,
     "crypt-offset-range"),
    ("eesp-v0-transport", dict(max_crypt_offset=64), ImpossibleProfile, "crypt-offset-range"),
    # 11: no alignment; a header that cannot be padded to 8
    ("esp", dict(alignment=1), ImpossibleProfile, "alignment"),
    ("esp-seq64", dict(alignment=8), ImpossibleProfile, "header-misaligned"),
    # sub-SA ID location problems
    ("esp", dict(n_sub_sas=4), ImpossibleProfile, "subsa-without-location"),
    ("esp", dict(subsa=SubSaLocation.HEADER, n_sub_sas=2, nonce=NonceScheme.SUBSA_SALT),
     ImpossibleProfile, "subsa-header-needs-eesp"),
    ("esp-subsa-seq", dict(n_sub_sas=1 << 17), ImpossibleProfile, "subsa-count"),
    # per-sub-SA keys without a KDF, PSP specifics
    ("esp-subsa-spi", dict(nonce=NonceScheme.SUBSA_KEY), ImpossibleProfile,
     "subsa-key-without-kdf"),
    ("psp-v0", dict(aead="chacha20poly1305"), ImpossibleProfile, "psp-aead"),
    ("psp-v0", dict(seq=SeqWire.SEQ64, window=64), ImpossibleProfile, "seq-width-vs-framing"),
    # windows and limits
    ("esp", dict(window=16), ImpossibleProfile, "window-size"),
    ("eesp-v0", dict(window=32), ImpossibleProfile, "window-size"),
    ("psp-v0", dict(window=64), ImpossibleProfile, "window-without-seq"),
    ("esp", dict(hard_packets=10, soft_packets=20), ImpossibleProfile, "limit-values"),
    ("esp-subsa-spi", dict(hard_packets=3), ImpossibleProfile, "limit-hard-below-n"),
    ("esp", dict(aead="aes512gcm16"), ImpossibleProfile, "unknown-aead"),
]


@pytest.mark.parametrize("base,changes,cls,rule", REFUSED,
                         ids=[f"{b}-{r}" for b, _, _, r in REFUSED])
def test_refused_combinations(base, changes, cls, rule):
    with pytest.raises(cls) as info:
        named(base).replace(**changes)
    assert info.value.rule == rule
    assert info.value.requirement in CATALOGUE
    assert rule in str(info.value)


def test_seq_located_counter_iv_is_accepted():
    """With the sub-SA ID inside the sequence number, the SN (and so an IV made from it)
    differs across sub-SAs: not the insecure case 1."""
    p = named("esp-subsa-seq").replace(nonce=NonceScheme.IMPLICIT_IV)
    assert p.n_sub_sas == 4


AXES = dict(
    framing=list(Framing), seq=list(SeqWire), subsa=list(SubSaLocation),
    nonce=list(NonceScheme), kdf=list(Kdf), mode=list(Mode),
)


def _window_for(framing, seq):
    return 0 if seq is SeqWire.NONE else (64 if framing is not Framing.ESP else 32)


def all_structural_profiles():
    """Every combination of the structural axes, with N = 1 and 16, valid or not."""
    for values in itertools.product(*AXES.values(), (1, 16)):
        axes = dict(zip(AXES, values[:-1]))
        yield dict(axes, aead="aes128gcm16", n_sub_sas=values[-1], alignment=8 if axes["framing"] is not
                   Framing.ESP else 4, window=_window_for(axes["framing"], axes["seq"]))


def valid_profiles():
    out = []
    for axes in all_structural_profiles():
        try:
            out.append(Profile(**axes))
        except ProfileError:
            pass
    return out


def test_design_space_has_valid_points_on_every_axis():
    valid = valid_profiles()
    assert len(valid) >= 10
    for axis, values in AXES.items():
        seen = {getattr(p, axis) for p in valid}
        missing = set(values) - seen - {Kdf.HKDF_SHA384, Kdf.HKDF_SHA512}
        assert not missing, (axis, missing)


def test_every_insecure_shared_counter_combination_is_refused():
    """Spec-facts §10 #1 over the whole structural space: whenever several sub-SAs share a
    key and salt and use their counters (explicit or implicit) as IVs, with the ID outside
    the sequence number, the profile is refused as insecure."""
    count = 0
    for axes in all_structural_profiles():
        if (axes["n_sub_sas"] > 1 and axes["nonce"] in (NonceScheme.IMPLICIT_IV, NonceScheme.EXPLICIT_COUNTER)
                and axes["subsa"] is not SubSaLocation.SEQ):
            count += 1
            with pytest.raises(ProfileError) as info:
                Profile(**axes)
            # either insecure, or refused earlier for a structural reason
            assert isinstance(info.value, (InsecureProfile, ImpossibleProfile))
            if isinstance(info.value, InsecureProfile):
                assert info.value.rule == "shared-key-counter-iv"
    assert count > 50


@given(st.fixed_dictionaries({k: st.sampled_from(v) for k, v in AXES.items()}),
       st.sampled_from(["aes128gcm16", "aes256gcm8", "aes128gcm12", "chacha20poly1305"]),
       st.integers(1, 70000), st.sampled_from([0, 4, 8, 3]), st.integers(0, 300),
       st.integers(0, 64), st.integers(0, 64), st.booleans())
def test_validation_never_crashes(axes, aead, n, align, window, co, co_max, exposed_auth):
    try:
        p = Profile(**axes, aead=aead, n_sub_sas=n, alignment=align, window=window,
                    crypt_offset=co, max_crypt_offset=co_max,
                    exposed_authenticated=exposed_auth)
    except ProfileError as e:
        assert e.requirement in CATALOGUE
        return
    # a valid profile satisfies the invariants the rules promise
    assert p.alignment in (4, 8)
    assert co <= co_max <= 63
    assert not (p.n_sub_sas > 1 and p.subsa is SubSaLocation.NONE)
    assert exposed_auth or not co_max
