"""Rekey: the reference passes every rekey case, each rekey mutant fails the case that names
its rule, overlap is judged as declared, and a rekey step replays and validates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness import cli
from harness.adapters.reference import ALL, ReferenceIut
from harness.engine.isolation import Isolated
from harness.engine.judge import Verdict
from harness.engine.runner import Depth, run_case
from harness.engine.session import ConformanceFailure, Session, replay, sa_pair
from harness.loader import load_iut
from harness.results import schema
from harness.results.document import write_json
from spec_model import CATALOGUE, NAMED, DropReason, Dropped, Level, named
from suites import CASES

FAST = Depth(examples=5, steps=10)
REKEY_CASES = sorted(c for c in CASES if "/rekey-" in c and c != "limits/rekey-due")


def _run(factory, profile: str, case_id: str, strict: bool = True):
    return run_case(CASES[case_id], factory, named(profile), factory().capabilities(),
                    seed=3, strict=strict, depth=FAST)


class OverlapIut(ReferenceIut):
    """The reference with an overlap, declared: the inbound SA just replaced keeps
    receiving (with its own window) until the next rekey."""
    name = "reference-overlap"

    def __init__(self) -> None:
        super().__init__()
        self.old_receiver = None

    def capabilities(self):
        return replace(ALL, rekey_overlap=True)

    def rekey(self, outbound, inbound) -> None:
        self.old_receiver = self.receiver
        super().rekey(outbound, inbound)

    def unprotect(self, wire):
        out = super().unprotect(wire)
        if (self.old_receiver is not None and isinstance(out, Dropped)
                and out.reason is DropReason.UNKNOWN_SPI):
            return self.old_receiver.open(wire)
        return out


class OverlapClaimedIut(ReferenceIut):
    """Declares an overlap but drops the old SA's packets at once."""
    name = "overlap-claimed"

    def capabilities(self):
        return replace(ALL, rekey_overlap=True)


class KeepsEveryOldSa(OverlapIut):
    """Declares an overlap and keeps every old inbound SA, not only the last one."""
    name = "keeps-every-old-sa"

    def __init__(self) -> None:
        super().__init__()
        self.olds = []

    def rekey(self, outbound, inbound) -> None:
        self.olds.append(self.receiver)
        super().rekey(outbound, inbound)

    def unprotect(self, wire):
        out = ReferenceIut.unprotect(self, wire)
        for old in reversed(self.olds):
            if isinstance(out, Dropped) and out.reason is DropReason.UNKNOWN_SPI:
                out = old.open(wire)
        return out


class OverlapForgetsWindow(OverlapIut):
    """Declares an overlap but rebuilds the old inbound SA afresh: its window is lost."""
    name = "overlap-forgets-window"

    def install(self, outbound, inbound) -> None:
        super().install(outbound, inbound)
        self.inbound = inbound

    def rekey(self, outbound, inbound) -> None:
        old = self.inbound
        super().rekey(outbound, inbound)
        self.old_receiver = self.receiver_class(old.profile, old.keymat, old.spi)


class NoRekeyIut(ReferenceIut):
    name = "no-rekey"

    def capabilities(self):
        return replace(ALL, rekey=False, rekey_overlap=False)


# --- the requirements ------------------------------------------------------------------------

def test_rekey_requirements_are_musts_with_their_sources():
    want = {"REKEY-FRESH-COUNTER": "RFC 4303 §2.2", "REKEY-FRESH-WINDOW": "RFC 4303 §3.4.3",
            "REKEY-OLD-SA": "RFC 4303 §3.4.2", "REKEY-LIMITS-RESTART": "seed §4.5",
            "REKEY-DUE-LEADS-TO-REKEY": "seed §4.5"}
    for rid, source in want.items():
        assert CATALOGUE[rid].level is Level.MUST and source in CATALOGUE[rid].source, rid
    for cid in REKEY_CASES:
        assert all(r in CATALOGUE for r in CASES[cid].requirements), cid
        assert any(r.startswith("REKEY-") for r in CASES[cid].requirements), cid
    assert {c.split("/")[0] for c in REKEY_CASES} == {"limits", "replay"}


# --- the reference and the overlap ------------------------------------------------------------

@pytest.mark.parametrize("profile", sorted(NAMED))
def test_reference_passes_every_rekey_case(profile):
    factory = load_iut("reference")
    ran = 0
    for cid in REKEY_CASES:
        r = _run(factory, profile, cid)
        assert r.verdict in (Verdict.PASS, Verdict.UNSUPPORTED), (cid, r.message, r.steps)
        ran += r.verdict is Verdict.PASS
    # psp-v0 has no sequence numbers: the counter and window cases do not apply there
    assert ran == (3 if profile == "psp-v0" else len(REKEY_CASES))


