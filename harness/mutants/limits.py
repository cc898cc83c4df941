"""Limits-family mutants: senders that send where they must refuse, or rekey too late.

Theory of operation: a ``spec_model.Sender`` judges every packet against its
``LimitPolicy`` (``spec_model.limits``): the counter space of a sub-SA, the per-sub-SA
share of the hard limit (or the hard limit of the sum), and the soft limit that makes a
rekey due. Each mutant here either hands the sender a wrong policy (one field changed with
``dataclasses.replace``: the share not divided by N, one packet too many, a counter space
that ignores the sub-SA ID bits) or changes one decision (a counter that wraps, a rekey
judged on one sub-SA's count). The rekey threshold is seen through the optional verb
``rekey_due()``; the others show as a packet where the model refuses. Mutants of the
``rekey`` verb itself are in ``rekey.py``.

The named profiles carry no hard or soft limits of their own; only the 2^64 cap on a key
shared by sub-SAs (``esp-subsa-salt``: 2^62 packets per sub-SA) and the counter space
bound there. ``MutantInfo.needs`` says which profile settings expose the rest.
"""

from __future__ import annotations

from dataclasses import replace

from spec_model import Sender
from spec_model.limits import LimitPolicy, rekey_due
from spec_model.profile import SEQ_COUNTER_BITS

from .base import MutantIut, register


# --- the hard limit is not divided by N --------------------------------------------------

class WholeLimitSender(Sender):
    """Without sums, each sub-SA is allowed the child SA's whole hard limit L."""

    def __init__(self, profile, keymat, spi) -> None:
        super().__init__(profile, keymat, spi)
        if not self.policy.sums_kept:
            whole = LimitPolicy.of(profile.replace(sums_kept=True))
            self.policy = replace(self.policy, packets_per_subsa=whole.packets_total,
                                  bytes_per_subsa=whole.bytes_total)


@register(family="limits",
          bug="the hard limit is not divided by N: without sums each sub-SA may send the "
              "whole L (and the whole 2^64 of a shared key)",
          requirements=("LIMIT-HARD-PER-SUBSA", "LIMIT-2POW64-SHARED-KEY"),
          profiles=("esp-subsa-salt",),
          needs="hard_packets or hard_bytes with n_sub_sas > 1 and sums_kept=False")
class HardLimitNotDivided(MutantIut):
    name = "mutant:hard-limit-not-divided"
    sender_class = WholeLimitSender


# --- rekey due on one sub-SA's count -----------------------------------------------------

class OneSubsaRekeySender(Sender):
    """Rekey is due when one sub-SA's count reaches the soft limit (not the sum, not
    max x N)."""

    def rekey_due(self) -> str | None:
        return rekey_due(replace(self.policy, n=1, sums_kept=False), self.packets,
                         self.nbytes)


@register(family="limits",
          bug="rekey is judged on one sub-SA's count: due only when max over sub-SAs "
              "reaches the soft limit (not the sum, not max x N)",
          requirements=("LIMIT-REKEY-MAX-N", "LIMIT-REKEY-SUM"),
          profiles=(),
          needs="soft_packets or soft_bytes with n_sub_sas > 1 (seen through the optional "
                "IUT verb rekey_due)")
class RekeyOneSubsa(MutantIut):
    name = "mutant:rekey-one-subsa"
    sender_class = OneSubsaRekeySender


# --- the counter wraps -------------------------------------------------------------------

class WrappingSender(Sender):
    """At counter_max the sub-SA's counter goes back to 0 and the packet is sent (SN 1)."""

    def seal(self, sub_sa, payload, next_header=None, **options):
        if 0 <= sub_sa < self._n and self.counters[sub_sa] >= self.policy.counter_max:
            self.counters[sub_sa] = 0
        return super().seal(sub_sa, payload, next_header, **options)


@register(family="limits",
          bug="the counter wraps instead of refusing: after counter_max it restarts at 1 "
              "and keeps sending",
          requirements=("SEQ-NO-WRAP", "NONCE-UNIQUE-PER-KEY"),
          profiles=("esp", "esp-esn", "esp-iiv", "esp-seq64", "esp-subsa-spi",
                    "esp-subsa-seq", "eesp-v0", "eesp-v0-transport", "psp-v0"))
class CounterWraps(MutantIut):
    name = "mutant:counter-wraps"
    sender_class = WrappingSender


# --- the hard limit off by one -----------------------------------------------------------

class OneMoreSender(Sender):
    """The hard-limit test is ``sent > limit`` instead of ``>=``: one packet too many."""

    def __init__(self, profile, keymat, spi) -> None:
        super().__init__(profile, keymat, spi)
        pol = self.policy
        self.policy = replace(
            pol,
            packets_per_subsa=None if pol.packets_per_subsa is None else pol.packets_per_subsa + 1,
            packets_total=None if pol.packets_total is None else pol.packets_total + 1)


@register(family="limits",
          bug="the packet hard limit is off by one: a sub-SA (or the sum) sends one packet "
              "past its limit",
          requirements=("LIMIT-HARD-PER-SUBSA", "LIMIT-HARD-SUM", "LIMIT-2POW64-SHARED-KEY"),
          profiles=("esp-subsa-salt",),
          needs="hard_packets set")
class HardLimitOffByOne(MutantIut):
    name = "mutant:hard-limit-off-by-one"
    sender_class = OneMoreSender


# --- a counter space that ignores the sub-SA ID bits -------------------------------------

class FullCounterSender(Sender):
    """The counter may use every bit of the SN, including those that carry the sub-SA
    ID (ID in the SN) or partition the IV: it spills into another sub-SA's space."""

    def __init__(self, profile, keymat, spi) -> None:
        super().__init__(profile, keymat, spi)
        self.policy = replace(self.policy,
                              counter_max=(1 << SEQ_COUNTER_BITS[profile.seq]) - 1)


@register(family="limits",
          bug="the counter space is not reduced by the sub-SA ID bits: the counter overflows "
              "into the sub-SA ID of the SN or the IV partition",
          requirements=("SEQ-NO-WRAP", "SUBSA-ID-LOCATION", "NONCE-SUBSA-SEPARATION"),
          profiles=("esp-subsa-spi", "esp-subsa-seq"))
class CounterSpaceUnpartitioned(MutantIut):
    name = "mutant:counter-space-unpartitioned"
    sender_class = FullCounterSender
