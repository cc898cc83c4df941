"""Directed limit cases: the counter never wraps, hard limits split across sub-SAs, the
2^64 cap of a shared key, byte limits, rekey thresholds, receiver enforcement.

Theory of operation: the session is opened on a variant of the profile with the limit
under test set (``hard_packets = 8 N`` and the like, so a case needs a few dozen packets),
or counters are moved next to the edge with ``Session.jump_iut``. The judge's expected
sender refuses exactly where the seed draft says the IUT must (counter_max, floor(L/N) per
sub-SA without sums, L in total with them, 2^64 per shared key), and reports both a packet
sent where a refusal was due and a refusal where none was. Rekey state is not part of the
IUT contract; an IUT that offers ``rekey_due()`` (returning a requirement ID or None) is
compared with the model after every packet.
"""

from __future__ import annotations

from harness.contract import Capabilities
from harness.engine.judge import Finding, Verdict
from harness.engine.session import Session
from spec_model import Mode, Profile
from spec_model.limits import KEY_CAP, LimitPolicy

from . import CaseContext, case
from .wire import (aligned, deliver, inject, limits_enforced, needs, opened, payload_for,
                   peer, peer_custom, sequence_numbers, set_counters, sub_sas, variant)

PER_SUBSA = 8          # hard packet share per sub-SA in the variants below
BYTES_PER_SUBSA = 1000


def _wrap_profile(profile: Profile, caps: Capabilities) -> tuple[Profile | None, str | None]:
    """The profile, or (when a shared key's 2^64 share ends a sub-SA before its counter
    space does) the variant whose sub-SAs keep sums, so counter_max is reachable."""
    pol = LimitPolicy.of(profile)
    if pol.packets_per_subsa is not None and pol.packets_per_subsa < pol.counter_max:
        return variant(profile, caps, sums_kept=True)
    return profile, None


@case("limits", "counter-no-wrap", requirements=("SEQ-NO-WRAP", "SEND-WITHIN-LIMITS"),
      applies=needs(set_counters, lambda p, c: _wrap_profile(p, c)[1]))
def counter_no_wrap(ctx: CaseContext) -> None:
    """At counter_max - 1 a sub-SA sends once more (counter_max) and then refuses: its counter never wraps."""
    with opened(ctx, _wrap_profile(ctx.profile, ctx.caps)[0]) as s:
        p = s.profile
        top = s.judge.expected.policy.counter_max
        sub = p.n_sub_sas - 1
        s.jump_iut(sub, top - 1)
        s.iut_send(sub, 16)                 # carries counter_max: must be sent
        s.iut_send(sub, 16)                 # would wrap: must be refused
        s.iut_send(sub, 0)
        if p.n_sub_sas > 1:
            s.iut_send(0, 16)               # the other sub-SAs are not affected


def _hard_variants(profile: Profile, caps: Capabilities) -> list[Profile]:
    n = profile.n_sub_sas
    out = [variant(profile, caps, hard_packets=PER_SUBSA * n)[0]]
    if n > 1:
        out.append(variant(profile, caps, hard_packets=PER_SUBSA * n, sums_kept=True)[0])
    return out


def _applies_hard(profile: Profile, caps: Capabilities) -> str | None:
    n = profile.n_sub_sas
    return (limits_enforced(profile, caps)
            or variant(profile, caps, hard_packets=PER_SUBSA * n)[1]
            or (variant(profile, caps, hard_packets=PER_SUBSA * n, sums_kept=True)[1]
                if n > 1 else None))


@case("limits", "hard-limit-split", requirements=(
    "LIMIT-HARD-PER-SUBSA", "LIMIT-HARD-SUM", "SEND-WITHIN-LIMITS"), applies=_applies_hard)
