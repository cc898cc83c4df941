"""The atheris glue every target script shares: instrumentation, folders, supervision.

Theory of operation: a target script calls ``instrumented(__name__, packages)`` around its
imports, so that the code the fuzzer should explore is instrumented when the script runs
as a fuzzer and left alone when a test imports the script to replay its corpus. Then
``run(test_one_input, TARGET)`` hands the script's command line to libFuzzer, adding the
shipped seeds (``corpora/<target>/``, read: new inputs go to the first folder) behind the
corpus folders given -- a work folder when none is -- and an ``-artifact_prefix`` under
the work folder; folders named on the command line that do not exist yet are made. A
command line that names input files (a crash to reproduce) gets no folder added. A child
that libFuzzer starts again (``-fork``, ``-jobs``) inherits ``ARGS_DONE`` and takes its
command line as it is, and so does a PyInstaller bundle (ClusterFuzzLite, OSS-Fuzz:
``.clusterfuzzlite/``), whose folders the service chooses. Under ``-minimize_crash`` the
target's ``shrink`` replaces its mutator. With ``supervise`` (targets that build network
namespaces) the script first runs itself as a child and, when that child ends in any way
(a finding, ``-runs`` reached, SIGKILL), removes by PID what the child left
(``harness.net.leftovers``): libFuzzer may end the process with ``exit()``, so the child's
own ``atexit`` cleanup cannot be relied on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent.parent
CORPORA = ROOT / "corpora"
ARGS_DONE = "ESPSPEC_FUZZ_ARGS_DONE"
SUPERVISOR = "ESPSPEC_FUZZ_SUPERVISOR"
WORK = "ESPSPEC_FUZZ_WORK"


def work_folder(target: str) -> Path:
    """Where a run keeps what it finds: $ESPSPEC_FUZZ_WORK/<target> (default under
    ~/.cache/espspec/fuzz)."""
    base = os.environ.get(WORK) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "espspec", "fuzz")
    return Path(base) / target


def instrumented(module_name: str, *packages: str):
    """Instrument ``packages`` imported inside the block when the script runs as the fuzzer
    (``module_name == "__main__"``) and atheris is installed; otherwise do nothing."""
    if module_name != "__main__":
        return contextlib.nullcontext()
    try:
        import atheris
    except ImportError:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=list(packages))


def libfuzzer_args(target: str, argv: list[str], seeds: str | None = None) -> list[str]:
    """The command line libFuzzer gets: argv, plus corpus folders and artifact prefix.
    ``seeds`` names the shipped corpus when it is another target's (default: target's)."""
    shipped = CORPORA / (seeds or target)
    if os.environ.get(ARGS_DONE) or getattr(sys, "frozen", False):
        return list(argv)       # a re-run by libFuzzer, or a bundle the service drives
    flags = [a for a in argv[1:] if a.startswith("-")]
    paths = [a for a in argv[1:] if not a.startswith("-")]
    work = work_folder(target)
    if not paths:
        (work / "corpus").mkdir(parents=True, exist_ok=True)
        paths = [str(work / "corpus")]
        if shipped.is_dir():
            paths.append(str(shipped))
    else:
        for p in paths:
            if not os.path.exists(p):
                os.makedirs(p)
        if all(os.path.isdir(p) for p in paths) and shipped.is_dir():
            paths.append(str(shipped))
    if not any(f.startswith("-artifact_prefix=") for f in flags):
        (work / "artifacts").mkdir(parents=True, exist_ok=True)
        flags.append(f"-artifact_prefix={work / 'artifacts'}{os.sep}")
    return [argv[0], *flags, *paths]


def run(test_one_input: Callable[[bytes], None], target: str, *,
        custom_mutator: Callable[[bytes, int, int], bytes] | None = None,
        shrink: Callable[[bytes, int, int], bytes] | None = None,
        seeds: str | None = None, supervise: bool = False) -> None:
    """Fuzz ``test_one_input`` with the script's command line (never returns). Under
    ``-minimize_crash`` the mutator is ``shrink`` (libFuzzer's own when None)."""
    if supervise and os.environ.get(SUPERVISOR) != str(os.getppid()):
        sys.exit(_supervise())
    import atheris
    args = libfuzzer_args(target, sys.argv, seeds)
    os.environ[ARGS_DONE] = "1"
    if any(a.startswith("-minimize_crash") for a in args):
        custom_mutator = shrink
    if custom_mutator is None:
        atheris.Setup(args, test_one_input)
    else:
        atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def _supervise() -> int:
    """Run this script again as a child, then remove what the child left behind."""
    from harness.net import leftovers
    env = dict(os.environ, **{SUPERVISOR: str(os.getpid())})
    child = subprocess.Popen([sys.executable, *sys.argv], env=env)

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    rc = child.wait()
    for left in leftovers.find(f"{leftovers.PREFIX}{child.pid}-"):
        for line in leftovers.remove(left):
            print(f"espspec fuzz: {line} (left by the fuzzer, PID {child.pid})",
                  file=sys.stderr)
    return rc if rc >= 0 else 128 - rc
