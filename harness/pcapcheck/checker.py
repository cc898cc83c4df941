"""Offline certification of a sender from a packet capture: ``check_capture``.

Theory of operation
-------------------
``check_capture`` is the driver: it loads the key file (``keys``), plans the work
(``jobs``: one pass, or the sub-SAs dealt to ``jobs`` worker processes), runs the
passes over the sender capture (``senderpass``, one ``SaCheck`` per SA from
``sacheck``) and, with a receiver capture, the receiver judge (``rxjudge``, its own
worker when jobs > 1), merges what they return and assembles the ``CheckReport``: the
findings (bounded per requirement), per-SA and per-sub-SA statistics, the counts of the
capture and what only the merged view can tell -- a key that protected more than 2^64
packets across its SAs (``limits.check_key_cap``) and the SAs of the key file with no
packet in the capture. Every problem inside a capture is a finding; only an unusable
key file (``KeysError``) or a capture that cannot be opened (``OSError``) raises.

The module map of the package (where each rule lives) is in its ``__init__``.
"""

from __future__ import annotations

import os
import time

from spec_model import Profile
from spec_model.errors import EspSpecError

from ..capture import DissectConfig
from .config import DEFAULT_DISSECT, CheckConfig
from .jobs import merge_passes, plan, run
from .keys import load_keys
from .limits import check_key_cap
from .report import CheckReport, FindingSink, SaStats
from .rxjudge import judge_receiver
from .senderpass import PassSpec, run_pass

__all__ = ["check_capture"]


def check_capture(path, keys, profile: str | Profile | None = None, receiver=None,
                  jobs: int = 1, dissect: DissectConfig = DEFAULT_DISSECT,
                  config: CheckConfig = CheckConfig()) -> CheckReport:
    """Check a sender capture against the model; optionally judge a receiver capture.

    ``keys`` is a key file path (espspec JSON or Wireshark esp_sa) or a list of ``SaKey``;
    ``profile`` names the profile of an esp_sa table (and is the default of JSON entries
    without one). ``receiver`` is a capture of the inner packets the receiver delivered.
    Raises ``KeysError`` for an unusable key file and ``OSError`` when a capture cannot be
    opened; every problem inside a capture is a finding.
    """
    t0 = time.perf_counter()
    sas = keys if isinstance(keys, list) else load_keys(keys, profile)
    if not sas:
        raise EspSpecError("no SAs to check")
    for src in (path,) + ((receiver,) if receiver is not None else ()):
        if not isinstance(src, (bytes, bytearray, memoryview)):
            os.stat(src)          # OSError now rather than inside a worker
    jobs = max(1, int(jobs))
    plans = plan(sas, jobs)
    tasks = [(run_pass, PassSpec(path, sas, dissect, config, owned, w == 0))
             for w, owned in enumerate(plans)]
    if receiver is not None:
        tasks.append((judge_receiver, (path, receiver, sas, dissect, config)))
    results, used = run(tasks, jobs)
    passes = results[:len(plans)]
    sink = FindingSink(config.max_per_requirement)
    stats, key_usage = merge_passes(passes, sink)
    rx_summary = None
    if receiver is not None:
        rx_state, rx_summary = results[len(plans)]
        sink.merge(rx_state)
    check_key_cap(sink, key_usage)
    sa_stats = []
    for i, sa in enumerate(sas):
        st = stats.get(i) or SaStats(sa.spi, sa.profile.name, sa.direction, sa.src, sa.dst)
        st.subs.sort(key=lambda s: s.sub_sa)
        if not any(s.packets or s.icv_failures or s.malformed or s.snap_cut for s in st.subs):
            sink.info("no-packets", 0, -1, sa.spi, None,
                      f"no packet of {sa.label()} in the capture")
        sa_stats.append(st)
    findings = sink.finish()
    first = passes[0]
    return CheckReport(
        capture=os.fspath(path) if not isinstance(path, (bytes, bytearray, memoryview))
        else "<bytes>",
        profiles=sorted({sa.profile.name for sa in sas}), sas=sa_stats, findings=findings,
        counts=dict(sink.counts), suppressed=sink.suppressed, verdicts=dict(sink.verdicts),
        records=first.records, ipsec=first.ipsec, other=first.other,
        unknown_spi=first.unknown_spi, snap_cut=first.snap_cut, receiver=rx_summary,
        jobs=used, elapsed=time.perf_counter() - t0, strict=config.strict)
