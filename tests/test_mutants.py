"""The kill test: every seeded-bug mutant is caught by the suites (the reference passes
everything: tests/test_engine.py). The kill matrix (mutant x family) is printed at the end
of the run (see conftest.pytest_terminal_summary)."""

from __future__ import annotations

import pytest

from harness.loader import load_iut
from harness.engine.judge import Verdict
from harness.mutants import MUTANT_INFO
from harness.mutants.selfcheck import demonstrate
from harness.engine.runner import Depth, run_case
from spec_model import named
from suites import CASES, FAMILIES

KILLING = {Verdict.FAIL, Verdict.NON_STRICT}
# a smaller Hypothesis budget than `espspec run --depth ci`: the matrix shows each mutant
# dies many times over, and benchmarks/bench_engine.py measures the time to the first kill
KILL_DEPTH = Depth(examples=10, steps=20)


def test_at_least_fifteen_mutants_over_all_families():
    assert len(MUTANT_INFO) >= 15
    for family in FAMILIES:
        assert sum(m.family == family for m in MUTANT_INFO.values()) >= 3, family


@pytest.mark.parametrize("name", sorted(MUTANT_INFO))
def test_mutant_differs_from_reference(name):
    """Each mutant's own hand-written scenario shows its bug (independent of the suites)."""
    assert demonstrate(name)


@pytest.mark.parametrize("name", sorted(MUTANT_INFO))
def test_mutant_is_killed(name, record_property):
    info = MUTANT_INFO[name]
    factory = load_iut(f"mutant:{name}")
    caps = factory().capabilities()
    profiles = (info.profiles or ("esp-subsa-spi", "eesp-v0"))[:2]
    killed_by: dict[str, list[str]] = {f: [] for f in FAMILIES}
    for pname in profiles:
        for case in CASES.values():
            r = run_case(case, factory, named(pname), caps, seed=0, strict=False,
                         depth=KILL_DEPTH)
            if r.verdict in KILLING:
                killed_by[case.family].append(f"{pname}:{case.id}:{r.findings[0].requirement}")
    record_property("kill_row", (name, info.family,
                                 {f: len(v) for f, v in killed_by.items()}))
    assert any(killed_by.values()), f"mutant {name} survived every case on {profiles}"
