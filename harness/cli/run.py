"""``espspec run``: the suites against an IUT.

Theory of operation: ``cmd_run`` selects profiles and cases, runs each through the engine's
runner, shows progress, prints the summary and the failures, writes the results document
and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys

from .errors import UsageError


def _progress(i: int, total: int, label: str, stream=sys.stderr) -> None:
    width = 24
    done = width * i // max(total, 1)
    line = f"[{'#' * done}{'.' * (width - done)}] {i}/{total} {label}"
    if stream.isatty():
        stream.write("\r" + line[:100].ljust(100))
        if i == total:
            stream.write("\n")
    else:
        stream.write(line + "\n")
    stream.flush()


def cmd_run(args: argparse.Namespace) -> int:
    from ..loader import load_iut
    from ..results.document import write_json
    from ..results.text import format_steps, summary
    from ..engine.runner import DEPTHS, failed, run_case, select_profiles
    from suites import FAMILIES, plan
    factory = load_iut(args.iut)
    caps = factory().capabilities()
    families = args.suite.split(",") if args.suite else list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise UsageError(f"unknown suite {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    profiles = select_profiles(caps, args.profile.split(",") if args.profile else None)
    if not profiles:
        raise UsageError(f"IUT {args.iut} supports none of the named profiles")
    cases = plan(families)
    work = [(c, p) for p in profiles for c in cases]
    results = []
    for i, (case, profile) in enumerate(work, 1):
        r = run_case(case, factory, profile, caps, seed=args.seed, strict=args.strict,
                     depth=DEPTHS[args.depth])
        results.append(r)
        if not args.quiet:
            _progress(i, len(work), f"{r.verdict.value:11} {profile.name} {case.id}")
    print(summary(results))
    for r in results:
        if r.verdict.value in ("FAIL", "NON-STRICT"):
            print(f"{r.verdict.value} {r.profile} {r.case}: {r.message}")
            if r.steps:
                print(format_steps(r.steps))
    if args.report:
        path = write_json(args.report, results, iut=args.iut, seed=args.seed,
                          strict=args.strict, depth=args.depth,
                          profiles=[p.name for p in profiles])
        print(f"results: {path}")
    return 1 if failed(results, args.strict) else 0
