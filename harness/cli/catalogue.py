"""``espspec profiles``, ``requirements`` and ``mutants``: the model's tables, printed.

Theory of operation: each command renders one table of the model (or the mutant registry)
as text or JSON on stdout and returns 0.
"""

from __future__ import annotations

import argparse
import json

from spec_model import CATALOGUE, NAMED

from ..tables import render

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


def cmd_mutants(args: argparse.Namespace) -> int:
    from ..mutants import MUTANT_INFO
    print(render(["mutant", "family", "bug", "caught by"],
                 [[f"mutant:{m.name}", m.family, m.bug, ", ".join(m.requirements)]
                  for m in MUTANT_INFO.values()]))
    return 0
