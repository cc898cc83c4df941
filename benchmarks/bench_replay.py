"""Throughput of spec_model.replay.ReplayWindow on one core. Prints figures, asserts nothing.

Run as ``python benchmarks/bench_replay.py [--packets N] [--rounds R]``.

Streams (W = 2**24 throughout):
  in-order   seq = base+1, base+2, ...  (every packet advances T)
  reordered  the same numbers, randomly permuted inside consecutive blocks of 1000
             (almost every packet lands inside the window below T)
Each stream is run with base = 0 (small ints, one CPython digit) and base = 2**32
(ESN counters past the first subspace: two-digit ints, every operation allocates).

Drivers: ``check_and_accept`` (fused) and ``check`` followed by ``accept`` when NEW (the
receive path with the ICV check in between), both called from a plain Python for-loop,
the way a receive loop would call them. The figure for an empty loop calling a no-op
function is printed as the ceiling any per-packet Python call can reach here.

Timing: every round runs N packets through a fresh window and is timed twice, by the
wall clock (perf_counter) and by this process's CPU time (process_time); rounds are
interleaved across the cases so a noisy neighbour hits all cases alike. Printed: the
best wall-clock rate, the median wall-clock rate, and the best CPU-time rate (which
discounts time the process spent descheduled on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from spec_model.replay import ReplayWindow, Verdict  # noqa: E402

W = 1 << 24
MIB = 1 << 20


def in_order(n: int, base: int) -> list[int]:
    return list(range(base + 1, base + n + 1))


def reordered(n: int, base: int, block: int = 1000, seed: int = 6479) -> list[int]:
    rng = random.Random(seed)
    seqs = in_order(n, base)
    for i in range(0, n, block):
        chunk = seqs[i:i + block]
        rng.shuffle(chunk)
        seqs[i:i + block] = chunk
    return seqs


def run_fused(seqs: list[int]) -> tuple[float, float]:
    win = ReplayWindow(W)
    f = win.check_and_accept
    t0, c0 = time.perf_counter(), time.process_time()
    for s in seqs:
        f(s)
    return time.perf_counter() - t0, time.process_time() - c0


def run_split(seqs: list[int]) -> tuple[float, float]:
    win = ReplayWindow(W)
    check = win.check
    accept = win.accept
    new = Verdict.NEW
    t0, c0 = time.perf_counter(), time.process_time()
    for s in seqs:
        if check(s) is new:
            accept(s)
    return time.perf_counter() - t0, time.process_time() - c0


def run_empty(seqs: list[int]) -> tuple[float, float]:
    def nop(s: int) -> None:
        pass
    t0, c0 = time.perf_counter(), time.process_time()
    for s in seqs:
        nop(s)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000, help="packets per round")
    ap.add_argument("--rounds", type=int, default=15, help="rounds per case (best is kept)")
    args = ap.parse_args()
    n = args.packets

    streams = {}
    for base, label in ((0, "base 0"), (1 << 32, "base 2^32")):
        streams[f"in-order,  {label}"] = in_order(n, base)
        streams[f"reordered, {label}"] = reordered(n, base)

    cases = [("empty call loop (ceiling)", run_empty, streams["in-order,  base 0"])]
    for name, seqs in streams.items():
        cases.append((f"check_and_accept  {name}", run_fused, seqs))
    for name, seqs in streams.items():
        cases.append((f"check()+accept()  {name}", run_split, seqs))

    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):
        for name, fn, seqs in cases:
            times[name].append(fn(seqs))

    win = ReplayWindow(W)
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"{platform.machine()}, one core")
    print(f"W = 2**24 = {W} packets; bitmap {win.memory_bytes()} bytes = "
          f"{win.memory_bytes() / MIB:.3f} MiB (limit 4 MiB)")
    print(f"{n} packets per round, {args.rounds} rounds; million packets per second:\n")
    width = max(len(name) for name, _, _ in cases)
    print(f"  {'':<{width}}  {'best wall':>9}  {'median':>6}  {'best cpu':>8}")
    for name, _, _ in cases:
        wall = [t for t, _ in times[name]]
        cpu = [c for _, c in times[name] if c > 0]
        print(f"  {name:<{width}}  {n / min(wall) / 1e6:9.2f}  "
              f"{n / statistics.median(wall) / 1e6:6.2f}  "
              f"{n / min(cpu) / 1e6 if cpu else float('nan'):8.2f}")
    if hasattr(os, "getloadavg"):
        print(f"\nload average during the run: {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} CPUs (a shared machine depresses the wall figures)")


if __name__ == "__main__":
    main()
