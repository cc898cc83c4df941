"""``espspec run``: the suites against an IUT.

Theory of operation: ``cmd_run`` loads the IUT's factory and, unless ``--in-process``,
wraps it so that the IUT runs in a worker process with a deadline per verb
(``harness.engine.isolation``). It probes the IUT once (name, version, capabilities),
selects profiles and cases, runs each through the engine's runner, and after every case
rewrites the results document, marked incomplete until the last case is in, so that an
interrupted or killed run leaves everything that finished and never an older file that
looks current. A failing case whose IUT gave evidence of the failing session (over the
network: a pcap of its packets and a Wireshark esp_sa table) has it written to
``DIR/evidence/<profile>/<case>/`` before the document that names it; the evidence of an
earlier run in DIR goes when the run starts, with the document it belonged to. SIGINT and
SIGTERM end the run with exit status 130 and one line. Exit status (``EXIT``): 0 every
case that ran passed, 1 a FAIL or ERROR (NON-STRICT too with ``--strict``), 2 bad usage, 3
nothing was tested (every case UNSUPPORTED), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from contextlib import contextmanager

from .errors import UsageError

EXIT = {"passed": 0, "failed": 1, "usage": 2, "nothing tested": 3, "interrupted": 130}


@contextmanager
def _signals_stop_the_run():
    """While the run lasts, SIGINT and SIGTERM ask the engine to stop (``engine.stop``),
    whatever this process inherited (a shell's background job ignores SIGINT)."""
    from ..engine import stop

    def unwind(signum, frame):
        stop.request(signal.Signals(signum).name)

    def quiet(unraisable, hook=sys.unraisablehook):   # a swallowed stop: check() raises it
        if not isinstance(unraisable.exc_value, stop.Stopped):
            hook(unraisable)
    previous = (signal.signal(signal.SIGINT, unwind), signal.signal(signal.SIGTERM, unwind),
                sys.unraisablehook)
    sys.unraisablehook = quiet
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        sys.unraisablehook = previous[2]
        stop.clear()


def _progress(i: int, total: int, label: str, stream=sys.stderr) -> None:
    """A one-line bar on a terminal; nothing when stderr is a file or a pipe."""
    if not stream.isatty():
        return
    width = 24
    done = width * i // max(total, 1)
    line = f"[{'#' * done}{'.' * (width - done)}] {i}/{total} {label}"
    stream.write("\r" + line[:100].ljust(100))
    if i == total:
        stream.write("\n")
    stream.flush()


def _list(value: str | None, what: str) -> list[str] | None:
    """A comma-separated option: None when absent; an empty one is a usage error."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise UsageError(f"--{what} {value!r}: empty name (leave --{what} out to mean all)")
    return items


def _check_profile_names(names: list[str] | None) -> None:
    from spec_model import NAMED
    bad = [n for n in names or [] if n not in NAMED and n != "pairwise"]
    if bad:
        raise UsageError(f"unknown profile {', '.join(map(repr, bad))}; known: "
                         f"{', '.join(NAMED)}, pairwise")


def cmd_run(args: argparse.Namespace) -> int:
    from spec_model import named
    from suites import FAMILIES, plan
    from ..engine import stop
    from ..engine.isolation import Isolated, shutdown_all
    from ..engine.judge import Verdict
    from ..engine.runner import (DEPTHS, CaseResult, failed, nothing_tested, probe,
                                 run_case, select_profiles)
    from ..loader import load_iut
    from ..results.text import format_steps, summary

    families = _list(args.suite, "suite") or list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise UsageError(f"unknown suite {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    names = _list(args.profile, "profile")
    from suites import CASES
    only = _list(args.case, "case")
    bad = [c for c in only or () if c not in CASES]
    if bad:
        raise UsageError(f"unknown case {', '.join(bad)}: case IDs are family/name as the "
                         f"summary and results.json print them, e.g. replay/seq-zero")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be a positive number of seconds")
    _check_profile_names(names)
    factory = load_iut(args.iut)
    isolated = None if args.in_process else Isolated(factory, args.timeout)
    run_factory = isolated or factory
    started = time.time()
    results: list[CaseResult] = []
    out = _Output(args, started, isolated)
    try:
        with _signals_stop_the_run():
            found = probe(run_factory, named("esp"))
            out.iut = found
            if found.failure is not None:
                f = found.failure
                results.append(CaseResult(
                    "iut/probe", "iut", "-", tuple(x.requirement for x in f.findings),
                    Verdict.FAIL, message=str(f.findings[0]), findings=f.findings))
                out.write(results, [], complete=True)
                print(f"FAIL the IUT could not be built: {f.findings[0]}")
                return EXIT["failed"]
            profiles = select_profiles(found.caps, names)
            work = [(c, p) for p in profiles for c in plan(families)
                    if only is None or c.id in only]
            out.announce(found, len(work))
            out.clear_evidence()
            out.write(results, profiles, complete=False, reason="running")
            for i, (case, profile) in enumerate(work, 1):
                stop.check()
                r = run_case(case, run_factory, profile, found.caps, seed=args.seed,
                             strict=args.strict, depth=DEPTHS[args.depth])
                results.append(r)
                out.evidence(r)
                out.write(results, profiles, complete=False, reason="running")
                if not args.quiet:
                    _progress(i, len(work), f"{r.verdict.value:11} {profile.name} {case.id}")
    except (KeyboardInterrupt, stop.Stopped) as e:
        why = "SIGINT" if isinstance(e, KeyboardInterrupt) else e.args[0]
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        path = out.write(results, out.profiles, complete=False, reason=f"interrupted by {why}")
        print(f"espspec: interrupted by {why} after {len(results)} cases"
              + (f"; results so far (marked incomplete): {path}" if path else ""),
              file=sys.stderr)
        return EXIT["interrupted"]
    finally:
        if isolated is not None:
            isolated.shutdown()
        shutdown_all()
        from ..net.topology import close_all      # namespaces an adapter made, by name
        close_all()
    path = out.write(results, profiles, complete=True)
    print(summary(results))
    for r in results:
        if r.verdict in (Verdict.FAIL, Verdict.NON_STRICT, Verdict.ERROR):
            print(f"{r.verdict.value} {r.profile} {r.case}: {r.message}")
            if r.steps:
                print(format_steps(r.steps))
            if r.evidence and args.report:
                from ..results.document import evidence_path
                print(f"    evidence: {os.path.join(args.report, evidence_path(r))}")
    if path:
        print(f"results: {path}")
    if failed(results, args.strict):
        return EXIT["failed"]
    if nothing_tested(results):
        print(f"espspec: nothing was tested: every case is UNSUPPORTED by {args.iut}",
              file=sys.stderr)
        return EXIT["nothing tested"]
    return EXIT["passed"]


class _Output:
    """The results document of this run, rewritten after every case (when --report)."""

    def __init__(self, args: argparse.Namespace, started: float, isolated) -> None:
        self.args, self.started, self.isolated = args, started, isolated
        self.iut = None
        self.profiles: list = []

    def announce(self, found, cases: int) -> None:
        how = ("in-process" if self.isolated is None
               else f"in a worker process, {self.isolated.timeout:g} s per verb")
        version = f" {found.version}" if found.version else ""
        print(f"espspec: {cases} cases against {found.name}{version} ({how})",
              file=sys.stderr)

    def clear_evidence(self) -> None:
        if self.args.report:
            from ..results.document import clear_evidence
            try:
                clear_evidence(self.args.report)
            except OSError as e:
                print(f"espspec: cannot remove the old evidence in {self.args.report}: {e}",
                      file=sys.stderr)

    def evidence(self, r) -> None:
        """Write a case's evidence beside the results (when --report); evidence that
        cannot be written is dropped from the result, with one line."""
        if not r.evidence:
            return
        if not self.args.report:
            r.evidence = None          # nowhere to write it: do not keep it in memory
            return
        from ..results.document import write_evidence
        try:
            write_evidence(self.args.report, r)
        except OSError as e:
            print(f"espspec: cannot write the evidence of {r.profile} {r.case}: {e}",
                  file=sys.stderr)
            r.evidence = None

    def write(self, results, profiles, *, complete: bool, reason: str = ""):
        self.profiles = profiles
        if not self.args.report:
            return None
        from ..results.document import write_json
        a = self.args
        extra = _record(a, self.started, self.iut, self.isolated, complete, reason, profiles)
        return write_json(a.report, results, iut=a.iut, seed=a.seed, strict=a.strict,
                          depth=a.depth, profiles=[p.name for p in profiles], **extra)


def _record(args, started: float, found, isolated, complete: bool, reason: str,
            profiles) -> dict:
    """The certification record and completeness keywords of ``write_json``."""
    from ..results.record import RunRecord
    record = RunRecord.now(
        iut=args.iut, iut_name=getattr(found, "name", None),
        iut_version=getattr(found, "version", None),
        capabilities=getattr(found, "caps", None), argv=list(sys.argv), started=started,
        duration=time.time() - started, seed=args.seed, profiles=[p.name for p in profiles],
        strict=args.strict, depth=args.depth,
        timeout=None if isolated is None else isolated.timeout,
        isolation="in-process" if isolated is None else "process")
    return {"record": record, "complete": complete,
            "incomplete_reason": None if complete else reason}
