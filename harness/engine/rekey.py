"""Rekey: a session's SAs replaced by new ones, and the judge that knows the old ones.

Theory of operation: ``rekey(session, sa_pair)`` is the body of the ``Session.rekey``
move. It derives the next SA pair with the session's ``sa_pair`` from its label and the
rekey's ordinal (``label/rekeyN`` with the run's seed, so a replay builds the same SAs;
the derivation is handed in, so this module does not import the session's), hands both
to the IUT's optional ``rekey`` verb, and replaces the judge by a ``RekeyedJudge`` on the
new SAs. Its four model ends are fresh: the expected sender's counters and counts start at 0 (RFC 4303 §3.3.3,
seed §4.5), and the reference receiver's windows are empty (RFC 4303 §3.4.3).

The new judge remembers what it replaced, so that a disagreement names the rekey rule
rather than the generic one:

* the first packet of a new sub-SA's counter must carry 1 (REKEY-FRESH-COUNTER, where a
  plain session would say SEQ-FIRST-ONE); a packet on an old outbound SPI is REKEY-OLD-SA;
* a refusal the new key's counts do not explain, but the old and new counts together
  would, is REKEY-LIMITS-RESTART (limits and the 2^64 cap count per key), or
  REKEY-FRESH-COUNTER when it is the old counter that would run out;
* a new-SA packet the model delivers and the IUT drops for replay (or a wrong ESN
  inference) while the new window is still behind where the old one stood is
  REKEY-FRESH-WINDOW;
* packets on an old inbound SPI (still in flight, or replayed) are judged as the IUT's
  capabilities say: with ``rekey_overlap`` the SA just replaced stays open, judged by the
  previous judge with its own reference receiver and window; otherwise (and for SAs two
  rekeys back) the model drops them as having no SA, and a delivery is REKEY-OLD-SA.

The nonce ledger is carried over, so a new SA that reused the old key and nonces would
still be caught. Nothing here does I/O beyond the IUT call through ``Session._call``.
"""

from __future__ import annotations

from typing import Callable

from spec_model.errors import CounterExhausted, DecodeError
from spec_model.limits import refusal
from spec_model.receiver import Dropped
from spec_model.subsa import locate, owns_spi

from spec_model import Profile

from ..contract import Capabilities, Refused, SaConfig
from .judge import Finding, Judge, Verdict

# how a session derives an SA pair from (profile, label, seed): ``session.sa_pair``
Derive = Callable[[Profile, str, int], tuple[SaConfig, SaConfig]]

# findings of "the model delivers it, the IUT drops it" that an old window explains
WINDOW_RULES = frozenset({"REPLAY-WINDOW-SIZE", "REPLAY-PER-SUBSA-WINDOW", "ESN-INFER-CASE-A",
                          "ESN-INFER-CASE-B", "RECV-ACCEPT-VALID"})


def next_sas(s, generation: int, sa_pair: Derive) -> tuple[SaConfig, SaConfig]:
    """The SA pair of the session ``s``'s ``generation``-th rekey, with SPIs none of its
    earlier SAs used (a collision of the 30-bit derivation is skipped, deterministically)."""
    used = {s.outbound.spi, s.inbound.spi} | {c.spi for c in getattr(s.judge, "old_sas", ())}
    label = f"{s.label}/rekey{generation}"
    while True:
        out, inb = sa_pair(s.profile, label, s.seed)
        if out.spi not in used and inb.spi not in used:
            return out, inb
        label += "+"


def rekey(s, sa_pair: Derive) -> None:
    """Replace the SAs of the session ``s`` in the IUT and in the judge (the body of
    ``Session.rekey``, which hands over its ``sa_pair``)."""
    generation = getattr(s.judge, "generation", 0) + 1
    outbound, inbound = next_sas(s, generation, sa_pair)
    verb = getattr(s.iut, "rekey", None)
    if not callable(verb):
        s.judge_all([Finding.of("IUT-CONTRACT", "the IUT declares Capabilities.rekey but "
                                                "has no rekey verb")])
    installed = s._call("rekey", verb, outbound, inbound)
    if installed is not None and s.caps.negotiates_keys:
        outbound, inbound = installed          # the SAs the IUT negotiated itself
    s.judge = RekeyedJudge(outbound, inbound, s.caps, s.judge, generation)
    s.outbound, s.inbound = outbound, inbound


