"""Runs suite cases against an IUT and collects verdicts.

Theory of operation: ``probe`` builds the IUT once to learn its name, version and
capabilities (or the finding that says why it cannot be built). ``run_case`` runs one case
on one profile and turns what happened into a ``CaseResult``: UNSUPPORTED when the IUT's
capabilities or the case's ``applies`` rule it out; FAIL (or NON-STRICT) with the
findings, the minimal step list, the label of the failing session and the IUT's evidence
of it (``ConformanceFailure.evidence``: files such as a pcap, or None) when a
``ConformanceFailure`` escaped (or an ``IutLost``: the IUT hung); ERROR when espspec
itself raised; else PASS, or the strongest non-failing verdict among collected findings. A
case opens its sessions through its ``CaseContext``, which numbers them, so each gets SAs
of its own. ``Depth`` is the Hypothesis budget (``ci`` fast, ``certify`` deep), everything
deterministic from the seed. Writing results is ``harness.results``' job.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from spec_model import NAMED, Profile

from ..contract import Capabilities, IutFactory
from .judge import Finding, Verdict
from .session import ConformanceFailure, IutLost, Session

VERDICT_ORDER = [Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED, Verdict.NON_STRICT,
                 Verdict.FAIL, Verdict.ERROR]


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
    session: str = ""                    # the label of the session the steps ran on
    evidence: dict[str, bytes] | None = None   # the IUT's evidence of the failing session


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
    case: str = "case"            # the case's ID: part of every session's label
    opened: int = 0               # sessions opened so far

    def session(self, profile: Profile | None = None) -> Session:
        """A fresh session: the IUT built and installed anew with SAs of its own, derived
        from the seed and the label ``case/profile#n`` (optionally with a variant of the
        profile, e.g. with limits set)."""
        self.opened += 1
        p = profile or self.profile
        return Session.open(self.factory, p, seed=self.seed, strict=self.strict,
                            sink=self.sink, label=f"{self.case}/{p.name}#{self.opened}")


@dataclass(frozen=True)
class Probe:
    """What building the IUT once told: its name, version and capabilities, or the
    failure (a finding with its requirement) that says why it could not be built."""
    name: str
    version: str | None
    caps: Capabilities | None
    failure: ConformanceFailure | None = None


def probe(factory: IutFactory, profile: Profile) -> Probe:
    """Build the IUT, ask its capabilities, close it -- every step judged like a verb."""
    s = Session.without_sas(profile)
    try:
        iut = s._call("constructor", factory)
        caps = s._call("capabilities", iut.capabilities)
        name = str(getattr(iut, "name", "") or type(iut).__name__)
        version = getattr(iut, "version", None)
        s._call("close", iut.close)
    except ConformanceFailure as failure:
        return Probe("?", None, None, failure)
    except IutLost as lost:
        return Probe("?", None, None, lost.failure)
    return Probe(name, str(version) if version is not None else None, caps)


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


def evidence_of(failure: BaseException) -> dict[str, bytes] | None:
    """The evidence the failing session gave: the failure's own, or, when a case raised
    a failure of its own while handling the session's (a scenario that names the rule
    first), that of the failure it was handling."""
    seen = set()
    while failure is not None and id(failure) not in seen:
        seen.add(id(failure))
        evidence = getattr(failure, "evidence", None)
        if evidence is not None:
            return evidence
        failure = failure.__cause__ or failure.__context__
    return None


def run_case(case, factory: IutFactory, profile: Profile, caps: Capabilities, *,
             seed: int, strict: bool, depth: Depth) -> CaseResult:
    base = dict(case=case.id, family=case.family, profile=profile.name,
                requirements=case.requirements)
    why = caps.unsupported(profile) or case.applies(profile, caps)
    if why:
        return CaseResult(**base, verdict=Verdict.UNSUPPORTED, message=why)
    sink: list[Finding] = []
    ctx = CaseContext(factory, profile, caps, seed=seed, strict=strict,
                      examples=depth.examples, steps=depth.steps, sink=sink, case=case.id)
    started = time.perf_counter()
    try:
        try:
            case.run(ctx)
        except IutLost as lost:
            raise lost.failure from None
    except ConformanceFailure as failure:
        verdict = max((f.verdict for f in failure.findings), key=VERDICT_ORDER.index)
        return CaseResult(**base, verdict=verdict, message=str(failure.findings[0]),
                          findings=failure.findings + sink, steps=failure.steps,
                          seconds=time.perf_counter() - started,
                          ran_profile=failure.profile, session=failure.session,
                          evidence=evidence_of(failure))
    except Exception as e:  # noqa: BLE001 -- espspec's own failure: ERROR, and the run goes on
        where = traceback.extract_tb(e.__traceback__)[-1]
        return CaseResult(**base, verdict=Verdict.ERROR,
                          message=f"espspec raised {type(e).__name__}: {e} "
                                  f"({where.filename}:{where.lineno})",
                          seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    verdicts = {f.verdict for f in sink}
    verdict = (Verdict.NON_STRICT if Verdict.NON_STRICT in verdicts
               else Verdict.INFO if Verdict.INFO in verdicts else Verdict.PASS)
    unique = list(dict.fromkeys(sink))[:20]
    return CaseResult(**base, verdict=verdict,
                      message=str(unique[0]) if unique else "", findings=unique,
                      seconds=seconds)


def failed(results: list[CaseResult], strict: bool) -> bool:
    bad = {Verdict.FAIL, Verdict.ERROR} | ({Verdict.NON_STRICT} if strict else set())
    return any(r.verdict in bad for r in results)


def nothing_tested(results: list[CaseResult]) -> bool:
    """Every case was ruled out (UNSUPPORTED): the run says nothing about the IUT."""
    return all(r.verdict is Verdict.UNSUPPORTED for r in results)
