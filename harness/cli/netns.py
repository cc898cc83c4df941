"""``espspec netns``: the network namespaces espspec made, listed or removed.

Theory of operation: ``--list`` prints one line per namespace whose name starts with the
prefix (default ``espspec-``, every run's), with the run that made it and the processes
inside; ``--cleanup`` removes them (``harness.net.leftovers``), one line per thing
removed, skipping namespaces whose run is still alive unless ``--force``. Exit 0 when
nothing of the prefix is left behind, 1 when something could not be removed.
"""

from __future__ import annotations

import argparse
import sys

from ..net import leftovers
from ..net.errors import NetError
from ..net.topology import PREFIX
from .errors import UsageError


def add_subcommand(sub) -> None:
    p = sub.add_parser("netns", help="list or remove the network namespaces of espspec runs")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="list them")
    what.add_argument("--cleanup", action="store_true", help="remove them (and the "
                      "processes inside, by PID)")
    p.add_argument("--prefix", default=PREFIX, help=f"only namespaces whose names start "
                   f"with this (default {PREFIX!r}: every run's)")
    p.add_argument("--force", action="store_true", help="also remove the namespaces of "
                   "runs that are still alive")
    p.set_defaults(func=cmd_netns)


def cmd_netns(args: argparse.Namespace) -> int:
    if not args.prefix.startswith(PREFIX):
        raise UsageError(f"--prefix must start with {PREFIX!r} (espspec removes only its "
                         f"own namespaces)")
    found = leftovers.find(args.prefix)
    if args.list:
        for left in found:
            owner = "" if left.owner is None else \
                f" run {left.owner} {'alive' if left.owner_alive else 'gone'}"
            pids = " pids " + ",".join(map(str, left.pids)) if left.pids else ""
            where = "" if left.kind == "namespace" else f" ({left.kind} in the temporary directory)"
            print(f"{left.name}{where}{owner}{pids}")
        return 0
    failed = 0
    for left in found:
        if left.owner_alive and not args.force:
            print(f"kept {left.kind} {left.name}: run {left.owner} is still alive "
                  f"(--force removes it)")
            continue
        try:
            for line in leftovers.remove(left):
                print(line)
        except NetError as e:
            failed += 1
            print(f"espspec: could not remove {left.name}: {e}", file=sys.stderr)
    return 1 if failed else 0
