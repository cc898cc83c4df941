"""``espspec fuzz``: list, run, seed and measure the atheris targets.

Theory of operation: ``--list`` prints the targets ``harness.fuzz.registry`` reads from
their scripts. ``espspec fuzz TARGET [libFuzzer flags] [corpus folders or inputs]``
replaces this process with the target's script (``exec``), with the Python that runs
espspec first on PATH, so that the script's ``#!/usr/bin/env python3`` -- and every copy
libFuzzer starts for ``-fork`` or ``-jobs`` -- finds the same environment. Everything
after TARGET goes to libFuzzer as it is: a file runs that one input (a crash
reproduction), ``-minimize_crash=1`` shrinks one. ``--make-corpus`` writes the shipped
seeds; ``--stats`` prints the figures of ``harness.fuzz.stats``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from ..fuzz import registry
from ..tables import render
from .errors import UsageError


def add_subcommand(sub) -> None:
    p = sub.add_parser("fuzz", help="run a coverage-guided fuzz target (atheris/libFuzzer)",
                       description="Run TARGET under libFuzzer; every argument after it "
                       "goes to libFuzzer (flags such as -runs=N, -max_total_time=S, "
                       "-fork=N, -jobs=N, -artifact_prefix=DIR/, -minimize_crash=1, then "
                       "corpus folders or input files).")
    p.add_argument("--list", action="store_true", help="list the targets")
    p.add_argument("--make-corpus", action="store_true", help="rewrite the shipped seeds "
                   "under corpora/<target>/")
    p.add_argument("--stats", action="store_true", help="measure every target (or the "
                   "ones named): exec/s, coverage features, spec_model lines reached by the "
                   "corpus, time to rediscover each receiver-side mutant")
    p.add_argument("--runs", type=int, default=20000, help="inputs per target for --stats "
                   "(default 20000)")
    p.add_argument("--rediscover-seconds", type=float, default=60.0, help="--stats: give "
                   "up on a mutant after this long (default 60)")
    p.add_argument("target", nargs="?", help="the target (see --list)")
    p.add_argument("libfuzzer", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_fuzz)


def cmd_fuzz(args: argparse.Namespace) -> int:
    if args.list:
        rows = [[t.name, t.needs or "-", t.summary] for t in registry.targets().values()]
        print(render(["target", "needs", "what"], rows))
        return 0
    if args.make_corpus:
        from ..fuzz.seeds import write_all
        for name, n in write_all().items():
            print(f"corpora/{name}/: {n} seeds")
        return 0
    if importlib.util.find_spec("atheris") is None:
        raise UsageError("atheris is not installed in this environment: pip install -e "
                         "'.[fuzz]'")
    if args.stats:
        from ..fuzz.stats import print_stats
        rest = argparse.ArgumentParser(prog="espspec fuzz --stats", add_help=False)
        rest.add_argument("--runs", type=int, default=args.runs)
        rest.add_argument("--rediscover-seconds", type=float, default=args.rediscover_seconds)
        rest.add_argument("names", nargs="*")
        more, unknown = rest.parse_known_args([a for a in [args.target, *args.libfuzzer] if a])
        if unknown:
            raise UsageError(f"--stats takes target names, --runs and --rediscover-seconds, "
                             f"not {' '.join(unknown)}")
        for n in more.names:
            registry.target(n)
        return print_stats(more.names, runs=more.runs, give_up=more.rediscover_seconds)
    if not args.target:
        raise UsageError("name a target (espspec fuzz --list), or give --list, "
                         "--make-corpus or --stats")
    try:
        t = registry.target(args.target)
    except registry.UnknownTarget as e:
        raise UsageError(str(e)) from None
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    sys.stdout.flush()
    sys.stderr.flush()
    if os.access(t.path, os.X_OK):
        os.execve(t.path, [str(t.path), *args.libfuzzer], env)
    # an installation that lost the executable bit: -fork and -jobs need it, the rest not
    print(f"espspec fuzz: {t.path} is not executable; -fork and -jobs will fail "
          f"(chmod +x it)", file=sys.stderr)
    os.execve(sys.executable, [sys.executable, str(t.path), *args.libfuzzer], env)