def hard_limit_split(ctx: CaseContext) -> None:
    """With L = 8 N packets, each sub-SA sends 8 and refuses the 9th; where sums are kept one sub-SA may send all 8 N and then everyone refuses."""
    per_subsa, summed = (_hard_variants(ctx.profile, ctx.caps) + [None])[:2]
    with opened(ctx, per_subsa) as s:
        n = s.profile.n_sub_sas
        for _ in range(PER_SUBSA):
            for sub in range(n):
                s.iut_send(sub, 8)
        for sub in range(n):
            s.iut_send(sub, 8)              # the 9th: refused
    if summed is not None:
        with opened(ctx, summed) as s:
            for _ in range(PER_SUBSA * n):
                s.iut_send(0, 8)            # one sub-SA uses the whole limit
            for sub in range(n):
                s.iut_send(sub, 8)          # refused everywhere now


def rekey_due_verb(s: Session, requirement: str):
    """The IUT's optional rekey_due verb, or None after an INFO finding under
    ``requirement`` that says the IUT does not report rekey state."""
    report = getattr(s.iut, "rekey_due", None)
    if callable(report):
        return report
    s.judge_all([Finding(requirement, "IUT does not report rekey state (no rekey_due "
                                      "method)", Verdict.INFO)])
    return None


def _rekey_variants(profile: Profile, caps: Capabilities) -> list[Profile]:
    n = profile.n_sub_sas
    cands = [dict(soft_packets=4 * n), dict(soft_bytes=400 * n)]
    if n > 1:
        cands += [dict(soft_packets=4 * n, sums_kept=True), dict(soft_bytes=400 * n,
                                                                  sums_kept=True)]
    return [v for v in (variant(profile, caps, **c)[0] for c in cands) if v is not None]


@case("limits", "rekey-due", requirements=("LIMIT-REKEY-SUM", "LIMIT-REKEY-MAX-N"))
def rekey_due(ctx: CaseContext) -> None:
    """The IUT's rekey_due() (optional) agrees with the model after every packet: max x N without sums, the sum with them, for packets and bytes."""
    for profile in _rekey_variants(ctx.profile, ctx.caps):
        with opened(ctx, profile) as s:
            report = rekey_due_verb(s, "LIMIT-REKEY-SUM")
            if report is None:
                return
            n = s.profile.n_sub_sas
            # sub-SA 0 alone first (max x N reaches the threshold N times sooner than the
            # sum), then everybody in turn
            plan = [0] * 5 + [sub for _ in range(5) for sub in range(n)]
            for sub in plan:
                s.iut_send(sub, 80)
                want = s.judge.expected.rekey_due()
                got = s._call("rekey_due", report)
                if (got is None) != (want is None):
                    rule = want or ("LIMIT-REKEY-SUM" if s.judge.expected.policy.sums_kept
                                    else "LIMIT-REKEY-MAX-N")
                    s.judge_all([Finding.of(rule, (
                        f"after {s.judge.sent} packets (per sub-SA "
                        f"{s.judge.expected.packets}, bytes {s.judge.expected.nbytes}) the "
                        f"model says rekey {'is due' if want else 'is not due'}, the IUT "
                        f"says {got!r}"))])
                elif got != want:
                    s.judge_all([Finding(want, f"rekey due: the IUT names {got}, the model "
                                               f"{want}", Verdict.INFO)])


def _cap_share(profile: Profile) -> int:
    return KEY_CAP // profile.n_sub_sas


def _applies_cap(profile: Profile, caps: Capabilities) -> str | None:
    if not profile.shared_key:
        return "sub-SAs have keys of their own"
    why = sub_sas(profile, caps) or set_counters(profile, caps)
    if why:
        return why
    if LimitPolicy.of(profile).counter_max < _cap_share(profile):
        return "a sub-SA's counter space ends before its 2^64 / N share"
    return None


@case("limits", "shared-key-2pow64", requirements=(
    "LIMIT-2POW64-SHARED-KEY", "SEND-WITHIN-LIMITS"), applies=_applies_cap)
