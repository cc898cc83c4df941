"""The ``espspec`` command line.

Theory of operation: argparse front end over the model's tables. Subcommands print to
stdout and return an exit code: 0 success, 1 a finding (a FAIL), 2 bad usage. No
traceback reaches the user for bad input: expected errors become one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from spec_model import CATALOGUE, NAMED
from spec_model.errors import EspSpecError

from .tables import render

PROFILE_COLUMNS = ["framing", "seq", "subsa", "nonce", "kdf", "aead", "mode", "alignment",
                   "crypt_offset", "max_crypt_offset", "n_sub_sas", "window"]


def cmd_profiles(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({n: p.axes() for n, p in NAMED.items()}, indent=1))
        return 0
    rows = [[name] + [p.axes()[c] for c in PROFILE_COLUMNS] for name, p in NAMED.items()]
    print(render(["profile"] + PROFILE_COLUMNS, rows))
    return 0


def cmd_requirements(args: argparse.Namespace) -> int:
    reqs = [r for r in CATALOGUE.values()
            if (not args.severity or r.severity.value == args.severity)
            and (not args.level or r.level.value == args.level)]
    if args.json:
        print(json.dumps([{"id": r.id, "source": r.source, "level": r.level.value,
                           "severity": r.severity.value, "text": r.text} for r in reqs],
                         indent=1))
        return 0
    print(render(["id", "level", "severity", "source"],
                 [[r.id, r.level.value, r.severity.value, r.source] for r in reqs]))
    if args.verbose:
        print()
        for r in reqs:
            print(f"{r.id}: {r.text}")
    print(f"\n{len(reqs)} requirements")
    return 0


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
    from .iut import load_iut
    from .report import format_steps, summary, write_json
    from .runner import DEPTHS, failed, plan, run_case, select_profiles
    from suites import FAMILIES
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


def cmd_replay(args: argparse.Namespace) -> int:
    from .iut import load_iut
    from .report import format_steps, load_steps
    from .session import replay
    doc, profile, steps = load_steps(args.results, args.case, args.profile)
    iut = args.iut or doc["iut"]
    findings = replay(load_iut(iut), profile, steps, seed=doc.get("seed", 0),
                      strict=doc.get("strict", False))
    print(format_steps(steps, indent=""))
    failing = [f for f in findings if f.verdict.value == "FAIL"]
    for f in findings:
        print(f)
    print(f"{len(steps)} steps replayed against {iut}: "
          f"{'reproduced' if failing else 'no failure'}")
    return 1 if failing else 0


def cmd_mutants(args: argparse.Namespace) -> int:
    from .mutants import MUTANT_INFO
    print(render(["mutant", "family", "bug", "caught by"],
                 [[f"mutant:{m.name}", m.family, m.bug, ", ".join(m.requirements)]
                  for m in MUTANT_INFO.values()]))
    return 0


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="espspec", description="Conformance and fuzzing suite "
                                 "for IPsec ESP, sub-SAs, EESP and PSP")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profiles", help="list the named profiles and their axes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)
    r = sub.add_parser("requirements", help="print the requirement catalogue")
    r.add_argument("--json", action="store_true")
    r.add_argument("--severity", choices=sorted({q.severity.value for q in CATALOGUE.values()}))
    r.add_argument("--level", choices=["MUST", "SHOULD", "MAY"])
    r.add_argument("-v", "--verbose", action="store_true", help="also print each rule's text")
    r.set_defaults(func=cmd_requirements)
    run = sub.add_parser("run", help="run the suites against an implementation")
    run.add_argument("--iut", required=True, help="reference, scapy, mutant:NAME, an "
                     "espspec.iut entry point, or module:factory")
    run.add_argument("--profile", help="comma-separated named profiles (default: every "
                     "profile the IUT supports)")
    run.add_argument("--suite", help="comma-separated families: nonce,replay,limits,wire")
    run.add_argument("--strict", action="store_true", help="NON-STRICT counts as failure")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--depth", choices=["ci", "certify"], default="ci",
                     help="Hypothesis budget: ci (fast) or certify (deep)")
    run.add_argument("--report", metavar="DIR", help="write results.json into DIR")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)
    rp = sub.add_parser("replay", help="replay a failing case's steps from results.json")
    rp.add_argument("results")
    rp.add_argument("--case", required=True)
    rp.add_argument("--profile", required=True)
    rp.add_argument("--iut", help="another IUT than the one in the results")
    rp.set_defaults(func=cmd_replay)
    mu = sub.add_parser("mutants", help="list the seeded-bug mutants")
    mu.set_defaults(func=cmd_mutants)
    from .pcapcheck.cli import add_subcommands
    add_subcommands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (EspSpecError, UsageError, KeyError, OSError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"espspec: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
