"""The lockstep driver: Hypothesis explores scenarios, the model judges every step.

Theory of operation: ``machine_for`` builds a ``RuleBasedStateMachine`` class for one IUT,
one profile and one suite family. Each example opens a fresh ``Session`` (IUT installed
with deterministic keys) and Hypothesis picks moves from the family's rules: the IUT
sends on a sub-SA, the peer sends, in-flight packets are delivered in any order,
duplicated, dropped, held past the window, bit-flipped, given a forged sequence number or
another sub-SA's label, and counters jump near 2^32, 2^64 and the limits. Every move is
judged at once (``Session.judge_all``), so a failure raises ``ConformanceFailure`` with
the step log; Hypothesis shrinks it to a minimal list, and the last failure raised is the
minimal one, which ``run`` returns. Which rules a family uses is the table ``FAMILY_RULES``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, Verbosity, settings as hsettings, strategies as st
from hypothesis import seed as hseed
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from spec_model import Profile, SeqWire

from ..contract import IutFactory
from .session import ConformanceFailure, Session

MTU = 1400


def _sizes():
    return st.one_of(st.integers(0, 64), st.integers(0, MTU))


def _rules(profile: Profile) -> dict[str, object]:
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

    v6 = st.booleans()
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
        "hold_past_window": rule(sub_sa=sub_sa, extra=st.sampled_from([-1, 0, 1]))(
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


def machine_for(factory: IutFactory, profile: Profile, family: str = "all",
                seed: int = 0, strict: bool = False,
                sink: list | None = None) -> type[RuleBasedStateMachine]:
    rules = _rules(profile)
    chosen = {name: rules[name] for name in FAMILY_RULES[family]}
    if profile.seq is SeqWire.NONE:       # nothing to forge without a sequence number
        chosen.pop("forge_seq", None)
        chosen.pop("hold_past_window", None)

    def __init__(self):
        RuleBasedStateMachine.__init__(self)
        self.session = Session.open(factory, profile, seed=seed, strict=strict, sink=sink)

    def teardown(self):
        self.session.close()

    name = f"Lockstep_{family}_{profile.name}".replace("-", "_").replace("+", "_")
    return type(name, (RuleBasedStateMachine,), {"__init__": __init__, "teardown": teardown,
                                                 **chosen})


@dataclass
class LockstepResult:
    failure: ConformanceFailure | None
    examples: int


def run(factory: IutFactory, profile: Profile, family: str = "all", *, seed: int = 0,
        examples: int = 30, steps: int = 40, strict: bool = False,
        sink: list | None = None) -> LockstepResult:
    """Explore; return the minimal failure (if any) after Hypothesis shrank it.
    Findings that do not fail the run (INFO, NON-STRICT) go to ``sink``."""
    machine = hseed(seed)(machine_for(factory, profile, family, seed, strict, sink))
    count = {"n": 0}
    original_init = machine.__init__

    def counting_init(self):
        count["n"] += 1
        original_init(self)
    machine.__init__ = counting_init
    settings = hsettings(max_examples=examples, stateful_step_count=steps, deadline=None,
                         database=None, verbosity=Verbosity.quiet, report_multiple_bugs=False,
                         suppress_health_check=list(HealthCheck),
                         phases=[Phase.explicit, Phase.generate, Phase.shrink])
    try:
        run_state_machine_as_test(machine, settings=settings)
    except ConformanceFailure as failure:
        return LockstepResult(failure, count["n"])
    return LockstepResult(None, count["n"])