@pytest.mark.parametrize("profile", ["esp", "esp-subsa-spi", "eesp-v0"])
def test_a_declared_overlap_passes_and_a_false_claim_fails(profile):
    for cid in REKEY_CASES:
        r = _run(OverlapIut, profile, cid)
        assert r.verdict is Verdict.PASS, (cid, r.message, r.steps)
    r = _run(OverlapClaimedIut, profile, "replay/rekey-old-sa")
    assert r.verdict is Verdict.FAIL and r.findings[0].requirement == "RECV-ACCEPT-VALID"
    assert "old SA, in the overlap" in r.message


def test_the_overlap_judges_old_packets_with_the_old_window():
    r = _run(OverlapForgetsWindow, "esp", "replay/rekey-old-sa")
    assert r.verdict is Verdict.FAIL, r.message
    assert r.findings[0].requirement == "REPLAY-DUPLICATE-DROP" and "overlap" in r.message
    s = Session.open(OverlapForgetsWindow, named("esp"), label="overlap")
    s.peer_send(0, 8)
    s.deliver(0)                      # SN 1 accepted on the old SA
    s.peer_send(0, 8)
    s.rekey()
    s.deliver(0)                      # the old SA's SN 2: delivered in the overlap
    s.peer_send(0, 8)
    s.deliver(0)                      # the new SA's SN 1
    assert not [f for f in s.findings if f.verdict is Verdict.FAIL]


def test_an_overlap_covers_only_the_sa_just_replaced():
    s = Session.open(KeepsEveryOldSa, named("esp"), label="two-back")
    s.peer_send(0, 8)                 # generation 0, in flight across two rekeys
    s.rekey()
    s.rekey()
    with pytest.raises(ConformanceFailure) as info:
        s.deliver(0)
    assert info.value.findings[0].requirement == "REKEY-OLD-SA"
    # the reference model with the same overlap declared drops it: no finding
    s = Session.open(OverlapIut, named("esp"), label="two-back")
    s.peer_send(0, 8)
    s.rekey()
    s.rekey()
    s.deliver(0)
    assert not s.findings


def test_an_iut_without_the_verb_is_unsupported():
    for cid in REKEY_CASES:
        r = _run(NoRekeyIut, "esp", cid)
        assert r.verdict is Verdict.UNSUPPORTED and "rekey" in r.message, cid
    s = Session.open(NoRekeyIut, named("esp"), label="x")
    assert s.rekey() is False and not s.steps


def test_rekey_derives_new_sas_from_the_label():
    s = Session.open(load_iut("reference"), named("esp-subsa-spi"), seed=7, label="lbl")
    old = (s.outbound, s.inbound)
    assert s.rekey() is True and s.steps == [("rekey", {})]
    assert (s.outbound, s.inbound) == sa_pair(named("esp-subsa-spi"), "lbl/rekey1", 7)
    assert {s.outbound.spi, s.inbound.spi}.isdisjoint({old[0].spi, old[1].spi})
    assert s.outbound.keymat != old[0].keymat and s.inbound.keymat != old[1].keymat
    s.rekey()
    assert s.outbound == sa_pair(named("esp-subsa-spi"), "lbl/rekey2", 7)[0]
    assert s.judge.generation == 2 and s.answers[-1] == "rekey: None"


# --- the mutants ------------------------------------------------------------------------------

