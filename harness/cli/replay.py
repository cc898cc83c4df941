"""``espspec replay``: one failing case's steps from a results document, run again.

Theory of operation: ``cmd_replay`` reads one case through ``load_steps``, which checks
the whole file (size, JSON, schema, every step's arguments and bounds, the steps against
the profile they ran on) before anything in it is used. It then picks the IUT: the one
named with ``--iut``, or else the one the file names, but only when that is a name
``harness.loader`` resolves through installed entry points (``reference``, ``scapy``,
``mutant:NAME``, a vendor's registered adapter). A ``module:factory`` in a file would
import and call arbitrary code, so it is refused with a one-line error asking for
``--iut``; the spec is not imported to find out. The steps run through the engine's
``replay`` (with the session label they ran under, so the SAs are the same), in a worker
process with a deadline per verb as ``espspec run`` does unless ``--in-process``, and the
command says whether the failure reproduced (exit 1) or not (exit 0).
Every refusal is an exception the command line prints as one line with exit status 2.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points

from spec_model.errors import EspSpecError

from .errors import UsageError


class StepsDoNotRun(EspSpecError):
    """The engine could not run the file's steps (they fit no session of this IUT)."""


def entry_point_iut(spec: str) -> bool:
    """True when ``harness.loader.load_iut`` would find ``spec`` through an entry point
    (``NAME`` in ``espspec.iut``, ``FAMILY:ARG`` with ``FAMILY`` in
    ``espspec.iut_family``) rather than by importing a module. Loads nothing."""
    from ..loader import FAMILY_GROUP, GROUP
    if any(ep.name == spec for ep in entry_points(group=GROUP)):
        return True
    family, colon, _ = spec.partition(":")
    return bool(colon) and any(ep.name == family for ep in entry_points(group=FAMILY_GROUP))


def iut_to_replay(given: str | None, in_file: str) -> str:
    """The IUT spec to load: ``--iut`` when given, else the file's when it is safe."""
    if given:
        return given
    if entry_point_iut(in_file):
        return in_file
    raise UsageError(f"the results file names IUT {in_file!r}, which is not an installed "
                     f"entry point; pass --iut to say what to replay against")


def cmd_replay(args: argparse.Namespace) -> int:
    from ..loader import load_iut
    from ..results.document import load_steps
    from ..results.text import format_steps
    from ..engine.isolation import Isolated
    from ..engine.session import replay
    loaded = load_steps(args.results, args.case, args.profile)
    iut = iut_to_replay(args.iut, loaded.iut)
    factory = load_iut(iut)
    isolated = None if args.in_process else Isolated(factory, args.timeout)
    try:
        findings = replay(isolated or factory, loaded.profile, list(loaded.steps),
                          seed=loaded.seed, strict=loaded.strict, session=loaded.session)
    except (ArithmeticError, LookupError) as e:
        # steps that passed the schema but still do not run, e.g. a packet delivered from
        # an empty in-flight list after a peer_send the model refused
        raise StepsDoNotRun(f"the steps of {args.case} on {args.profile} do not run against "
                            f"{iut}: {type(e).__name__}: {e}") from None
    finally:
        if isolated is not None:
            isolated.shutdown()
    print(format_steps(list(loaded.steps), indent="") if loaded.steps else
          "(no steps: the failure came while the IUT was built or its SAs installed)")
    failing = [f for f in findings if f.verdict.value == "FAIL"]
    for f in findings:
        print(f)
    print(f"{len(loaded.steps)} steps replayed against {iut}: "
          f"{'reproduced' if failing else 'no failure'}")
    return 1 if failing else 0
