"""Probes measure what an IUT does: the window it enforces, the AEADs it speaks.

In process against the model and mutants (known answers), and for real against
strongSwan (root and charon needed: CI has both)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from harness.engine import probe
from harness.loader import load_iut
from spec_model import named

CHARON = "/usr/lib/ipsec/charon"


@pytest.mark.parametrize("iut, shift", [("reference", 0), ("mutant:window-too-narrow", -1),
                                        ("mutant:window-too-wide", +1)])
def test_window_edge_is_measured(iut, shift):
    answers = probe.window_edge(load_iut(iut), named("esp"), [32, 64, 200])
    assert [a.enforced for a in answers] == [32 + shift, 64 + shift, 200 + shift]
    assert all(a.first_drop for a in answers)


def test_esn_inference_probe_knows_both_appendix_a_cases():
    ref = probe.esn_inference(load_iut("reference"), named("esp"))
    assert [a.case for a in ref] == ["A", "A", "B", "B", "B", "B"]
    assert all(a.agrees for a in ref), ref
    assert [a.expected for a in ref].count("drop") == 1
    assert ref[1].seq == (1 << 32) + 5 and ref[2].top == (1 << 32) + 5
    # a receiver that gets case B wrong disagrees there, and only there
    wrong = probe.esn_inference(load_iut("mutant:esn-case-b-wrong"), named("esp-esn"))
    assert {a.case for a in wrong if not a.agrees} == {"B"}, wrong
    # scapy never advances its ESN high half: the packet past 2^32 is dropped
    scapy = probe.esn_inference(load_iut("scapy"), named("esp"))
    assert not scapy[1].agrees and scapy[1].answer == "dropped"
    # an IUT without ESN: one answer that says why, nothing installed
    class NoEsn(type(load_iut("reference")())):
        def capabilities(self):
            return replace(super().capabilities(), seq=frozenset({"32"}))
    (only,) = probe.esn_inference(NoEsn, named("esp"))
    assert not only.case and "sequence numbers esn" in only.detail


def test_aead_probe_on_the_model():
    answers = {a.aead: a.outcome for a in probe.aeads(load_iut("reference"), named("esp"))}
    assert set(answers.values()) == {"interoperates"} and "chacha20poly1305" in answers


def test_aead_probe_reports_what_the_capabilities_rule_out():
    answers = {a.aead: a for a in probe.aeads(load_iut("scapy"), named("esp"))}
    assert answers["aes128gcm16"].outcome == "interoperates"
    assert answers["aes192gcm16"].outcome == "unsupported"       # not in scapy's table
    assert answers["aes128gcm8"].outcome == "unsupported"        # 16-byte tags only
    assert "finding" not in {a.outcome for a in answers.values()}
    assert "AEAD aes192gcm16" in answers["aes192gcm16"].detail


def test_probe_cli_bad_windows_is_one_line():
    p = subprocess.run([sys.executable, "-m", "harness.cli", "probe", "--iut", "reference",
                        "--windows", "32,x"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--windows" in p.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(CHARON),
                    reason="needs root and strongSwan's charon (Debian strongswan-charon)")
def test_strongswan_enforces_128_whatever_it_is_configured_with(tmp_path):
    out = tmp_path / "probe.json"
    p = subprocess.run([sys.executable, "-m", "harness.cli", "probe", "--iut", "strongswan",
                        "--windows", "32,128,256", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    import json
    doc = json.loads(out.read_text())
    assert [w["enforced"] for w in doc["windows"]] == [128, 128, 128]
    ok = {a["aead"] for a in doc["aeads"] if a["outcome"] == "interoperates"}
    assert {"aes128gcm16", "aes256gcm16", "aes128gcm8", "chacha20poly1305"} <= ok
