"""Directed rekey cases: a new SA starts fresh, and the old one is gone (or overlaps).

Theory of operation: each case drives the old SA somewhere a fresh SA is not -- a high
counter (``Session.jump_iut``), a window far to the right (``Session.jump_peer``), a hard
limit or the 2^64 cap of a shared key reached, a soft limit that makes a rekey due --
then replaces both SAs with ``Session.rekey`` (the IUT's optional ``rekey`` verb) and
checks that the new SA behaves as a freshly established one: its first packet carries 1,
its SN 1 is delivered, its limits count from zero, rekey is no longer due. Packets of the
old inbound SA kept in flight across the rekey are delivered afterwards and judged as the
IUT declares: dropped for their unknown SPI, or accepted once (and replays dropped) during
an overlap (``Capabilities.rekey_overlap``). The judge after a rekey
(``harness.engine.rekey.RekeyedJudge``) names the REKEY-* rule a difference breaks. An IUT
without the verb makes every case here UNSUPPORTED. The cases are filed under the
``limits`` and ``replay`` families.
"""

from __future__ import annotations

from harness.contract import Capabilities
from harness.engine.judge import Finding
from harness.engine.session import Session
from spec_model import Profile
from spec_model.limits import KEY_CAP, LimitPolicy

from . import CaseContext, case
from .limits import PER_SUBSA, rekey_due_verb
from .wire import limits_enforced, needs, opened, sequence_numbers, variant

OLD_COUNTER = 1 << 30      # where the old SA's counters are moved (at most half their space)


def has_rekey(profile: Profile, caps: Capabilities) -> str | None:
    return None if caps.rekey else "IUT has no rekey verb (Capabilities.rekey)"


def _ends(s: Session) -> list[int]:
    """The sub-SAs a case drives: the first and the last."""
    return sorted({0, s.profile.n_sub_sas - 1})


@case("limits", "rekey-fresh-counter", requirements=("REKEY-FRESH-COUNTER", "REKEY-OLD-SA"),
      applies=needs(has_rekey, sequence_numbers))
