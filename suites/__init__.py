"""The conformance cases users run against their implementation.

Theory of operation: a case is a named scenario in one family (nonce, replay, limits,
wire), tagged with the requirement IDs it tests. ``CASES`` is the registry the ``case``
decorator fills; importing this package imports every family module, and ``rekey``,
whose cases join the limits and replay families. A case gets a
``CaseContext`` and either returns normally (PASS, or the INFO/NON-STRICT findings the
session collected) or lets a ``ConformanceFailure`` escape (FAIL, with the step list).
``applies`` says why a case cannot run on a profile or IUT (-> UNSUPPORTED). Directed
cases build one scenario by hand with a ``Session``; the lockstep cases hand the family's
rules to Hypothesis (``harness.engine.lockstep``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness.contract import Capabilities
from harness.engine.runner import CaseContext
from spec_model import Profile

FAMILIES = ("nonce", "replay", "limits", "wire")

__all__ = ["CASES", "FAMILIES", "Case", "CaseContext", "case", "plan"]


@dataclass(frozen=True)
class Case:
    id: str
    family: str
    requirements: tuple[str, ...]
    run: Callable[[CaseContext], None]
    applies: Callable[[Profile, Capabilities], str | None]
    doc: str = ""


CASES: dict[str, Case] = {}


def plan(families) -> list[Case]:
    """The cases of the given families, in registration order."""
    return [c for c in CASES.values() if c.family in families]


def always(profile: Profile, caps: Capabilities) -> str | None:
    return None


def case(family: str, name: str, requirements: tuple[str, ...],
         applies: Callable[[Profile, Capabilities], str | None] = always):
    """Register a case function under ``family/name``."""
    assert family in FAMILIES, family

    def register(fn: Callable[[CaseContext], None]) -> Callable[[CaseContext], None]:
        cid = f"{family}/{name}"
        assert cid not in CASES, cid
        CASES[cid] = Case(cid, family, requirements, fn, applies, (fn.__doc__ or "").strip())
        return fn
    return register


def _load() -> None:
    from . import lockstep_cases  # noqa: F401
    for family in FAMILIES:
        try:
            __import__(f"{__name__}.{family}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{family}":
                raise
    from . import rekey  # noqa: F401 -- its cases join the limits and replay families


_load()
