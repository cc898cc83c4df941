"""Findings, statistics and the report of one offline check.

Theory of operation: a check produces ``Finding`` values (frozen; one line each when
printed) through a ``FindingSink`` that keeps a bounded number per requirement (or per
capture-problem kind) and counts the rest, so a capture with a million bad packets still
yields a report of a few hundred lines. A finding's verdict comes from its requirement's
level in ``spec_model.requirements``: MUST -> FAIL, SHOULD -> NON-STRICT, MAY -> INFO.
Problems of the capture itself carry no requirement: ERROR when reading had to stop (the
capture could not be checked in full) and INFO otherwise (an unknown SPI, a frame cut by
the snap length). ``CheckReport`` gathers the findings, per-SA/sub-SA statistics and the
totals; its exit code is 1 when anything FAILs or ERRORs (NON-STRICT too with
``strict``), else 0. Nothing here reads captures or does crypto.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from spec_model import CATALOGUE, Level

from ..tables import render

FAIL, NON_STRICT, INFO, ERROR = "FAIL", "NON-STRICT", "INFO", "ERROR"
FAILING = frozenset({FAIL, ERROR})
_LEVEL_VERDICT = {Level.MUST: FAIL, Level.SHOULD: NON_STRICT, Level.MAY: INFO,
                  Level.STRICT: NON_STRICT}


def verdict_of(requirement: str) -> str:
    """FAIL for a MUST, NON-STRICT for a SHOULD, INFO for a MAY (KeyError if unknown)."""
    return _LEVEL_VERDICT[CATALOGUE[requirement].level]


@dataclass(frozen=True)
class Finding:
    verdict: str                 # FAIL, NON-STRICT, INFO or ERROR
    requirement: str             # catalogue ID; "" for a problem of the capture itself
    kind: str                    # "check" (sender), "receiver" (a receiver's decision), or
                                 # the capture problem ("truncated-record", ...)
    packet: int                  # 1-based packet number in its capture; 0 = none
    offset: int                  # file offset of the record (pcapng: block); -1 = none
    spi: int | None
    sub_sa: int | None
    message: str
    capture: str = "sender"      # "sender" or "receiver"

    @property
    def key(self) -> str:
        """What the finding is counted under: the requirement for FAIL and NON-STRICT,
        the kind for INFO and ERROR (an INFO may cite a requirement it relates to)."""
        if self.requirement and self.verdict in (FAIL, NON_STRICT):
            return self.requirement
        return self.kind

    def __str__(self) -> str:
        cap = "" if self.capture == "sender" else f"[{self.capture}] "
        if self.message.startswith("file offset "):     # the capture reader's own wording
            return f"{self.verdict} {self.key}: {cap}{self.message}"
        where = []
        if self.packet:
            where.append(f"packet {self.packet}")
        if self.offset >= 0:
            where.append(f"file offset {self.offset}")
        if self.spi is not None:
            where.append(f"SPI {self.spi:#010x}")
        if self.sub_sa is not None:
            where.append(f"sub-SA {self.sub_sa}")
        at = f"{', '.join(where)}: " if where else ""
        return f"{self.verdict} {self.key}: {cap}{at}{self.message}"


class FindingSink:
    """Collects findings; keeps the first ``cap`` per requirement/kind, counts all."""

    def __init__(self, cap: int = 10) -> None:
        self.cap = cap
        self.findings: list[Finding] = []
        self.counts: Counter = Counter()      # key -> findings seen
        self.verdicts: Counter = Counter()    # verdict -> findings seen

    def add(self, f: Finding) -> None:
        k = f.key
        self.counts[k] += 1
        self.verdicts[f.verdict] += 1
        if self.counts[k] <= self.cap:
            self.findings.append(f)

    def check(self, requirement: str, packet: int, offset: int, spi: int | None,
              sub_sa: int | None, message: str, capture: str = "sender",
              kind: str = "check") -> None:
        self.add(Finding(verdict_of(requirement), requirement, kind, packet, offset,
                         spi, sub_sa, message, capture))

    def info(self, kind: str, packet: int, offset: int, spi: int | None, sub_sa: int | None,
             message: str, capture: str = "sender", requirement: str = "") -> None:
        self.add(Finding(INFO, requirement, kind, packet, offset, spi, sub_sa, message,
                         capture))

    def error(self, kind: str, packet: int, offset: int, message: str,
              capture: str = "sender") -> None:
        self.add(Finding(ERROR, "", kind, packet, offset, None, None, message, capture))

    def seen(self, key: str) -> int:
        return self.counts[key]

    def state(self) -> tuple:
        return self.findings, self.counts, self.verdicts

    def merge(self, state: tuple) -> None:
        """Fold another sink's state in (findings re-capped, counts summed)."""
        findings, counts, verdicts = state
        self.counts.update(counts)
        self.verdicts.update(verdicts)
        self.findings.extend(findings)

    def finish(self) -> list[Finding]:
        """Findings sorted by capture and packet, at most ``cap`` per key."""
        kept: Counter = Counter()
        out = []
        for f in sorted(self.findings, key=lambda f: (f.capture != "sender", f.packet,
                                                      f.offset, f.key)):
            kept[f.key] += 1
            if kept[f.key] <= self.cap:
                out.append(f)
        self.findings = out
        return out

    @property
    def suppressed(self) -> dict[str, int]:
        kept = Counter(f.key for f in self.findings)
        return {k: n - kept[k] for k, n in self.counts.items() if n > kept[k]}