@pytest.mark.parametrize("mutant,profile,case_id,requirement", [
    ("rekey-keeps-counter", "esp", "limits/rekey-fresh-counter", "REKEY-FRESH-COUNTER"),
    ("rekey-keeps-counter", "eesp-v0", "limits/rekey-fresh-counter", "REKEY-FRESH-COUNTER"),
    ("rekey-keeps-counter", "esp-subsa-seq", "limits/rekey-fresh-counter",
     "REKEY-FRESH-COUNTER"),
    ("rekey-keeps-window", "esp", "replay/rekey-fresh-window", "REKEY-FRESH-WINDOW"),
    ("rekey-keeps-window", "esp-esn", "replay/rekey-fresh-window", "REKEY-FRESH-WINDOW"),
    ("rekey-keeps-window", "eesp-v0", "replay/rekey-fresh-window", "REKEY-FRESH-WINDOW"),
    ("rekey-keeps-old-sa", "esp", "replay/rekey-old-sa", "REKEY-OLD-SA"),
    ("rekey-keeps-old-sa", "psp-v0", "replay/rekey-old-sa", "REKEY-OLD-SA"),
    ("rekey-keeps-limits", "esp", "limits/rekey-limits-restart", "REKEY-LIMITS-RESTART"),
    ("rekey-keeps-limits", "esp-subsa-salt", "limits/rekey-limits-restart",
     "REKEY-LIMITS-RESTART"),
    ("rekey-keeps-limits", "esp", "limits/rekey-due-rekeys", "REKEY-DUE-LEADS-TO-REKEY"),
    ("rekey-keeps-limits", "eesp-v0", "limits/rekey-due-rekeys", "REKEY-DUE-LEADS-TO-REKEY"),
])
def test_each_rekey_mutant_fails_its_case(mutant, profile, case_id, requirement):
    r = _run(load_iut(f"mutant:{mutant}"), profile, case_id, strict=False)
    assert r.verdict is Verdict.FAIL, (r.verdict, r.message)
    assert r.findings[0].requirement == requirement, r.message
    assert requirement in CASES[case_id].requirements
    assert ("rekey", {}) in r.steps


def test_the_2pow64_cap_restarts_with_the_new_key():
    """On a shared key the limits case also reaches the 2^64 / N share: the model refuses
    there before the rekey and sends again after it (the reference), and a sender that
    keeps its counts is caught on the new key."""
    r = _run(load_iut("reference"), "esp-subsa-salt", "limits/rekey-limits-restart")
    assert r.verdict is Verdict.PASS
    # only the cap session: an IUT whose limits restart but not past 2^64 / N
    s = Session.open(load_iut("mutant:rekey-keeps-limits"), named("esp-subsa-salt"),
                     label="cap")
    share = (1 << 64) // 4
    s.jump_iut(3, share - 1)
    s.iut_send(3, 8)
    s.iut_send(3, 8)                   # refused by both
    s.rekey()
    with pytest.raises(ConformanceFailure) as info:
        s.iut_send(3, 8)
    assert info.value.findings[0].requirement == "REKEY-LIMITS-RESTART"


# --- replay and the results file ----------------------------------------------------------------

def test_a_rekey_step_replays():
    factory = load_iut("mutant:rekey-keeps-counter")
    r = _run(factory, "esp", "limits/rekey-fresh-counter", strict=False)
    assert r.verdict is Verdict.FAIL and ("rekey", {}) in r.steps
    again = replay(factory, r.ran_profile or named("esp"), r.steps, seed=3, session=r.session)
    assert [f.requirement for f in again if f.verdict is Verdict.FAIL] == ["REKEY-FRESH-COUNTER"]
    assert not [f for f in replay(load_iut("reference"), r.ran_profile or named("esp"),
                                  r.steps, seed=3, session=r.session)
                if f.verdict is Verdict.FAIL]
    # in a worker process too: the verb crosses the isolation boundary
    isolated = Isolated(factory, timeout=20)
    try:
        again = replay(isolated, named("esp"), r.steps, seed=3, session=r.session)
    finally:
        isolated.shutdown()
    assert [f.requirement for f in again if f.verdict is Verdict.FAIL] == ["REKEY-FRESH-COUNTER"]


def test_the_schema_accepts_the_rekey_step():
    assert schema.validate_step({"step": "rekey"}) == ("rekey", {})
    with pytest.raises(schema.BadStep, match="no argument"):
        schema.validate_step({"step": "rekey", "n": 1})
    steps = schema.validate_steps([{"step": "peer_send", "sub_sa": 0, "size": 8, "v6": False},
                                   {"step": "rekey"}, {"step": "deliver", "index": 0}])
    schema.check_steps_fit(steps, named("esp"))


def test_espspec_replay_reproduces_a_rekey_failure(tmp_path, capsys):
    iut = "mutant:rekey-keeps-window"
    r = _run(load_iut(iut), "esp", "replay/rekey-fresh-window", strict=False)
    assert r.verdict is Verdict.FAIL and ("rekey", {}) in r.steps
    path = write_json(tmp_path, [r], iut=iut, seed=3, strict=False, depth="ci",
                      profiles=["esp"])
    doc = schema.read_document(path)
    assert {"step": "rekey"} in doc["cases"][0]["steps"]
    args = ["replay", str(path), "--case", "replay/rekey-fresh-window", "--profile", "esp"]
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert "reproduced" in out and "REKEY-FRESH-WINDOW" in out
    assert cli.main(args + ["--iut", "reference"]) == 0
