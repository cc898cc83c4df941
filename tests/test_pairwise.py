"""Pairwise coverage of the profile axes: the set covers every coverable pair, and the
engine runs on each of its profiles."""

from __future__ import annotations

import json

import pytest

from harness import cli
from harness.loader import load_iut
from harness.engine.judge import Verdict
from harness.engine.pairwise import AXES, coverable_pairs, pairs_of, pairwise_profiles
from harness.engine.runner import Depth, run_case
from suites import CASES

PROFILES = pairwise_profiles()


def test_every_coverable_pair_is_covered():
    covered = set().union(*(pairs_of(p) for p in PROFILES))
    assert coverable_pairs() <= covered
    # every value of every axis appears (windows collapse to "none" without an SN)
    for axis, values in AXES.items():
        present = {v for pair in covered for (k, v) in pair if k == axis}
        assert {str(v) for v in values if v != "min"} - {"none"} <= present | {"min"}, axis
    assert len(PROFILES) <= 40


def test_pairwise_is_deterministic_and_valid():
    again = pairwise_profiles()
    assert again == PROFILES
    assert len({p.name for p in PROFILES}) == len(PROFILES)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_reference_passes_lockstep_on_pairwise_profile(profile):
    factory = load_iut("reference")
    caps = factory().capabilities()
    # holding a packet past a window of 1000 or 4096 costs that many packets: fewer examples
    depth = Depth(examples=8, steps=25) if profile.window <= 128 else Depth(2, 10)
    for family in ("nonce", "replay", "limits", "wire"):
        r = run_case(CASES[f"{family}/lockstep"], factory, profile, caps, seed=3,
                     strict=True, depth=depth)
        assert r.verdict in (Verdict.PASS, Verdict.UNSUPPORTED), (family, r.message, r.steps)


def test_cli_pairwise_selection(tmp_path):
    rc = cli.main(["run", "--iut", "mutant:esp-zero-padding", "--profile", "pairwise",
                   "--suite", "wire", "--report", str(tmp_path), "-q"])
    assert rc == 1
    doc = json.loads((tmp_path / "results.json").read_text())
    assert all(p.startswith("pairwise-") for p in doc["profiles"])
    failing = [c for c in doc["cases"] if c["verdict"] == "FAIL"]
    assert failing and all("ran_profile" in c for c in failing)
