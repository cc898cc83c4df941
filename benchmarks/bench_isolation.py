"""What running the IUT in a worker process costs, per verb, against calling it in-process.

For each verb the same calls are made three ways, in one run: the bare model call (the
floor: what the reference IUT itself costs), the reference IUT in-process, and the
reference IUT behind ``harness.engine.isolation.Isolated`` (a pipe round trip with
pickling per call, a deadline per call). Then one whole case both ways. Prints figures;
asserts nothing. Run: python benchmarks/bench_isolation.py
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from harness.adapters.reference import ReferenceIut  # noqa: E402
from harness.engine.isolation import Isolated  # noqa: E402
from harness.engine.runner import DEPTHS, run_case  # noqa: E402
from harness.engine.session import make_payload, sa_pair  # noqa: E402
from spec_model import Receiver, Sender, named  # noqa: E402

N = 20_000


def _per_call(fn, n: int = N) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def verbs() -> None:
    profile = named("esp")
    out, inb = sa_pair(profile, "bench/isolation#1", 0)
    payload, nh = make_payload(profile, 64)
    peer = Sender(profile, inb.keymat, inb.spi)
    wires = [peer.seal(0, payload, nh).wire for _ in range(N)]

    bare_tx = Sender(profile, out.keymat, out.spi)
    bare_rx = Receiver(profile, inb.keymat, inb.spi)
    local = ReferenceIut()
    local.install(out, inb)
    isolated = Isolated(ReferenceIut, timeout=10)
    remote = isolated()
    remote.install(out, inb)

    print(f"per verb, 64-byte payloads, {N:,} calls each (µs per call):")
    print(f"  {'verb':14} {'bare model':>11} {'in-process':>11} {'isolated':>11} "
          f"{'isolation costs':>16}")
    rows = {
        "protect": (lambda: bare_tx.seal(0, payload, nh), lambda: local.protect(0, payload, nh),
                    lambda: remote.protect(0, payload, nh)),
        "capabilities": (lambda: None, local.capabilities, remote.capabilities),
    }
    it = [iter(wires), iter(wires), iter(wires)]
    rows["unprotect"] = (lambda: bare_rx.open(next(it[0])), lambda: local.unprotect(next(it[1])),
                         lambda: remote.unprotect(next(it[2])))
    for verb, (bare, inproc, iso) in rows.items():
        b, i, r = _per_call(bare), _per_call(inproc), _per_call(iso)
        print(f"  {verb:14} {b:11.1f} {i:11.1f} {r:11.1f} {r - i:13.1f} µs")
    remote.close()
    isolated.shutdown()


def whole_case() -> None:
    profile = named("esp")
    import suites
    case = suites.CASES["replay/lockstep"]
    for label, factory in (("in-process", ReferenceIut), ("isolated", Isolated(ReferenceIut))):
        caps = ReferenceIut().capabilities()
        t = time.perf_counter()
        r = run_case(case, factory, profile, caps, seed=0, strict=False, depth=DEPTHS["ci"])
        print(f"  replay/lockstep on esp, {label:10}: {time.perf_counter() - t:6.2f} s "
              f"({r.verdict.value})")
        if isinstance(factory, Isolated):
            factory.shutdown()


if __name__ == "__main__":
    verbs()
    print("one whole case (Hypothesis budget ci):")
    whole_case()