def shared_key_cap(ctx: CaseContext) -> None:
    """Sub-SAs sharing a key stop at 2^64 / N packets each, or at 2^64 together where sums are kept."""
    with opened(ctx) as s:
        n = s.profile.n_sub_sas
        share = _cap_share(s.profile)
        for sub in sorted({0, n - 1}):
            s.jump_iut(sub, share - 1)
            s.iut_send(sub, 8)              # packet number 2^64 / N: sent
            s.iut_send(sub, 8)              # refused
        if n > 2:
            s.iut_send(1, 8)                # a sub-SA far from its share
    summed, why = variant(ctx.profile, ctx.caps, sums_kept=True)
    if summed is None:
        return
    with opened(ctx, summed) as s:
        n = s.profile.n_sub_sas
        top = s.judge.expected.policy.counter_max
        s.jump_iut(0, min(top - 1, KEY_CAP // 2))
        s.jump_iut(n - 1, KEY_CAP - 3 - s.judge.expected.counters[0])
        for sub in (0, n - 1, 0, n - 1, 0):  # 3 more fit (2^64 in all), then none
            s.iut_send(sub, 8)


def _applies_bytes(profile: Profile, caps: Capabilities) -> str | None:
    n = profile.n_sub_sas
    return (limits_enforced(profile, caps)
            or variant(profile, caps, hard_bytes=BYTES_PER_SUBSA * n)[1])


def _sizes_for(profile: Profile, lengths: list[int]) -> list[int]:
    """make_payload sizes that give payloads of the given lengths (tunnels add 20)."""
    extra = 20 if profile.mode is Mode.TUNNEL else 0
    return [k - extra for k in lengths]


@case("limits", "hard-bytes", requirements=(
    "LIMIT-HARD-PER-SUBSA", "LIMIT-HARD-SUM", "SEND-WITHIN-LIMITS"), applies=_applies_bytes)
def hard_bytes(ctx: CaseContext) -> None:
    """A byte limit of 1000 N: each sub-SA sends up to exactly 1000 payload bytes, refusing a packet that would pass it and accepting a smaller one that fits."""
    n = ctx.profile.n_sub_sas
    with opened(ctx, ctx.profile.replace(hard_bytes=BYTES_PER_SUBSA * n)) as s:
        for sub in range(n):
            for size in _sizes_for(s.profile, [400, 400, 300, 200, 21]):
                s.iut_send(sub, size)       # 400, 800, (1100 refused), 1000, (1021 refused)
    summed = variant(ctx.profile, ctx.caps, hard_bytes=BYTES_PER_SUBSA * n, sums_kept=True)[0]
    if n > 1 and summed is not None:
        with opened(ctx, summed) as s:
            for size in _sizes_for(s.profile, [1000] * n):
                s.iut_send(0, size)         # one sub-SA uses all of it
            for sub in range(n):
                s.iut_send(sub, _sizes_for(s.profile, [21])[0])   # refused everywhere


def _applies_receiver(profile: Profile, caps: Capabilities) -> str | None:
    return (sequence_numbers(profile, caps) or limits_enforced(profile, caps)
            or variant(profile, caps, hard_packets=PER_SUBSA * profile.n_sub_sas)[1])


@case("limits", "receiver-enforce", requirements=("LIMIT-RECEIVER-ENFORCE", "RECV-ACCEPT-VALID"),
      applies=_applies_receiver)
def receiver_enforce(ctx: CaseContext) -> None:
    """With L = 8 N packets, a receiver accepts a sub-SA's 8th packet and should drop an authentic 9th."""
    n = ctx.profile.n_sub_sas
    with opened(ctx, ctx.profile.replace(hard_packets=PER_SUBSA * n)) as s:
        p = s.profile
        for sub in sorted({0, n - 1}):
            for _ in range(PER_SUBSA):
                deliver(s, peer(s, sub))
            payload, nh = payload_for(p, 8)
            over = peer_custom(s, sub, aligned(p, payload, nh), next_header=nh,
                               counter=PER_SUBSA + 1, advance=False)
            inject(s, over, f"authentic packet {PER_SUBSA + 1} on sub-SA {sub}, past its "
                            f"share of the hard limit")
