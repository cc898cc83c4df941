"""Figures of the fuzz targets, measured in one run on this machine.

Theory of operation: ``print_stats`` runs each target as a user does (``espspec fuzz``,
from the shipped seeds, ``-seed=1``) twice -- 1 run and ``runs`` runs -- and takes the
difference, so the start-up (imports, seed loading) is not counted as fuzzing: that is
exec/s under atheris's instrumentation. Next to it, the same ``test_one_input`` called on
the seeds in a plain loop in this process (no instrumentation, no libFuzzer): the floor
the instrumented run is held against. Coverage features (``ft``) and edges (``cov``) are
libFuzzer's after the fixed number of runs. Then coverage.py counts the lines of
``spec_model`` the whole shipped corpus reaches when every target replays it. Last, the
structure-aware target hunts each receiver-side mutant (``ESPSPEC_FUZZ_IUT``, with the
exact oracle: ``ESPSPEC_FUZZ_STRICT=1``) from the seeds with a fixed seed, and the wall time until libFuzzer saves the input that tells it
from the model is the time to rediscover that bug (or "not in N s").
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..tables import render
from . import registry
from .engine import CORPORA

# the mutants whose bug sits where a packet is received (parser, window, ICV, keys)
RECEIVER_MUTANTS = ("duplicate-top-accepted", "seq-zero-accepted", "padding-unchecked",
                    "short-icv-accepted", "window-too-narrow", "window-too-wide",
                    "subsa-id-unchecked", "kdf-ignores-session-id", "cryptoff-not-in-aad",
                    "shared-window", "window-before-icv", "esn-case-b-wrong",
                    "aad-seq-low32", "esn-high-not-in-aad")
IN_PROCESS = "network"      # the one target that is not measured here (root, a daemon)


def _fuzz(target: str, *args: str, env: dict | None = None, timeout: float = 600):
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness.cli", "fuzz", target, *args],
                         capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    return time.perf_counter() - t0, out


def load(name: str):
    t = registry.target(name)
    spec = importlib.util.spec_from_file_location(f"espspec_fuzz_{name.replace('-', '_')}",
                                                  t.path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeds(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPORA / name).iterdir())]


def plain_rate(name: str, seconds: float = 1.0) -> float:
    """Calls/s of test_one_input on the seeds, in this process, without instrumentation."""
    fn, data = load(name).test_one_input, seeds(name)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for d in data:
            try:
                fn(d)
            except AssertionError:
                pass
        n += len(data)
    return n / (time.perf_counter() - t0)


def measure(name: str, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        env = {"ESPSPEC_FUZZ_WORK": work}
        t1, _ = _fuzz(name, "-runs=1", "-seed=1", f"{work}/c1", env=env)
        tn, out = _fuzz(name, f"-runs={runs}", "-seed=1", f"{work}/cn", env=env)
    done = re.search(r"DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)", out.stderr)
    crashed = out.returncode not in (0,)
    return {"target": name, "exec_s": runs / max(tn - t1, 1e-9) if not crashed else None,
            "cov": int(done.group(1)) if done else None,
            "ft": int(done.group(2)) if done else None,
            "corpus": int(done.group(3)) if done else None,
            "plain_s": plain_rate(name), "rc": out.returncode}


def spec_model_lines(names: list[str]) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """(lines reached, statements, per module) of spec_model when every target in
    ``names`` replays its shipped corpus: in a child process that starts coverage.py
    before spec_model is imported, so its module-level lines count too."""
    out = subprocess.run([sys.executable, "-m", "harness.fuzz.stats", "--replay-coverage",
                          *names], capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(f"corpus replay under coverage failed: "
                           f"{out.stderr.strip().splitlines()[-1:]}")
    per = {m: tuple(v) for m, v in json.loads(out.stdout).items()}
    return sum(h for h, _ in per.values()), sum(n for _, n in per.values()), per


def _replay_coverage(names: list[str]) -> None:
    import coverage
    root = Path(__file__).resolve().parent.parent.parent / "spec_model"
    cov = coverage.Coverage(source=[str(root)], data_file=None)
    cov.start()
    for name in names:
        fn = load(name).test_one_input
        for d in seeds(name):
            try:
                fn(d)
            except AssertionError:
                pass
    cov.stop()
    per = {}
    for path in sorted(root.rglob("*.py")):
        _, statements, _, missing, _ = cov.analysis2(str(path))
        per[str(path.relative_to(root))] = (len(statements) - len(missing), len(statements))
    print(json.dumps(per))


def rediscover(mutant: str, give_up: float) -> tuple[float | None, str]:
    with tempfile.TemporaryDirectory() as work:
        env = {"ESPSPEC_FUZZ_WORK": work, "ESPSPEC_FUZZ_IUT": f"mutant:{mutant}",
               "ESPSPEC_FUZZ_STRICT": "1"}     # some mutants break SHOULD or strict rules
        took, out = _fuzz("resealed", f"-max_total_time={int(give_up)}", "-seed=1",
                          f"{work}/c", env=env, timeout=give_up + 120)
    if out.returncode == 0:
        return None, ""
    said = out.stdout + out.stderr          # atheris prints the exception on stdout
    m = re.search(r"^(\w+): (.*)$", said.split("Uncaught Python exception: ===")[-1]
                  .strip(), re.M)
    return took, (m.group(0)[:110] if m else out.stderr.strip().splitlines()[-1][:110])


def print_stats(names: list[str], runs: int = 20000, give_up: float = 60.0) -> int:
    targets = [n for n in (names or registry.targets()) if n != IN_PROCESS]
    rows = []
    for name in targets:
        m = measure(name, runs)
        rate = f"{m['exec_s']:,.0f}" if m["exec_s"] else f"crashed (rc {m['rc']})"
        rows.append([name, rate, f"{m['plain_s']:,.0f}",
                     f"{m['exec_s'] / m['plain_s']:.0%}" if m["exec_s"] else "-",
                     m["cov"], m["ft"], m["corpus"]])
        print(f"measured {name}", file=sys.stderr)
    print(f"exec/s under atheris (one core, {runs} runs from the shipped seeds, start-up "
          f"subtracted) next to test_one_input in a plain loop:")
    print(render(["target", "exec/s", "plain calls/s", "of plain", "cov", "ft", "corpus"],
                 rows))
    hit, total, per = spec_model_lines(targets)
    print(f"\nspec_model lines reached by the shipped corpus replayed through "
          f"{len(targets)} targets: {hit} of {total} ({hit / total:.0%})")
    print(render(["module", "reached", "statements", "%"],
                 [[m, h, n, f"{h / n:.0%}" if n else "-"] for m, (h, n) in per.items()]))
    if names and "resealed" not in names:
        return 0
    rows = []
    for mutant in RECEIVER_MUTANTS:
        took, what = rediscover(mutant, give_up)
        rows.append([f"mutant:{mutant}", f"{took:.1f} s" if took else f"not in {give_up:g} s",
                     what])
        print(f"hunted {mutant}", file=sys.stderr)
    print("\ntime for resealed to rediscover each receiver-side mutant (-seed=1, "
          "ESPSPEC_FUZZ_STRICT=1, from the shipped seeds, wall clock with start-up):")
    print(render(["IUT", "found after", "finding"], rows))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--replay-coverage"]:
    _replay_coverage(sys.argv[2:])
