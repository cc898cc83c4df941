"""The lockstep driver: Hypothesis explores scenarios, the model judges every step.

Theory of operation: ``machine_for`` builds a ``RuleBasedStateMachine`` class for one case
context (IUT, profile, seed, budget) and one suite family. Each example opens a fresh
``Session`` of the case (an IUT installed with SAs of its own) and Hypothesis picks moves
from the family's rules: the IUT sends on a sub-SA, the peer sends, in-flight packets are delivered in any order,
duplicated, dropped, held past the window, bit-flipped, given a forged sequence number or
another sub-SA's label, and counters jump near 2^32, 2^64 and the limits. Every move is
judged at once (``Session.judge_all``), so a failure raises ``ConformanceFailure`` with
the step log; Hypothesis shrinks it to a minimal list, and the last failure raised is the
minimal one, which ``run`` returns. Which rules a family uses is the table ``FAMILY_RULES``.
Hypothesis's ``Flaky`` (the same steps answered differently) is turned into an
IUT-NONDETERMINISTIC failure with both answers, never an error of espspec.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, Verbosity, settings as hsettings, strategies as st
from hypothesis import seed as hseed
from hypothesis.errors import Flaky
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from spec_model import Profile, SeqWire
from spec_model.replay import WINDOW_SLACK

from ..contract import Capabilities
from .judge import Finding
from .session import ConformanceFailure, rerun

MTU = 1400


def _sizes():
    return st.one_of(st.integers(0, 64), st.integers(0, MTU))


def _rules(profile: Profile, caps: Capabilities) -> dict[str, object]:
    """Every rule, as functions over ``self.session``; families pick from these."""
    n = profile.n_sub_sas
    sub_sa = st.integers(0, n - 1)
    index = st.integers(0, 1 << 16)
    w = max(profile.window, 1)
    in_flight = precondition(lambda self: self.session.in_flight)
    jumps = [(1 << 32) - 2, (1 << 64) - 2]
    for limit in (profile.hard_packets, profile.soft_packets):
        if limit:
            jumps += [max(0, limit // n - 1), max(0, limit - 1)]

    def iut_send(self, sub_sa, size, v6):
        self.session.iut_send(sub_sa, size, v6)

    def peer_send(self, sub_sa, size, v6):
        self.session.peer_send(sub_sa, size, v6)

    def deliver(self, index):
        self.session.deliver(index)

    def duplicate(self, index):
        self.session.duplicate(index)

    def drop(self, index):
        self.session.drop(index)

    def flip_bits(self, index, bit):
        self.session.deliver_changed(index, "flip", bit)

    def forge_seq(self, index, delta):
        self.session.deliver_changed(index, "forge-seq", delta)

    def relabel(self, index, other):
        self.session.deliver_changed(index, "relabel", other)

    def hold_past_window(self, sub_sa, extra):
        self.session.hold_past_window(sub_sa, extra)

    def jump_iut(self, sub_sa, value):
        self.session.jump_iut(sub_sa, value)

    def jump_peer(self, sub_sa, delta):
        self.session.jump_peer(sub_sa, delta)

    kinds = caps.inner_v6(profile) or (False,)
    v6 = st.booleans() if len(kinds) == 2 else st.just(kinds[0])   # booleans: as before
    return {
        "iut_send": rule(sub_sa=sub_sa, size=_sizes(), v6=v6)(iut_send),
        "peer_send": rule(sub_sa=sub_sa, size=_sizes(), v6=v6)(peer_send),
        "deliver": in_flight(rule(index=index)(deliver)),
        "duplicate": in_flight(rule(index=index)(duplicate)),
        "drop": in_flight(rule(index=index)(drop)),
        "flip_bits": in_flight(rule(index=index, bit=st.integers(0, 1 << 14))(flip_bits)),
        "forge_seq": in_flight(rule(index=index, delta=st.sampled_from(
            [1, w - 1, w, w + 1, 1 << 20, 1 << 31, 1 << 32]))(forge_seq)),
        "relabel": in_flight(rule(index=index, other=st.integers(1, max(1, n - 1)))(relabel)),
        "hold_past_window": rule(sub_sa=sub_sa, extra=st.sampled_from(
            [-1, 0, 1, WINDOW_SLACK]))(
            hold_past_window),
        "jump_iut": rule(sub_sa=sub_sa, value=st.sampled_from(jumps))(jump_iut),
        "jump_peer": rule(sub_sa=sub_sa, delta=st.sampled_from(
            [w - 1, w, w + 1, (1 << 31) - w - 2]))(jump_peer),
    }


FAMILY_RULES = {
    "nonce": ("iut_send", "jump_iut"),
    "replay": ("peer_send", "deliver", "duplicate", "drop", "hold_past_window", "flip_bits",
               "forge_seq", "relabel", "jump_peer"),
    "limits": ("iut_send", "jump_iut"),
    "wire": ("iut_send", "peer_send", "deliver", "flip_bits", "forge_seq", "relabel"),
    "all": ("iut_send", "peer_send", "deliver", "duplicate", "drop", "hold_past_window",
            "flip_bits", "forge_seq", "relabel", "jump_iut", "jump_peer"),
}


def machine_for(ctx, family: str = "all",
                failures: list | None = None) -> type[RuleBasedStateMachine]:
    """The state machine of one family over ``ctx`` (a ``runner.CaseContext``): every
    example is a fresh session of the case; the failure that ended an example, if any, is
    appended to ``failures``."""
    profile = ctx.profile
    rules = _rules(profile, ctx.caps)
    chosen = {name: rules[name] for name in FAMILY_RULES[family]}
    if profile.seq is SeqWire.NONE:       # nothing to forge without a sequence number
        chosen.pop("forge_seq", None)
        chosen.pop("hold_past_window", None)

    def __init__(self):
        RuleBasedStateMachine.__init__(self)
        self.session = None
        try:
            self.session = ctx.session()
        except ConformanceFailure as failure:
            if failures is not None:
                failures.append(failure)
            raise

    def teardown(self):
        if self.session is None:
            return
        try:
            self.session.close()
        finally:
            if failures is not None and self.session.failure is not None:
                failures.append(self.session.failure)

    name = f"Lockstep_{family}_{profile.name}".replace("-", "_").replace("+", "_")
    return type(name, (RuleBasedStateMachine,), {"__init__": __init__, "teardown": teardown,
                                                 **chosen})


@dataclass
class LockstepResult:
    failure: ConformanceFailure | None
    examples: int


def run(ctx, family: str = "all") -> LockstepResult:
    """Explore with the budget of ``ctx``; return the minimal failure (if any) after
    Hypothesis shrank it. Findings that do not fail the run (INFO, NON-STRICT) go to
    ``ctx.sink``. An IUT that answers the same steps differently makes Hypothesis give up
    (``Flaky``): that becomes an IUT-NONDETERMINISTIC failure with both answers."""
    failures: list[ConformanceFailure] = []
    machine = hseed(ctx.seed)(machine_for(ctx, family, failures))
    count = {"n": 0}
    original_init = machine.__init__

    def counting_init(self):
        count["n"] += 1
        original_init(self)
    machine.__init__ = counting_init
    settings = hsettings(max_examples=ctx.examples, stateful_step_count=ctx.steps,
                         deadline=None, database=None, verbosity=Verbosity.quiet,
                         report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                         phases=[Phase.explicit, Phase.generate, Phase.shrink])
    try:
        run_state_machine_as_test(machine, settings=settings)
    except ConformanceFailure as failure:
        return LockstepResult(confirmed(ctx, failure), count["n"])
    except Flaky as flaky:
        return LockstepResult(nondeterminism(ctx, failures, flaky), count["n"])
    return LockstepResult(None, count["n"])


CONFIRMATIONS = 2     # reruns of a minimal failure before it is reported


def confirmed(ctx, failure: ConformanceFailure) -> ConformanceFailure:
    """The minimal failure, run again on fresh sessions with the same SAs: the same
    failure each time, or the IUT-NONDETERMINISTIC failure with both answers."""
    again = _rerun_until_it_differs(ctx, failure, CONFIRMATIONS)
    if not differs(failure, again):
        return failure
    return ConformanceFailure([Finding.of("IUT-NONDETERMINISTIC",
                                          compare_answers(failure, again))],
                              failure.steps, failure.profile, failure.session,
                              failure.answers)


def _rerun_until_it_differs(ctx, failure: ConformanceFailure, tries: int):
    """Run ``failure``'s steps again on fresh sessions with the same SAs, up to ``tries``
    times; the first outcome that differs, else the last."""
    again = None
    for _ in range(tries):
        again = rerun(ctx.factory, failure.profile or ctx.profile, failure.steps, ctx.seed,
                      ctx.strict, failure.session)
        if differs(failure, again):
            break
    return again


def nondeterminism(ctx, failures: list[ConformanceFailure], flaky: Flaky
                   ) -> ConformanceFailure:
    """The IUT-NONDETERMINISTIC failure: the first failure Hypothesis saw, its steps run
    again on a fresh session with the same SAs, and where the two answers part."""
    if not failures:
        first_line = str(flaky).strip().splitlines()[0] if str(flaky).strip() else ""
        return ConformanceFailure([Finding.of(
            "IUT-NONDETERMINISTIC", f"Hypothesis saw the IUT answer the same steps "
            f"differently ({type(flaky).__name__}: {first_line[:200]})")], [], ctx.profile)
    first = failures[0]
    again = _rerun_until_it_differs(ctx, first, CONFIRMATIONS + 1)
    return ConformanceFailure([Finding.of("IUT-NONDETERMINISTIC",
                                          compare_answers(first, again))],
                              first.steps, first.profile, first.session, first.answers)


def differs(first: ConformanceFailure, again) -> bool:
    """Did a rerun of ``first``'s steps answer or end otherwise?"""
    if not isinstance(again, ConformanceFailure):
        return True
    return (again.answers != first.answers
            or [f.requirement for f in again.findings] != [f.requirement for f in first.findings])


def compare_answers(first: ConformanceFailure, again) -> str:
    """Both answers to the same steps, from the first answer where they differ."""
    told = "; ".join(f.requirement for f in first.findings)
    n = len(first.steps)
    steps = f"{n} step" + ("" if n == 1 else "s")
    other = getattr(again, "answers", [])
    for i, (a, b) in enumerate(zip(first.answers, other)):
        if a != b:
            return (f"the same {steps} got different answers: answer "
                    f"{i + 1} was '{a}' the first time and '{b}' when run again "
                    f"(first run: {told})")
    if isinstance(again, ConformanceFailure) and differs(first, again):
        return (f"the same {steps} failed differently: first "
                f"{told}, then {'; '.join(f.requirement for f in again.findings)}")
    if isinstance(again, ConformanceFailure):
        return (f"Hypothesis saw the same {steps} both fail and pass; each rerun here "
                f"failed the same way ({told})")
    return (f"the same {steps} failed the first time ({told}) and "
            f"passed when run again on a fresh SA")
