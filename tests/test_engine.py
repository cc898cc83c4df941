"""The engine: reference passes, real and seeded bugs are found, reports and CLI behave."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from harness import cli
from harness.contract import Capabilities, IutError
from harness.loader import load_iut
from harness.engine.judge import Verdict
from harness.results.document import load_steps
from harness.engine.runner import DEPTHS, Depth, run_case
from harness.engine.session import ConformanceFailure, Session, replay
from spec_model import NAMED, Mode, named
from suites import CASES

FAST = Depth(examples=12, steps=25)


def _run(iut: str, profile: str, case_id: str, depth: Depth = FAST, seed: int = 0):
    factory = load_iut(iut)
    return run_case(CASES[case_id], factory, named(profile), factory().capabilities(),
                    seed=seed, strict=False, depth=depth)


@pytest.mark.parametrize("profile", sorted(NAMED))
def test_reference_passes_every_case(profile):
    factory = load_iut("reference")
    caps = factory().capabilities()
    for case in CASES.values():
        r = run_case(case, factory, named(profile), caps, seed=1, strict=True, depth=FAST)
        assert r.verdict in (Verdict.PASS, Verdict.UNSUPPORTED), (case.id, r.message, r.steps)


def test_scapy_has_no_anti_replay_and_the_failure_is_minimal():
    r = _run("scapy", "esp", "replay/lockstep")
    assert r.verdict is Verdict.FAIL
    assert r.findings[0].requirement in ("REPLAY-TOO-OLD-DROP", "REPLAY-DUPLICATE-DROP")
    assert 1 <= len(r.steps) <= 4, r.steps      # a duplicate: send, copy, deliver twice
    # the logged steps replay to the same finding
    findings = replay(load_iut("scapy"), named("esp"), r.steps)
    assert any(f.requirement == r.findings[0].requirement for f in findings)
    # and the reference passes the same steps
    assert not [f for f in replay(load_iut("reference"), named("esp"), r.steps)
                if f.verdict is Verdict.FAIL]


def test_scapy_wraps_its_sequence_counter():
    r = _run("scapy", "esp", "limits/lockstep")
    assert r.verdict is Verdict.FAIL and r.findings[0].requirement == "SEQ-NO-WRAP"


def test_profiles_an_iut_lacks_are_unsupported():
    r = _run("scapy", "eesp-v0", "replay/lockstep")
    assert r.verdict is Verdict.UNSUPPORTED and "eesp-optimized" in r.message


class CrashingIut:
    """An IUT whose receiver raises on every packet."""
    name = "crashing"

    def __init__(self):
        self.inner = load_iut("reference")()

    def capabilities(self):
        return self.inner.capabilities()

    def install(self, outbound, inbound):
        self.inner.install(outbound, inbound)

    def protect(self, sub_sa, payload, nh):
        return self.inner.protect(sub_sa, payload, nh)

    def unprotect(self, wire):
        raise RuntimeError("segfault (simulated)")

    def set_counter(self, sub_sa, value):
        self.inner.set_counter(sub_sa, value)

    def counters(self):
        return self.inner.counters()

    def close(self):
        pass


def test_crashing_iut_is_a_finding_not_a_traceback():
    r = run_case(CASES["replay/lockstep"], CrashingIut, named("esp"),
                 CrashingIut().capabilities(), seed=0, strict=False, depth=FAST)
    assert r.verdict is Verdict.FAIL
    assert r.findings[0].requirement == "IUT-NO-CRASH" and "segfault" in r.message


class Ipv4OnlyIut(CrashingIut):
    """The reference, declaring that its tunnels carry IPv4 inner packets only (as DPDK's
    ipsec-secgw does), and keeping every inner packet it protects or delivers."""
    name = "ipv4-only"
    seen: list[int] = []                         # inner IP versions, across instances

    def capabilities(self):
        return replace(self.inner.capabilities(), inner_families=frozenset({"ipv4"}))

    def protect(self, sub_sa, payload, nh):
        self.seen.append(payload[0] >> 4)
        return self.inner.protect(sub_sa, payload, nh)

    def unprotect(self, wire):
        out = self.inner.unprotect(wire)
        if getattr(out, "payload", None):
            self.seen.append(out.payload[0] >> 4)
        return out


class BothFamiliesIut(Ipv4OnlyIut):
    def capabilities(self):
        return self.inner.capabilities()


@pytest.mark.parametrize("case_id", ["wire/every-field", "wire/lockstep", "nonce/lockstep"])
def test_suites_send_only_the_inner_families_an_iut_carries(case_id):
    Ipv4OnlyIut.seen.clear()
    r = run_case(CASES[case_id], Ipv4OnlyIut, named("esp"), Ipv4OnlyIut().capabilities(),
                 seed=3, strict=True, depth=FAST)
    assert r.verdict is Verdict.PASS, r.message
    assert Ipv4OnlyIut.seen and set(Ipv4OnlyIut.seen) == {4}
    Ipv4OnlyIut.seen.clear()                    # declaring both, it gets both
    r = run_case(CASES[case_id], BothFamiliesIut, named("esp"),
                 BothFamiliesIut().capabilities(), seed=3, strict=True, depth=FAST)
    assert r.verdict is Verdict.PASS and set(Ipv4OnlyIut.seen) == {4, 6}


def test_inner_families_and_transport_mode():
    caps = Capabilities(inner_families=frozenset({"ipv6"}))
    assert caps.inner_v6(named("esp")) == (True,)
    assert Capabilities().inner_v6(named("esp")) == (False, True)
    transport = replace(named("esp"), mode=Mode.TRANSPORT, name="esp-transport")
    assert caps.inner_v6(transport) == (False,)
    none = Capabilities(inner_families=frozenset())
    assert "inner packets" in none.unsupported(named("esp"))
    assert none.unsupported(transport) is None


def test_session_judges_a_wrong_payload():
    s = Session.open(load_iut("reference"), named("esp"))
    s.peer_send(0, 10)
    label, wire = s.in_flight.pop()
    # the IUT's receiver answers with the right verdict but another payload
    real = s.iut.unprotect
    s.iut.unprotect = lambda w: real(w)._replace(payload=b"tampered")
    with pytest.raises(ConformanceFailure) as info:
        s.deliver_wire(wire, label)
    assert info.value.findings[0].requirement == "RECV-ACCEPT-VALID"


def test_capabilities_explain_what_is_missing():
    caps = Capabilities()
    why = caps.unsupported(named("eesp-v0"))
    assert "eesp-optimized" in why and "4 sub-SAs" in why
    assert caps.unsupported(named("esp")) is None


def test_load_iut_errors():
    with pytest.raises(IutError, match="unknown IUT"):
        load_iut("nope")
    with pytest.raises(IutError, match="cannot load"):
        load_iut("no.such.module:Thing")


# --- CLI ----------------------------------------------------------------------------------

def test_cli_run_reference_writes_report(tmp_path, capsys):
    rc = cli.main(["run", "--iut", "reference", "--profile", "esp,eesp-v0", "--suite",
                   "replay,wire", "--report", str(tmp_path), "-q"])
    assert rc == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["iut"] == "reference" and doc["profiles"] == ["esp", "eesp-v0"]
    assert doc["cases"] and all(c["verdict"] in ("PASS", "UNSUPPORTED") for c in doc["cases"])
    assert all(c["requirements"] for c in doc["cases"])
    assert "esp" in capsys.readouterr().out


def test_cli_run_scapy_fails_and_replays(tmp_path, capsys):
    rc = cli.main(["run", "--iut", "scapy", "--profile", "esp", "--suite", "replay",
                   "--report", str(tmp_path), "-q"])
    assert rc == 1
    path = tmp_path / "results.json"
    loaded = load_steps(path, "replay/lockstep", "esp")
    assert loaded.profile == named("esp") and loaded.steps
    case = [c for c in loaded.doc["cases"] if c["case"] == "replay/lockstep"][0]
    assert case["verdict"] == "FAIL" and case["steps"] and "espspec replay" in case["replay"]
    assert cli.main(["replay", str(path), "--case", "replay/lockstep", "--profile", "esp"]) == 1
    assert "reproduced" in capsys.readouterr().out
    assert cli.main(["replay", str(path), "--case", "replay/lockstep", "--profile", "esp",
                     "--iut", "reference"]) == 0


def test_cli_run_only_the_cases_asked(tmp_path):
    rc = cli.main(["run", "--iut", "scapy", "--profile", "esp", "--case",
                   "replay/seq-zero,wire/dummy-discard", "--report", str(tmp_path), "-q"])
    assert rc == 1                                     # scapy delivers SN 0 and dummies
    doc = json.loads((tmp_path / "results.json").read_text())
    assert sorted(c["case"] for c in doc["cases"]) == ["replay/seq-zero", "wire/dummy-discard"]
    assert {c["verdict"] for c in doc["cases"]} == {"FAIL"}


@pytest.mark.parametrize("argv,needle", [
    (["run", "--iut", "reference", "--case", "replay/nope"], "unknown case replay/nope"),
    (["run", "--iut", "reference", "--case", ""], "empty name"),
    (["run", "--iut", "nope"], "unknown IUT"),
    (["run", "--iut", "reference", "--profile", "nope"], "unknown profile"),
    (["run", "--iut", "reference", "--suite", "bogus"], "unknown suite"),
    (["replay", "/nonexistent.json", "--case", "x", "--profile", "esp"], "No such file"),
])
def test_cli_bad_usage_is_one_line_and_exit_2(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_cli_profiles_and_requirements(capsys):
    assert cli.main(["profiles", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(NAMED)
    assert cli.main(["requirements", "--json", "--severity", "security"]) == 0
    reqs = json.loads(capsys.readouterr().out)
    assert reqs and all(r["severity"] == "security" for r in reqs)


def test_readme_profile_table_matches_the_model():
    from pathlib import Path
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, p in NAMED.items():
        row = [line for line in readme.splitlines() if line.startswith(f"| `{name}` |")]
        assert row, name
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        a = p.axes()
        assert cells[1:] == [str(a[k]) for k in ("framing", "seq", "subsa", "nonce", "kdf",
                                                 "aead", "mode", "alignment", "crypt_offset",
                                                 "max_crypt_offset", "n_sub_sas", "window")]


def test_depths_are_deterministic_budgets():
    assert DEPTHS["ci"].examples < DEPTHS["certify"].examples
    a = _run("scapy", "esp", "replay/lockstep", seed=5)
    b = _run("scapy", "esp", "replay/lockstep", seed=5)
    assert a.steps == b.steps and a.message == b.message


def test_cli_mutants_lists_every_mutant(capsys):
    from harness.mutants import MUTANT_INFO
    assert cli.main(["mutants"]) == 0
    out = capsys.readouterr().out
    assert all(f"mutant:{name}" in out for name in MUTANT_INFO)
    assert cli.main(["requirements", "-v"]) == 0
    assert "REPLAY-ADVANCE-AFTER-ICV: The window moves only after" in capsys.readouterr().out
