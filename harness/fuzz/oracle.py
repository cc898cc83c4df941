"""An implementation's answers against the model's, packet by packet: the fuzz oracle.

Theory of operation: ``Pair`` is a fresh model receiver and a fresh IUT receiving the
same fuzz SA (``sas``), so every input is judged from the same state and a crash input
replays anywhere. Before the input, both get ``history`` -- sub-SA 0's counters 1, 2, 3
and W + 10, sealed by the model -- so the replay window has a top, a hole and a left edge
for the input to hit; then the input, then the input again (a replay). After each packet
``compare`` holds the IUT's answer against the model's: delivered by one and dropped by
the other, a different payload or next header, or (when the IUT names drop reasons) a
different reason -- too old and replayed count as one -- is a ``Disagreement``. Every
finding is a ``Finding`` (an AssertionError, so libFuzzer stops and saves the input);
its message is one line and names the level of the model's requirement. As in the
suites, only a disagreement the model's MUST rules decide is a finding by default; where
the model dropped under a SHOULD, MAY or espspec-strict rule the disagreement is counted
in ``NON_STRICT`` (a NON-STRICT verdict) and fuzzing goes on, unless ``STRICT``
(``ESPSPEC_FUZZ_STRICT=1``, as ``espspec run --strict``) makes every one a finding.
"""

from __future__ import annotations

import os
from collections import Counter

from spec_model import (CATALOGUE, Delivered, DropReason, Dropped, Level, Profile, Receiver,
                        Sender)

from ..contract import SaConfig
from .sas import SPI, history_counters, keymat, split


class Finding(AssertionError):
    """An input that shows a bug: in the model, in an IUT, or in a third-party parser."""


class Disagreement(Finding):
    """An implementation answered a packet otherwise than the model."""


class BadOutcome(Finding):
    """A receiver answered something that is neither Delivered nor Dropped."""


# ESPSPEC_FUZZ_STRICT=1: every disagreement is a finding (as `espspec run --strict`);
# otherwise one where the model dropped under a SHOULD, MAY or espspec-strict rule is
# counted in NON_STRICT and the run goes on, as the suites' NON-STRICT verdict does
STRICT = os.environ.get("ESPSPEC_FUZZ_STRICT", "") not in ("", "0")
NON_STRICT: Counter = Counter()


def binding(model) -> bool:
    """Whether a disagreement about this answer of the model is a finding: always under
    STRICT, else unless the model dropped the packet under a rule weaker than MUST."""
    if STRICT or not isinstance(model, Dropped):
        return True
    req = CATALOGUE.get(model.requirement)
    return req is None or req.level is Level.MUST


def _disagree(profile: Profile, model, message: str) -> None:
    if binding(model):
        raise Disagreement(message)
    NON_STRICT[model.requirement] += 1


def compare(profile: Profile, model, iut, *, reasons: bool, where: str) -> None:
    if not isinstance(model, (Delivered, Dropped)):
        raise BadOutcome(f"{where}: the model answered {model!r}")
    if not isinstance(iut, (Delivered, Dropped)):
        raise BadOutcome(f"{where}: the IUT answered {iut!r}")
    if isinstance(model, Delivered) != isinstance(iut, Delivered):
        return _disagree(profile, model, f"{profile.name} {where}: model {_say(model)}, "
                         f"IUT {_say(iut)}")
    if isinstance(model, Delivered):
        if (model.payload, model.next_header) != (iut.payload, iut.next_header):
            raise Disagreement(f"{profile.name} {where}: both delivered, the model "
                               f"{len(model.payload)} bytes nh {model.next_header}, the IUT "
                               f"{len(iut.payload)} bytes nh {iut.next_header}")
    elif reasons and iut.reason is not None and _family(iut.reason) != _family(model.reason):
        _disagree(profile, model, f"{profile.name} {where}: model {_say(model)}, "
                  f"IUT {_say(iut)}")


# drop reasons an implementation need not tell apart: a packet left of the window and a
# duplicate are both "sequence number check failed" to most (RFC 4303 §3.4.3 names one check)
_SAME = {DropReason.TOO_OLD: DropReason.REPLAY}


def _family(reason):
    return _SAME.get(reason, reason)


def _say(outcome) -> str:
    if isinstance(outcome, Delivered):
        return f"delivered {len(outcome.payload)} bytes"
    reason = outcome.reason.value if outcome.reason is not None else "dropped"
    req = CATALOGUE.get(outcome.requirement)
    level = f" {req.level.value}" if req is not None else ""     # MUST, SHOULD, strict
    return f"{reason} ({outcome.requirement or 'no requirement'}{level}: {outcome.detail})"


_HISTORY: dict[str, tuple[bytes, ...]] = {}


def history(profile: Profile) -> tuple[bytes, ...]:
    """Sub-SA 0's counters 1, 2, 3 and W + 10 (none without replay protection)."""
    hit = _HISTORY.get(profile.name)
    if hit is None:
        hit = ()
        if profile.replay_protected:
            tx = Sender(profile, keymat(profile), SPI)
            nh = None if profile.mode.value == "tunnel" else 17
            payload = bytes((0x45, 0, 0, 28)) + bytes(24)
            out = []
            for counter in history_counters(profile):
                tx.set_counter(0, counter - 1)
                out.append(tx.seal(0, payload, nh).wire)
            hit = tuple(out)
        _HISTORY[profile.name] = hit
    return hit


class Pair:
    """The model and an IUT, each with the fuzz SA of ``profile`` installed afresh.
    ``view(profile, model_outcome)`` is the model's answer as the IUT's transport can show
    it, or None when it cannot show it at all (a TUN device carries no next header in
    tunnel mode, and no packet that is not IP); without it, the answer as it is."""

    def __init__(self, profile: Profile, iut, view=None) -> None:
        self.profile = profile
        self.view = view
        k = keymat(profile)
        self.model = Receiver(profile, k, SPI)
        self.iut = iut
        caps = iut.capabilities()
        self.reasons = caps.reports_drop_reasons
        iut.install(SaConfig(profile, SPI + 0x100, k), SaConfig(profile, SPI, k))

    def feed(self, wire: bytes, where: str) -> None:
        model, iut = self.model.open(wire), self.iut.unprotect(wire)
        if self.view is not None:
            model = self.view(self.profile, model)
        if model is not None:
            compare(self.profile, model, iut, reasons=self.reasons, where=where)

    def judge(self, wire: bytes) -> None:
        for i, past in enumerate(history(self.profile)):
            self.feed(past, f"history packet {i + 1}")
        self.feed(wire, "the input")
        self.feed(wire, "the input again")


def iut_target(iut_name: str, view=None, judge=None):
    """``test_one_input`` holding the IUT ``iut_name`` (any ``--iut`` name) to the model:
    inputs of a profile the IUT lacks are skipped; each other one is a ``Pair``'s
    (``view`` as there), or goes to ``judge(iut, caps, profile, packet)`` when given.
    The IUT is made once and installed afresh per input; its capabilities are read once."""
    from ..loader import load_iut
    factory = load_iut(iut_name)
    caps = factory().capabilities()
    live = []

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        profile, packet = split(data)
        if caps.unsupported(profile):
            return
        if not live:
            live.append(factory())
        if judge is not None:
            judge(live[0], caps, profile, packet)
        else:
            Pair(profile, live[0], view).judge(packet)
    return test_one_input