def report_capture_findings(reader, sink: FindingSink, capture: str) -> None:
    """The capture reader's findings about a file (``harness.capture.CaptureFinding``)
    as findings of the check: ERROR when reading had to stop, INFO otherwise."""
    for f in reader.findings:
        if f.fatal:
            sink.error(f.kind, f.packet_number, f.file_offset, f.message, capture)
        else:
            sink.info(f.kind, f.packet_number, f.file_offset, None, None, f.message, capture)
    if reader.findings_dropped:
        sink.counts["capture-findings-dropped"] += reader.findings_dropped


@dataclass
class SubSaStats:
    sub_sa: int
    spi: int
    key_id: str = ""
    packets: int = 0          # packets of this sub-SA whose ICV verified
    icv_failures: int = 0
    malformed: int = 0        # decoded but refused (body, padding, ...)
    payload_bytes: int = 0    # inner payload bytes of verified packets
    first_counter: int | None = None
    highest_counter: int = 0
    first_packet: int = 0
    highest_packet: int = 0   # packet that carried the highest counter
    missing: int = 0          # counters skipped (lost before the capture point)
    out_of_order: int = 0
    duplicates: int = 0
    iv_rule_breaks: int = 0
    dummies: int = 0
    snap_cut: int = 0


@dataclass
class SaStats:
    spi: int
    profile: str
    direction: str
    src: str | None
    dst: str | None
    subs: list[SubSaStats] = field(default_factory=list)

    @property
    def packets(self) -> int:
        return sum(s.packets for s in self.subs)


@dataclass
class ReceiverSummary:
    capture: str
    records: int = 0               # inner packets in the receiver capture
    model_delivered: int = 0
    model_dropped: int = 0
    agree_delivered: int = 0
    agree_dropped: int = 0
    iut_extra: int = 0             # delivered by the receiver, dropped by the model
    iut_missing: int = 0           # delivered by the model, not by the receiver
    unmatched: int = 0             # receiver records matching no sender packet
    drops_by_reason: dict = field(default_factory=dict)


@dataclass
class CheckReport:
    capture: str
    profiles: list[str]
    sas: list[SaStats]
    findings: list[Finding]
    counts: dict[str, int]
    suppressed: dict[str, int]
    verdicts: dict[str, int]
    records: int = 0               # packet records in the sender capture
    ipsec: int = 0                 # ESP, EESP and PSP packets among them
    other: int = 0                 # everything else (IKE, ARP, ...)
    unknown_spi: int = 0
    snap_cut: int = 0
    receiver: ReceiverSummary | None = None
    jobs: int = 1
    elapsed: float = 0.0
    strict: bool = False

    @property
    def failed(self) -> bool:
        bad = self.verdicts.get(FAIL, 0) + self.verdicts.get(ERROR, 0)
        if self.strict:
            bad += self.verdicts.get(NON_STRICT, 0)
        return bad > 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def requirements_failed(self) -> set[str]:
        return {k for k, n in self.counts.items() if n and k in CATALOGUE
                and verdict_of(k) in (FAIL, NON_STRICT)}

    def by_requirement(self, requirement: str) -> list[Finding]:
        return [f for f in self.findings if f.key == requirement]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = self.failed
        return d

    def render(self, verbose: bool = False) -> str:
        out = [f"capture {self.capture}: {self.records} records, {self.ipsec} ESP/EESP/PSP, "
               f"{self.other} other, {self.unknown_spi} with unknown SPI, {self.snap_cut} cut "
               f"by the snap length; {self.jobs} job(s), {self.elapsed:.2f} s"]
        rows = []
        for sa in self.sas:
            for s in sa.subs:
                if s.packets or s.icv_failures or s.malformed or verbose:
                    rows.append([f"{sa.spi:#010x}", sa.profile, s.sub_sa, f"{s.spi:#010x}",
                                 s.packets, s.payload_bytes, s.icv_failures,
                                 "-" if s.first_counter is None else s.first_counter,
                                 s.highest_counter, s.missing, s.out_of_order + s.duplicates])
        if rows:
            out.append(render(["SA", "profile", "sub-SA", "SPI", "packets", "bytes",
                               "ICV fail", "first SN", "highest SN", "missing",
                               "reordered/dup"], rows))
        if self.receiver is not None:
            r = self.receiver
            out.append(f"receiver {r.capture}: {r.records} delivered records; model delivers "
                       f"{r.model_delivered}, drops {r.model_dropped}; agreement "
                       f"{r.agree_delivered} delivered + {r.agree_dropped} dropped; receiver "
                       f"delivered {r.iut_extra} the model drops, missed {r.iut_missing}, "
                       f"{r.unmatched} unmatched")
        for f in self.findings:
            out.append(str(f))
        for key, n in sorted(self.suppressed.items()):
            out.append(f"  ... {n} more {key} finding(s) not shown")
        summary = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items())) or "none"
        out.append(f"findings: {summary} -> {'FAIL' if self.failed else 'PASS'}")
        return "\n".join(out)
