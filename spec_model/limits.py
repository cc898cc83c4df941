"""Limits: counter space, hard limits and rekey thresholds across sub-SAs (seed §4.5).

Theory of operation: ``LimitPolicy.of(profile)`` turns the child SA's limits into what each
sub-SA may do, and the two functions below judge a sender's counts against it:

* counter space — a sub-SA's counter never exceeds ``counter_max``: 2^32 - 1 for 32-bit
  sequence numbers, 2^64 - 1 for 64-bit ones, less the bits the sub-SA ID takes in the
  sequence number or (partitioned IVs) in the IV. A counter never wraps (SEQ-NO-WRAP).
* hard limits — with sums kept (sub-SAs can synchronise), the sum over sub-SAs never
  exceeds L (LIMIT-HARD-SUM); without, each sub-SA gets floor(L / N)
  (LIMIT-HARD-PER-SUBSA).
* the 2^64 cap — a key shared by sub-SAs protects at most 2^64 packets in total, so it
  joins L as above (LIMIT-2POW64-SHARED-KEY). Per-sub-SA keys lift it.
* rekey — due when the sum reaches the soft limit (LIMIT-REKEY-SUM) or, without sums,
  when max x N reaches it (LIMIT-REKEY-MAX-N).

State (the counts) belongs to the sender; this module only judges.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CounterExhausted, HardLimitReached, SendRefused
from .profile import SEQ_COUNTER_BITS, NonceScheme, Profile

KEY_CAP = 1 << 64


@dataclass(frozen=True)
class LimitPolicy:
    n: int
    sums_kept: bool
    counter_max: int
    packets_per_subsa: int | None    # hard share of one sub-SA (no sums)
    packets_total: int | None        # hard limit of the sum (sums kept)
    bytes_per_subsa: int | None
    bytes_total: int | None
    soft_packets: int | None
    soft_bytes: int | None
    packets_requirement: str          # which rule a packet-limit refusal names
    bytes_requirement: str

    @classmethod
    def of(cls, p: Profile) -> "LimitPolicy":
        bits = SEQ_COUNTER_BITS[p.seq] - p.seq_bits_for_id
        if p.nonce is NonceScheme.PARTITIONED_IV:
            bits = min(bits, 64 - p.subsa_bits)
        hard, req = p.hard_packets, None
        if p.shared_key and (hard is None or hard > KEY_CAP) and p.n_sub_sas > 1:
            hard, req = KEY_CAP, "LIMIT-2POW64-SHARED-KEY"
        sums = p.sums_kept or p.n_sub_sas == 1
        share = (lambda v: None if v is None else (v if sums else v // p.n_sub_sas))
        if req is None:
            req = "LIMIT-HARD-SUM" if sums else "LIMIT-HARD-PER-SUBSA"
        return cls(
            n=p.n_sub_sas, sums_kept=sums, counter_max=(1 << bits) - 1,
            packets_per_subsa=None if sums else share(hard),
            packets_total=hard if sums else None,
            bytes_per_subsa=None if sums else share(p.hard_bytes),
            bytes_total=p.hard_bytes if sums else None,
            soft_packets=p.soft_packets, soft_bytes=p.soft_bytes,
            packets_requirement=req,
            bytes_requirement="LIMIT-HARD-SUM" if sums else "LIMIT-HARD-PER-SUBSA",
        )


def refusal(pol: LimitPolicy, counter: int, packets: int, nbytes: int,
            total_packets: int, total_bytes: int, payload_len: int) -> SendRefused | None:
    """Why the next packet of ``payload_len`` bytes on a sub-SA may not be sent, or None.
    ``counter`` is the sub-SA's current counter, ``packets``/``nbytes`` what it has sent,
    ``total_*`` the sums over all sub-SAs."""
    if counter >= pol.counter_max:
        return CounterExhausted(f"counter at {counter}, the maximum for this sub-SA; "
                                f"sending would wrap it")
    if pol.packets_per_subsa is not None and packets >= pol.packets_per_subsa:
        return HardLimitReached(f"sub-SA sent {packets} packets, its share of the hard "
                                f"limit is {pol.packets_per_subsa}",
                                requirement=pol.packets_requirement)
    if pol.packets_total is not None and total_packets >= pol.packets_total:
        return HardLimitReached(f"sub-SAs sent {total_packets} packets together, the hard "
                                f"limit is {pol.packets_total}",
                                requirement=pol.packets_requirement)
    if pol.bytes_per_subsa is not None and nbytes + payload_len > pol.bytes_per_subsa:
        return HardLimitReached(f"sub-SA would reach {nbytes + payload_len} bytes, its share "
                                f"of the hard limit is {pol.bytes_per_subsa}",
                                requirement=pol.bytes_requirement)
    if pol.bytes_total is not None and total_bytes + payload_len > pol.bytes_total:
        return HardLimitReached(f"sub-SAs would reach {total_bytes + payload_len} bytes "
                                f"together, the hard limit is {pol.bytes_total}",
                                requirement=pol.bytes_requirement)
    return None


def rekey_due(pol: LimitPolicy, packets: list[int], nbytes: list[int]) -> str | None:
    """The requirement ID that makes a rekey due now, or None."""
    if pol.sums_kept:
        if pol.soft_packets is not None and sum(packets) >= pol.soft_packets:
            return "LIMIT-REKEY-SUM"
        if pol.soft_bytes is not None and sum(nbytes) >= pol.soft_bytes:
            return "LIMIT-REKEY-SUM"
        return None
    if pol.soft_packets is not None and max(packets) * pol.n >= pol.soft_packets:
        return "LIMIT-REKEY-MAX-N"
    if pol.soft_bytes is not None and max(nbytes) * pol.n >= pol.soft_bytes:
        return "LIMIT-REKEY-MAX-N"
    return None
