"""Several processes on one capture: planning the work and merging what comes back.

Theory of operation
-------------------
With ``jobs`` > 1 the sub-SAs of the key file are partitioned into units that must be
checked by one process because their checks read each other's state (``work_units``):
sub-SAs in one nonce space (``nonces.sub_identity``: a nonce reuse across them is only
seen where both rings are), and all sub-SAs of an SA whose limits are summed
(``LimitPolicy.sums_kept``). ``plan`` deals the units, largest first, to the least
loaded of at most ``jobs`` workers; each worker reads the whole file and checks only its
share (``senderpass.PassSpec.owned``), the first one also reports what concerns the
capture as a whole. ``run`` runs the tasks -- those passes and, with a receiver capture,
the receiver judge -- in a fork pool of at most ``jobs`` processes (in this process when
one suffices). ``merge_passes`` folds the passes' findings, statistics and key usage
into one sink, so the result does not depend on how the work was split (the tests
compare ``jobs=1`` with ``jobs=2``).

What a pass does is ``senderpass``'s, the report's assembly ``checker``'s.
"""

from __future__ import annotations

import multiprocessing

from spec_model.keying import Keying
from spec_model.limits import LimitPolicy

from .keys import SaKey
from .nonces import sub_identity
from .report import FindingSink, SaStats

__all__ = ["merge_passes", "plan", "run", "work_units"]


def work_units(sas: list[SaKey]) -> list[list[tuple[int, int]]]:
    """Sets of (SA index, sub-SA) that must be checked by one process, largest first."""
    parent: dict = {}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    space: dict = {}
    for i, sa in enumerate(sas):
        keying = Keying(sa.profile, sa.keymat, sa.spi)
        pol = LimitPolicy.of(sa.profile)
        for s in range(sa.profile.n_sub_sas):
            node = (i, s)
            parent[node] = node
            if s and pol.sums_kept:
                union((i, 0), node)
            ident = sub_identity(sa, keying, s)[:2]
            if ident in space:
                union(space[ident], node)
            else:
                space[ident] = node
    units: dict = {}
    for node in parent:
        units.setdefault(find(node), []).append(node)
    return sorted(units.values(), key=len, reverse=True)


def plan(sas: list[SaKey], jobs: int) -> list[dict]:
    """Owned sub-SAs per worker (SA index -> frozenset, or None for all of the SA's):
    units dealt to the least loaded worker."""
    units = work_units(sas)
    workers = min(jobs, len(units))
    loads = [0] * workers
    owned: list[dict] = [dict() for _ in range(workers)]
    for unit in units:
        w = loads.index(min(loads))
        loads[w] += len(unit)
        for i, s in unit:
            owned[w].setdefault(i, set()).add(s)
    out = []
    for w in range(workers):
        out.append({i: (None if len(subs) == sas[i].profile.n_sub_sas else frozenset(subs))
                    for i, subs in owned[w].items()})
    return out


def _call(task):
    fn, arg = task
    return fn(arg)


def run(tasks: list[tuple], jobs: int) -> tuple[list, int]:
    """(results in task order, processes used) of (function, argument) tasks."""
    used = min(jobs, len(tasks))
    if used > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(used) as pool:
            results = pool.map(_call, tasks, chunksize=1)
    else:
        results = [_call(t) for t in tasks]
    return results, used


def merge_passes(passes: list, sink: FindingSink) -> tuple[dict[int, SaStats], dict]:
    """Fold the passes' findings into ``sink``; (SA index -> SaStats, key_id -> packets)."""
    stats: dict[int, SaStats] = {}
    usage: dict = {}
    for r in passes:
        sink.merge(r.sink_state)
        for i, st in r.stats.items():
            if i in stats:
                stats[i].subs.extend(st.subs)
            else:
                stats[i] = st
        for k, v in r.key_usage.items():
            usage[k] = usage.get(k, 0) + v
    return stats, usage
