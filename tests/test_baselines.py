"""Reviewed baselines: rerun the published results and compare every verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.loader import load_iut
from harness.engine.runner import DEPTHS, run_case
from spec_model import named
from suites import CASES

REPORTS = Path(__file__).resolve().parent.parent / "reports"


@pytest.mark.parametrize("folder,iut", [("scapy-2.8.0", "scapy"), ("reference", "reference")])
def test_baseline_verdicts_unchanged(folder, iut):
    doc = json.loads((REPORTS / folder / "results.json").read_text())
    assert doc["iut"] == iut and doc["depth"] == "ci"
    factory = load_iut(iut)
    caps = factory().capabilities()
    profiles = doc["profiles"] if iut == "scapy" else ["esp", "eesp-v0", "psp-v0"]
    expected = {(c["profile"], c["case"]): c["verdict"] for c in doc["cases"]}
    changed = []
    for pname in profiles:
        for case in CASES.values():
            r = run_case(case, factory, named(pname), caps, seed=doc["seed"],
                         strict=doc["strict"], depth=DEPTHS[doc["depth"]])
            was = expected.get((pname, case.id))
            if was != r.verdict.value:
                changed.append(f"{pname} {case.id}: {was} -> {r.verdict.value} {r.message}")
    assert not changed, "verdicts changed against reports/" + folder + ":\n" + "\n".join(changed)
