"""Limits of a sender: hard and soft packet and byte limits, the 2^64 cap of a key.

Theory of operation
-------------------
The profile's ``spec_model.limits.LimitPolicy`` says what a sender may send: a share of
the hard limits per sub-SA, or the hard limits summed over the sub-SAs (when the profile
keeps sums), and the soft limit from which a rekey is due. ``SaLimits`` is the limit
state of one SA's check: per sub-SA the packets it has sent *at least* -- a counter value
is a lower bound of the packets its sub-SA sent, whatever the capture missed -- and the
sums; each hard limit is reported once (per sub-SA for a share), the soft limit once as
an INFO. An SA whose policy has no limit keeps no state.

A key may protect several SAs (the same key material given twice) or, shared by
sub-SAs, all of one SA's packets: ``key_usage`` adds up what each key protected in one
pass, and ``check_key_cap`` reports a key past 2^64 packets (LIMIT-2POW64-SHARED-KEY)
once the passes of all workers are merged. Sequence numbers and nonces are the other
rule modules' concern (``sequence``, ``nonces``).
"""

from __future__ import annotations

from spec_model.limits import KEY_CAP, LimitPolicy

from .report import FindingSink

__all__ = ["SaLimits", "check_key_cap", "key_usage"]


class SaLimits:
    """Packets and bytes one SA's sub-SAs have sent, against its ``LimitPolicy``."""

    __slots__ = ("policy", "active", "sent", "sent_total", "bytes_total", "reported")

    def __init__(self, policy: LimitPolicy, n_sub_sas: int) -> None:
        pol = self.policy = policy
        #: whether the policy limits anything (else ``account`` need not be called)
        self.active = any(v is not None for v in (
            pol.packets_per_subsa, pol.packets_total, pol.bytes_per_subsa, pol.bytes_total,
            pol.soft_packets, pol.soft_bytes))
        self.sent = [0] * n_sub_sas     # packets each sub-SA sent at least
        self.sent_total = 0
        self.bytes_total = 0            # payload bytes of the packets accounted
        self.reported: set = set()

    def account(self, sink: FindingSink, n: int, foff: int, spi: int, sub: int,
                counter: int, packets: int, sub_bytes: int, payload: int) -> None:
        """One more authenticated packet of sub-SA ``sub`` (``packets`` and ``sub_bytes``
        are the sub-SA's totals with it, ``payload`` its payload bytes)."""
        pol = self.policy
        self.bytes_total += payload
        sent = max(packets, counter)     # a counter value is a packet count
        if sent > self.sent[sub]:
            self.sent_total += sent - self.sent[sub]
            self.sent[sub] = sent
        rep = self.reported
        if pol.packets_per_subsa is not None and sent > pol.packets_per_subsa \
                and ("p", sub) not in rep:
            rep.add(("p", sub))
            sink.check(pol.packets_requirement, n, foff, spi, sub,
                       f"sub-SA has sent at least {sent} packets, its share of the hard "
                       f"limit is {pol.packets_per_subsa}")
        if pol.bytes_per_subsa is not None and sub_bytes > pol.bytes_per_subsa \
                and ("b", sub) not in rep:
            rep.add(("b", sub))
            sink.check(pol.bytes_requirement, n, foff, spi, sub,
                       f"sub-SA has sent {sub_bytes} payload bytes, its share of the "
                       f"hard limit is {pol.bytes_per_subsa}")
        if pol.packets_total is not None or pol.bytes_total is not None or \
                pol.soft_packets is not None or pol.soft_bytes is not None:
            total = self.sent_total
            nbytes = self.bytes_total
            if pol.packets_total is not None and total > pol.packets_total and "P" not in rep:
                rep.add("P")
                sink.check(pol.packets_requirement, n, foff, spi, sub,
                           f"sub-SAs have sent at least {total} packets together, the hard "
                           f"limit is {pol.packets_total}")
            if pol.bytes_total is not None and nbytes > pol.bytes_total and "B" not in rep:
                rep.add("B")
                sink.check(pol.bytes_requirement, n, foff, spi, sub,
                           f"sub-SAs have sent {nbytes} payload bytes together, the hard "
                           f"limit is {pol.bytes_total}")
            if "S" not in rep and (
                    (pol.soft_packets is not None and total >= pol.soft_packets) or
                    (pol.soft_bytes is not None and nbytes >= pol.soft_bytes)):
                rep.add("S")
                sink.info("rekey-due", n, foff, spi, sub,
                          f"soft limit reached ({total} packets, {nbytes} bytes): a rekey "
                          f"is due from here", requirement="LIMIT-REKEY-SUM"
                          if pol.sums_kept else "LIMIT-REKEY-MAX-N")


def key_usage(check, into: dict) -> None:
    """Add to ``into`` (key_id -> packets) what the sub-SAs ``check`` owns protected under
    each key: at least their packets, at least their highest counter."""
    for s in (range(check.n) if check.owned is None else check.owned):
        if check.subs[s] is not None:
            kid = check.subs[s][2]
            into[kid] = into.get(kid, 0) + max(check.pkts[s], check.highest[s])


def check_key_cap(sink: FindingSink, usage: dict) -> None:
    """LIMIT-2POW64-SHARED-KEY for every key that protected more than 2^64 packets."""
    for kid, used in usage.items():
        if used > KEY_CAP:
            sink.check("LIMIT-2POW64-SHARED-KEY", 0, -1, None, None,
                       f"key {kid} protected at least {used} packets across its SAs and "
                       f"sub-SAs, more than 2^64")
