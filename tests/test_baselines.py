"""Reviewed baselines: rerun the published results and compare every verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.loader import load_iut
from harness.engine.runner import DEPTHS, run_case
from spec_model import named
from suites import CASES

from .needs import secgw_missing

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def _changed(doc: dict, factory, caps, profiles: list[str]) -> list[str]:
    """Every case of ``profiles`` run again: the ones whose verdict is not the file's."""
    expected = {(c["profile"], c["case"]): c["verdict"] for c in doc["cases"]}
    changed = []
    for pname in profiles:
        for case in CASES.values():
            r = run_case(case, factory, named(pname), caps, seed=doc["seed"],
                         strict=doc["strict"], depth=DEPTHS[doc["depth"]])
            was = expected.get((pname, case.id))
            if was != r.verdict.value:
                changed.append(f"{pname} {case.id}: {was} -> {r.verdict.value} {r.message}")
    return changed


@pytest.mark.parametrize("folder,iut", [("scapy-2.8.0", "scapy"), ("reference", "reference")])
def test_baseline_verdicts_unchanged(folder, iut):
    doc = json.loads((REPORTS / folder / "results.json").read_text())
    assert doc["iut"] == iut and doc["depth"] == "ci"
    factory = load_iut(iut)
    caps = factory().capabilities()
    profiles = doc["profiles"] if iut == "scapy" else ["esp", "eesp-v0", "psp-v0"]
    changed = _changed(doc, factory, caps, profiles)
    assert not changed, "verdicts changed against reports/" + folder + ":\n" + "\n".join(changed)


@pytest.mark.skipif(not Path("/usr/lib/ipsec/charon").exists() or __import__("os").geteuid(),
                    reason="needs root and strongSwan's charon (Debian strongswan-charon)")
def test_strongswan_baseline_verdicts_unchanged():
    """strongSwan over the network, in this process (its rig is closed at the end)."""
    from harness.adapters.tun_daemon import close_rigs
    doc = json.loads((REPORTS / "strongswan-5.9.8" / "results.json").read_text())
    assert doc["iut"] == "strongswan" and doc["depth"] == "ci"
    factory = load_iut("strongswan")
    try:
        changed = _changed(doc, factory, factory().capabilities(), doc["profiles"])
    finally:
        close_rigs()
    assert not changed, "verdicts changed against reports/strongswan-5.9.8:\n" + \
        "\n".join(changed)


def test_dpdk_baseline_verdicts_unchanged():
    """DPDK's ipsec-secgw over the network, in this process (its rig is closed at the end):
    every case of reports/dpdk-22.11 run again for real."""
    why = secgw_missing()
    if why:
        pytest.skip(why)
    from harness.adapters.tun_daemon import close_rigs
    doc = json.loads((REPORTS / "dpdk-22.11" / "results.json").read_text())
    assert doc["iut"] == "dpdk" and doc["depth"] == "ci"
    factory = load_iut("dpdk")
    try:
        changed = _changed(doc, factory, factory().capabilities(), doc["profiles"])
    finally:
        close_rigs()
    assert not changed, "verdicts changed against reports/dpdk-22.11:\n" + "\n".join(changed)
