"""Runs suite cases against an IUT and collects verdicts.

Theory of operation: ``plan`` crosses the selected profiles with the selected families'
cases; ``run_case`` runs one and turns what happened into a ``CaseResult``: UNSUPPORTED
when the IUT's capabilities or the case's ``applies`` rule it out; FAIL (or NON-STRICT)
with the findings and the minimal step list when a ``ConformanceFailure`` escaped; else
PASS, or the strongest non-failing verdict among collected findings. ``Depth`` is the
Hypothesis budget (``ci`` fast, ``certify`` deep), everything deterministic from the seed.
Writing reports is ``report.py``'s job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from spec_model import NAMED, Profile

from ..contract import Capabilities, IutFactory
from .judge import Finding, Verdict
from .session import ConformanceFailure, Session

VERDICT_ORDER = [Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED, Verdict.NON_STRICT,
                 Verdict.FAIL]


@dataclass(frozen=True)
class Depth:
    examples: int
    steps: int


DEPTHS = {"ci": Depth(examples=25, steps=30), "certify": Depth(examples=400, steps=100)}


@dataclass
class CaseResult:
    case: str
    family: str
    profile: str
    requirements: tuple[str, ...]
    verdict: Verdict
    message: str = ""
    findings: list[Finding] = field(default_factory=list)
    steps: list[tuple[str, dict]] = field(default_factory=list)
    seconds: float = 0.0
    ran_profile: Profile | None = None   # the profile the failing steps ran on (a variant?)


@dataclass
class CaseContext:
    factory: IutFactory
    profile: Profile
    caps: Capabilities
    seed: int = 0
    strict: bool = False
    examples: int = 30
    steps: int = 40
    sink: list | None = None      # findings that do not fail the case

    def session(self, profile: Profile | None = None) -> Session:
        """A fresh session: the IUT installed anew with the run's keys (optionally with a
        variant of the profile, e.g. with limits set)."""
        return Session.open(self.factory, profile or self.profile, seed=self.seed,
                            strict=self.strict, sink=self.sink)


def select_profiles(caps: Capabilities, names: list[str] | None) -> list[Profile]:
    """The named profiles asked for, or every named profile the IUT supports. The name
    ``pairwise`` stands for the pairwise-covering set (harness.engine.pairwise) the IUT supports."""
    if not names:
        return [p for p in NAMED.values() if caps.unsupported(p) is None]
    from spec_model import named
    out = []
    for n in names:
        if n == "pairwise":
            from .pairwise import pairwise_profiles
            out += [p for p in pairwise_profiles() if caps.unsupported(p) is None]
        else:
            out.append(named(n))
    return out


def run_case(case, factory: IutFactory, profile: Profile, caps: Capabilities, *,
             seed: int, strict: bool, depth: Depth) -> CaseResult:
    base = dict(case=case.id, family=case.family, profile=profile.name,
                requirements=case.requirements)
    why = caps.unsupported(profile) or case.applies(profile, caps)
    if why:
        return CaseResult(**base, verdict=Verdict.UNSUPPORTED, message=why)
    sink: list[Finding] = []
    ctx = CaseContext(factory, profile, caps, seed=seed, strict=strict,
                      examples=depth.examples, steps=depth.steps, sink=sink)
    started = time.perf_counter()
    try:
        case.run(ctx)
    except ConformanceFailure as failure:
        verdict = max((f.verdict for f in failure.findings), key=VERDICT_ORDER.index)
        return CaseResult(**base, verdict=verdict, message=str(failure.findings[0]),
                          findings=failure.findings + sink, steps=failure.steps,
                          seconds=time.perf_counter() - started,
                          ran_profile=failure.profile)
    seconds = time.perf_counter() - started
    verdicts = {f.verdict for f in sink}
    verdict = (Verdict.NON_STRICT if Verdict.NON_STRICT in verdicts
               else Verdict.INFO if Verdict.INFO in verdicts else Verdict.PASS)
    unique = list(dict.fromkeys(sink))[:20]
    return CaseResult(**base, verdict=verdict,
                      message=str(unique[0]) if unique else "", findings=unique,
                      seconds=seconds)


def failed(results: list[CaseResult], strict: bool) -> bool:
    bad = {Verdict.FAIL} | ({Verdict.NON_STRICT} if strict else set())
    return any(r.verdict in bad for r in results)
