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
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EspSpecError as e:
        print(f"espspec: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
