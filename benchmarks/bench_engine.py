"""Lockstep engine figures: steps per second, and time and examples to kill each mutant.

Prints figures; asserts nothing. Run: python benchmarks/bench_engine.py
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from harness.engine import lockstep, session  # noqa: E402
from harness.loader import load_iut  # noqa: E402
from harness.engine.runner import CaseContext, Depth, run_case  # noqa: E402
from harness.engine.judge import Verdict  # noqa: E402
from spec_model import NAMED, named  # noqa: E402

COUNT = {"steps": 0}
_log = session.Session.log


def _counting_log(self, verb, **kwargs):
    COUNT["steps"] += 1
    _log(self, verb, **kwargs)


session.Session.log = _counting_log


def steps_per_second() -> None:
    print("lockstep against the reference IUT (family 'all', 40 examples x 50 steps):")
    for name in NAMED:
        COUNT["steps"] = 0
        t = time.perf_counter()
        ctx = CaseContext(load_iut("reference"), named(name), None, examples=40, steps=50,
                          case="bench/lockstep")
        lockstep.run(ctx, "all")
        dt = time.perf_counter() - t
        print(f"  {name:20} {COUNT['steps']:6} steps in {dt:5.2f} s = "
              f"{COUNT['steps'] / dt:8,.0f} steps/s")


def mutant_kills() -> None:
    try:
        from harness.mutants import MUTANT_INFO
    except ImportError:
        print("no mutants")
        return
    import suites
    print("\ntime and examples until each mutant is killed (first failing case):")
    print(f"  {'mutant':34} {'profile':18} {'case':22} {'seconds':>8} {'examples':>8}")
    for info in MUTANT_INFO.values():
        factory = load_iut(f"mutant:{info.name}")
        caps = factory().capabilities()
        killed = None
        t = time.perf_counter()
        for pname in info.profiles or ("esp-subsa-spi", "eesp-v0"):
            for case in suites.CASES.values():
                COUNT["steps"] = 0
                inits = {"n": 0}
                real_init = session.Session.__post_init__

                def counting(self, real=real_init):
                    inits["n"] += 1
                    real(self)
                session.Session.__post_init__ = counting
                try:
                    r = run_case(case, factory, named(pname), caps, seed=0, strict=False,
                                 depth=Depth(examples=25, steps=30))
                finally:
                    session.Session.__post_init__ = real_init
                if r.verdict in (Verdict.FAIL, Verdict.NON_STRICT):
                    killed = (pname, case.id, inits["n"])
                    break
            if killed:
                break
        dt = time.perf_counter() - t
        if killed:
            print(f"  {info.name:34} {killed[0]:18} {killed[1]:22} {dt:8.2f} {killed[2]:8}")
        else:
            print(f"  {info.name:34} {'-':18} {'NOT KILLED':22} {dt:8.2f}")


if __name__ == "__main__":
    steps_per_second()
    mutant_kills()
