"""The ``espspec`` command line.

Theory of operation: argparse front end; one module per group of subcommands (``run``,
``replay``, ``catalogue``; ``harness.pcapcheck.cli`` adds check-pcap and gen-pcap). Each
subcommand prints to stdout and returns its exit status: 0 success, 1 a finding (a FAIL),
2 bad usage, 3 nothing was tested, 130 interrupted (``run.EXIT``); 141 when the reader of
stdout went away. No traceback reaches the user for bad input: expected errors become one
line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from spec_model import CATALOGUE
from spec_model.requirements import Level
from spec_model.errors import EspSpecError

from .catalogue import cmd_mutants, cmd_profiles, cmd_requirements
from ..engine.isolation import DEFAULT_TIMEOUT
from .errors import UsageError
from .replay import cmd_replay
from .run import cmd_run


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), as every other error
    of espspec is; ``--help`` still prints the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _isolation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"deadline for each IUT verb (default {DEFAULT_TIMEOUT:g} s); a verb "
                   f"that does not answer in time is an IUT-HANG finding")
    p.add_argument("--in-process", action="store_true", help="call the IUT in espspec's "
                   "own process (for debugging): no deadline, and a crash of the IUT ends "
                   "espspec")


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="espspec", description="Conformance and fuzzing suite "
                                 "for IPsec ESP, sub-SAs, EESP and PSP")
    ap.add_argument("--version", action="version", version=f"espspec {version()}")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profiles", help="list the named profiles and their axes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)
    r = sub.add_parser("requirements", help="print the requirement catalogue")
    r.add_argument("--json", action="store_true")
    r.add_argument("--severity", choices=sorted({q.severity.value for q in CATALOGUE.values()}))
    r.add_argument("--level", choices=[level.value for level in Level])
    r.add_argument("-v", "--verbose", action="store_true", help="also print each rule's text")
    r.set_defaults(func=cmd_requirements)
    run = sub.add_parser("run", help="run the suites against an implementation")
    run.add_argument("--iut", required=True, help="reference, scapy, mutant:NAME, an "
                     "espspec.iut entry point, or module:factory")
    run.add_argument("--profile", help="comma-separated named profiles (default: every "
                     "profile the IUT supports)")
    run.add_argument("--suite", help="comma-separated families: nonce,replay,limits,wire")
    run.add_argument("--case", help="comma-separated case IDs (family/name, e.g. "
                     "replay/seq-zero): only these")
    run.add_argument("--strict", action="store_true", help="NON-STRICT counts as failure")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--depth", choices=["ci", "certify"], default="ci",
                     help="Hypothesis budget: ci (fast) or certify (deep)")
    run.add_argument("--report", metavar="DIR", help="write results.json into DIR")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _isolation_options(run)
    run.set_defaults(func=cmd_run)
    rp = sub.add_parser("replay", help="replay a failing case's steps from results.json")
    rp.add_argument("results")
    rp.add_argument("--case", required=True)
    rp.add_argument("--profile", required=True)
    rp.add_argument("--iut", help="the IUT to replay against; required when the results "
                    "name a module:factory IUT (only entry-point names are taken from a file)")
    _isolation_options(rp)
    rp.set_defaults(func=cmd_replay)
    mu = sub.add_parser("mutants", help="list the seeded-bug mutants")
    mu.set_defaults(func=cmd_mutants)
    from ..pcapcheck.cli import add_subcommands
    add_subcommands(sub)
    from .netns import add_subcommand as add_netns
    add_netns(sub)
    from .daemon import add_subcommand as add_daemon
    add_daemon(sub)
    from .probe import add_subcommand as add_probe
    add_probe(sub, _isolation_options)
    from .interop import add_subcommand as add_interop
    add_interop(sub)
    from .fuzz import add_subcommand as add_fuzz
    add_fuzz(sub)
    return ap


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as dist_version
    try:
        return dist_version("espspec")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()               # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:              # `espspec mutants | head`: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141                       # as a process killed by SIGPIPE (128 + 13)
    except (EspSpecError, UsageError, KeyError, OSError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"espspec: {str(msg).splitlines()[0] if str(msg) else msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