def fresh_counter(ctx: CaseContext) -> None:
    """After the old SA sent many packets (its counter moved to 2^30 where the IUT can set counters), the new SA's first packet carries SN 1 under the new SPI, the next 2."""
    with opened(ctx) as s:
        for sub in _ends(s):
            s.iut_send(sub, 16)
            s.jump_iut(sub, min(OLD_COUNTER, s.judge.expected.policy.counter_max // 2))
            s.iut_send(sub, 16)
        s.rekey()
        for sub in _ends(s):
            s.iut_send(sub, 16)             # SN 1 on the new SA
            s.iut_send(sub, 16)             # SN 2


@case("replay", "rekey-fresh-window", requirements=("REKEY-FRESH-WINDOW", "RECV-ACCEPT-VALID"),
      applies=needs(has_rekey, sequence_numbers))
def fresh_window(ctx: CaseContext) -> None:
    """The old inbound SA accepts a packet far right (4 W + 100 ahead); after the rekey the new SA's SN 1 and 2 are delivered: its window starts empty."""
    with opened(ctx) as s:
        for sub in _ends(s):
            s.peer_send(sub, 8)
            s.deliver(-1)
            s.jump_peer(sub, 4 * s.profile.window + 100)
            s.peer_send(sub, 8)
            s.deliver(-1)
        s.rekey()
        for sub in _ends(s):
            for _ in range(2):
                s.peer_send(sub, 8)         # SN 1, then 2, of the new SA
                s.deliver(-1)


@case("replay", "rekey-old-sa", requirements=(
    "REKEY-OLD-SA", "SPI-UNKNOWN-DROP", "RECV-ACCEPT-VALID", "REPLAY-DUPLICATE-DROP"),
      applies=has_rekey)
def old_sa(ctx: CaseContext) -> None:
    """Packets of the old inbound SA in flight across a rekey (a replay of one it accepted, two it did not, a copy of one of those) are dropped for their unknown SPI, or, where the IUT declares an overlap, judged by the old SA's own window: new ones delivered once, replays dropped; the IUT sends on the new SA only."""
    with opened(ctx) as s:
        for sub in _ends(s):
            s.peer_send(sub, 8)
            s.duplicate(-1)
            s.deliver(-1)                   # accepted on the old SA; its copy stays
            s.peer_send(sub, 8)             # two more stay in flight across the rekey
            s.peer_send(sub, 8)
        s.duplicate(1)                      # a copy of one not yet delivered
        s.iut_send(0, 8)
        s.rekey()
        s.iut_send(0, 8)                    # on the new SA
        s.peer_send(0, 8)
        s.deliver(-1)                       # the new SA works
        while s.in_flight:
            s.deliver(0)                    # the old SA's packets, the copy last


def _restart_variant(profile: Profile, caps: Capabilities) -> tuple[Profile | None, str | None]:
    return variant(profile, caps, hard_packets=PER_SUBSA * profile.n_sub_sas)


def _cap_reachable(profile: Profile, caps: Capabilities) -> bool:
    """The 2^64 / N share of a shared key can be reached by a counter jump."""
    return (profile.shared_key and profile.n_sub_sas > 1 and caps.can_set_counters
            and LimitPolicy.of(profile).counter_max >= KEY_CAP // profile.n_sub_sas)


@case("limits", "rekey-limits-restart", requirements=(
    "REKEY-LIMITS-RESTART", "LIMIT-HARD-PER-SUBSA", "LIMIT-HARD-SUM",
    "LIMIT-2POW64-SHARED-KEY", "SEND-WITHIN-LIMITS"),
      applies=needs(has_rekey, limits_enforced, lambda p, c: _restart_variant(p, c)[1]))
def limits_restart(ctx: CaseContext) -> None:
    """With L = 8 N packets, each sub-SA sends 8 and is refused the 9th; after a rekey it sends 8 again and is refused the 9th. Where sub-SAs share a key, a sub-SA at its 2^64 / N share is refused, and sends again after a rekey."""
    with opened(ctx, _restart_variant(ctx.profile, ctx.caps)[0]) as s:
        n = s.profile.n_sub_sas
        for _ in range(2):
            for _ in range(PER_SUBSA):
                for sub in range(n):
                    s.iut_send(sub, 8)
            for sub in range(n):
                s.iut_send(sub, 8)          # the 9th: refused
            s.rekey()
    if not _cap_reachable(ctx.profile, ctx.caps):
        return
    with opened(ctx) as s:
        share = KEY_CAP // s.profile.n_sub_sas
        sub = s.profile.n_sub_sas - 1
        s.jump_iut(sub, share - 1)
        s.iut_send(sub, 8)                  # packet 2^64 / N: sent
        s.iut_send(sub, 8)                  # refused: the key's share is used up
        s.rekey()
        s.iut_send(sub, 8)                  # a new key: SN 1
        s.jump_iut(sub, share - 1)
        s.iut_send(sub, 8)                  # the new key's packet 2^64 / N
        s.iut_send(sub, 8)                  # refused again


def _due_variant(profile: Profile, caps: Capabilities) -> tuple[Profile | None, str | None]:
    return variant(profile, caps, soft_packets=4 * profile.n_sub_sas)


def _agrees(s: Session, report) -> str | None:
    """Poll the IUT's rekey_due() and judge it against the model; returns the model's."""
    want = s.judge.expected.rekey_due()
    got = s._call("rekey_due", report)
    if (got is None) != (want is None):
        generation = getattr(s.judge, "generation", 0)
        # due too early on a new SA: the rekey did not restart its counts
        rule = want or ("REKEY-DUE-LEADS-TO-REKEY" if generation
                        else "LIMIT-REKEY-SUM" if s.judge.expected.policy.sums_kept
                        else "LIMIT-REKEY-MAX-N")
        s.judge_all([Finding.of(rule, (
            f"after {s.judge.expected.packets} packets per sub-SA on the SA of rekey "
            f"{generation}, the model says rekey {'is due' if want else 'is not due'}, "
            f"the IUT says {got!r}"))])
    return want


@case("limits", "rekey-due-rekeys", requirements=(
    "REKEY-DUE-LEADS-TO-REKEY", "LIMIT-REKEY-SUM", "LIMIT-REKEY-MAX-N", "REKEY-FRESH-COUNTER"),
      applies=needs(has_rekey, lambda p, c: _due_variant(p, c)[1]))
def due_rekeys(ctx: CaseContext) -> None:
    """End to end, twice: packets until the soft limit (4 N packets) makes rekey_due() say due, then a rekey, after which it says not due and packets flow both ways on the new SA."""
    with opened(ctx, _due_variant(ctx.profile, ctx.caps)[0]) as s:
        report = rekey_due_verb(s, "REKEY-DUE-LEADS-TO-REKEY")
        if report is None:
            return
        n = s.profile.n_sub_sas
        for _ in range(2):
            for i in range(8 * n):          # the soft limit is reached within 4 N packets
                s.iut_send(i % n, 80)
                if _agrees(s, report) is not None:
                    break
            s.rekey()
            _agrees(s, report)              # due no more: the new SA has sent nothing
            s.iut_send(0, 80)               # SN 1 on the new SA
            _agrees(s, report)
            s.peer_send(0, 8)
            s.deliver(-1)