class RekeyedJudge(Judge):
    """A judge on the SAs of a rekey, which knows the SAs they replaced."""

    def __init__(self, outbound: SaConfig, inbound: SaConfig, caps: Capabilities,
                 previous: Judge, generation: int) -> None:
        super().__init__(outbound, inbound, caps)
        self.generation = generation
        self.ledger, self.sent = previous.ledger, previous.sent
        old_out = getattr(previous, "old_outbound", ()) + (previous.outbound,)
        old_in = getattr(previous, "old_inbound", ()) + (previous.inbound,)
        self.old_outbound, self.old_inbound = old_out, old_in
        self.old_sas = old_out + old_in
        # what every key before this one protected, per sub-SA (counter, packets, bytes)
        carried = getattr(previous, "carried", None) or [[0] * len(previous.expected.counters)
                                                         for _ in range(3)]
        e = previous.expected
        self.carried = [[a + b for a, b in zip(carried[0], e.counters)],
                        [a + b for a, b in zip(carried[1], e.packets)],
                        [a + b for a, b in zip(carried[2], e.nbytes)]]
        # where the old windows stood (the highest over the SAs replaced so far)
        self.old_tops = dict(getattr(previous, "old_tops", {}))
        for sub, w in previous.reference.windows.items():
            self.old_tops[sub] = max(self.old_tops.get(sub, 0), w.top)
        # the SA just replaced stays open in an overlap (and only that one)
        self.overlap: Judge | None = previous if caps.rekey_overlap else None
        if isinstance(previous, RekeyedJudge):
            previous.overlap = None

    # --- the IUT as sender ----------------------------------------------------------------
    def on_protect(self, sub_sa, payload, next_header, result) -> list[Finding]:
        findings = super().on_protect(sub_sa, payload, next_header, result)
        if not (isinstance(result, Refused) and findings
                and findings[0].requirement == "SEND-WITHIN-LIMITS"):
            return findings
        old = self._refusal_with_old_counts(sub_sa, len(payload))
        if isinstance(old, CounterExhausted):
            return [Finding.of("REKEY-FRESH-COUNTER", (
                f"IUT refused a packet on sub-SA {sub_sa} of the new SA (rekey "
                f"{self.generation}) as if its counter went on from the old SA's "
                f"({result.detail})"))]
        if old is not None:
            return [Finding.of("REKEY-LIMITS-RESTART", (
                f"IUT refused a packet on sub-SA {sub_sa} of the new SA (rekey "
                f"{self.generation}) that the new key's counts allow; the old and new "
                f"counts together would not: its limits did not restart ({result.detail})"))]
        return findings

    def _refusal_with_old_counts(self, sub_sa: int, payload_len: int):
        """The refusal the packet would get if the old SAs' counts had been kept."""
        e, (counters, packets, nbytes) = self.expected, self.carried
        if not 0 <= sub_sa < len(e.counters):
            return None
        c, p, b = ([x + y for x, y in zip(old, new)] for old, new in
                   ((counters, e.counters), (packets, e.packets), (nbytes, e.nbytes)))
        return refusal(e.policy, c[sub_sa], p[sub_sa], b[sub_sa], sum(p), sum(b),
                       payload_len)

    def _check_sent(self, sub_sa, payload, wire, expected) -> list[Finding]:
        try:
            spi = self.opener.codec.decode(wire).spi
        except DecodeError:
            spi = None
        p = self.outbound.profile
        if spi is not None and not owns_spi(p, self.outbound.spi, spi):
            for old in self.old_outbound:
                if owns_spi(p, old.spi, spi):
                    return [Finding.of("REKEY-OLD-SA", (
                        f"IUT packet {self.sent} on sub-SA {sub_sa} after rekey "
                        f"{self.generation} carries SPI {spi:#x} of the SA the rekey "
                        f"replaced, not the new SPI {self.outbound.spi:#x}"))]
        return super()._check_sent(sub_sa, payload, wire, expected)

    def _seq_rule(self, sub_sa: int, seq: int, expected) -> str:
        if expected.counter == 1:
            return "REKEY-FRESH-COUNTER"
        return super()._seq_rule(sub_sa, seq, expected)

    # --- the IUT as receiver ----------------------------------------------------------------
    def on_unprotect(self, wire: bytes, result, label: str) -> list[Finding]:
        p = self.inbound.profile
        try:
            pkt = self.reference.codec.decode(wire)
        except DecodeError:
            pkt = None
        if pkt is not None and not owns_spi(p, self.inbound.spi, pkt.spi):
            old = next((c for c in self.old_inbound if owns_spi(p, c.spi, pkt.spi)), None)
            if old is not None:
                return self._on_old_sa(old, wire, result, label)
            return super().on_unprotect(wire, result, label)
        behind = False
        if pkt is not None and self.old_tops:
            sub = locate(p, self.inbound.spi, pkt.spi, pkt.session_id, pkt.seq)[0]
            behind = self.reference.top(sub) < self.old_tops.get(sub, 0)
        findings = super().on_unprotect(wire, result, label)
        if behind and isinstance(result, Dropped):
            return [Finding.of("REKEY-FRESH-WINDOW", (
                f"{f.message}; the new SA (rekey {self.generation}) has a window of its "
                f"own, the drop is what the old SA's window would do"))
                if f.requirement in WINDOW_RULES and f.verdict is not Verdict.INFO else f
                for f in findings]
        return findings

    def _on_old_sa(self, old: SaConfig, wire: bytes, result, label: str) -> list[Finding]:
        """A packet for an SA a rekey replaced: the overlap's judge, or no SA at all."""
        if self.overlap is not None and old is self.overlap.inbound:
            return self.overlap.on_unprotect(wire, result, f"{label} (old SA, in the overlap)")
        findings = super().on_unprotect(wire, result, label)
        what = ("the IUT declares no overlap (Capabilities.rekey_overlap)"
                if self.overlap is None and not self.caps.rekey_overlap
                else "only the SA just replaced stays open in an overlap")
        return [Finding.of("REKEY-OLD-SA", f"{f.message}; SPI {old.spi:#x} is of an SA a "
                                           f"rekey replaced and {what}")
                if f.requirement == "SPI-UNKNOWN-DROP" and f.verdict is Verdict.FAIL else f
                for f in findings]
