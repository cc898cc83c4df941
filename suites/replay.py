"""Directed anti-replay cases: window edges, per-sub-SA windows, ICV before advance, ESN.

Theory of operation: the model's peer seals packets for the IUT and the scenario picks
which in-flight packet arrives when (``peer``/``deliver`` from ``suites.wire`` keep the
step log replayable). The judge's reference receiver says what must happen to each one,
so a case only has to put the window where the rules have edges: exactly W-1, W and W+1
behind the top, duplicates, packets of another sub-SA, a forged far-ahead packet before a
legitimate old one, the 2^32 boundary of extended sequence numbers from both sides
(RFC 4303 Appendix A cases A and B), sequence number 0, a window of 2^20 and a sub-SA ID
beyond N. Peer counters jump with ``Session.jump_peer`` (the IUT never sees the skipped
packets), always by less than 2^31 between packets the receiver accepts.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from harness.contract import Capabilities
from harness.engine.judge import Finding
from harness.engine.session import ConformanceFailure, Session
from spec_model import Profile, Sender, SeqWire, SubSaLocation
from spec_model.replay import WINDOW_SLACK

from . import CaseContext, case
from .wire import (aligned, deliver, ends, in_flight_index, inject, needs, opened, payload_for,
                   peer, peer_custom, sequence_numbers, sub_sas, variant)


#: rules the judge names when the IUT drops a packet the model delivers: for a replay or
#: too-old verdict of the IUT, and for any drop (ESN inference and the rest)
DROPPED_AS_OLD = frozenset({"REPLAY-WINDOW-SIZE", "REPLAY-PER-SUBSA-WINDOW"})
DROPPED_VALID = DROPPED_AS_OLD | {"RECV-ACCEPT-VALID", "ESN-INFER-CASE-A", "ESN-INFER-CASE-B"}


@contextmanager
def blame(requirement: str, why: str, rules: frozenset[str] = DROPPED_VALID) -> Iterator[None]:
    """Where the scenario knows why a valid packet can be dropped, say so first: a
    failure whose first finding is one of ``rules`` gets a finding for ``requirement``."""
    try:
        yield
    except ConformanceFailure as e:
        if e.findings and e.findings[0].requirement in rules:
            raise ConformanceFailure([Finding.of(requirement, f"{why}: {e.findings[0].message}")]
                                     + e.findings, e.steps) from None
        raise


LIMITS = ("hard_packets", "soft_packets", "hard_bytes", "soft_bytes")


def unlimited(profile: Profile) -> Profile:
    """The profile without packet and byte limits: these scenarios move counters far
    ahead, and limits are the limits family's business."""
    if all(getattr(profile, k) is None for k in LIMITS):
        return profile
    return profile.replace(**{k: None for k in LIMITS})


def _to(s: Session, sub: int, sn: int) -> None:
    """Jump the peer so that its next packet on ``sub`` carries counter ``sn``."""
    s.jump_peer(sub, sn - 1 - s.judge.peer.counters[sub])
    assert s.judge.peer.counters[sub] == sn - 1, (sn, s.judge.peer.counters[sub])


def _run(s: Session, sub: int, first: int, last: int) -> dict[int, bytes]:
    """Seal counters first..last on ``sub`` (all kept in flight), by counter."""
    _to(s, sub, first)
    return {sn: peer(s, sub) for sn in range(first, last + 1)}


@case("replay", "window-edges", requirements=(
    "REPLAY-WINDOW-SIZE", "REPLAY-WINDOW-EXACT", "REPLAY-TOO-OLD-DROP",
    "REPLAY-DUPLICATE-DROP", "RECV-ACCEPT-VALID"), applies=sequence_numbers)
def window_edges(ctx: CaseContext) -> None:
    """Packets exactly W-1 behind the top are accepted, W and W+1 behind dropped (strict: a receiver may keep a wider window), W+64 behind dropped, duplicates dropped, every unseen packet inside the window accepted."""
    with opened(ctx, unlimited(ctx.profile)) as s:
        w = s.profile.window
        for sub in ends(s.profile):
            pkts = {sn: peer(s, sub) for sn in range(1, w + 3)}
            top = w + 2
            deliver(s, pkts[top], keep=True)
            deliver(s, pkts[top - (w - 1)], keep=True)    # the bottom of the window
            deliver(s, pkts[top - w])                     # just left of it
            deliver(s, pkts[top - w - 1])
            deliver(s, pkts[top])                         # the top again
            deliver(s, pkts[top - (w - 1)])               # the bottom again
            for sn in range(top - 1, top - (w - 1), -1):  # the rest of the window, newest first
                deliver(s, pkts[sn], keep=sn % 7 == 0)
            for sn in range(top - 1, top - (w - 1), -1):
                if sn % 7 == 0:
                    deliver(s, pkts[sn])                  # a few duplicates inside
            nxt = peer(s, sub)                            # and the window moves on
            deliver(s, nxt, keep=True)
            deliver(s, nxt)
            s.hold_past_window(sub, WINDOW_SLACK)         # past any wider window: a MUST


@case("replay", "per-subsa-windows", requirements=(
    "REPLAY-PER-SUBSA-WINDOW", "REPLAY-DUPLICATE-DROP", "REPLAY-WINDOW-SIZE"),
    applies=needs(sub_sas, sequence_numbers))
def per_subsa_windows(ctx: CaseContext) -> None:
    """Each sub-SA has its own window: sub-SA 0 racing W+5 ahead leaves sub-SA 1's old packets acceptable, and equal SNs on different sub-SAs are not replays."""
    with opened(ctx, unlimited(ctx.profile)) as s:
        p = s.profile
        w, last = p.window, p.n_sub_sas - 1
        with blame("REPLAY-PER-SUBSA-WINDOW", "traffic on one sub-SA changed what "
                                                "another accepts", DROPPED_AS_OLD):
            b = {sn: peer(s, 1) for sn in range(1, 5)}
            deliver(s, b[3], keep=True)
            a = {sn: peer(s, 0) for sn in range(1, w + 7)}
            deliver(s, a[1], keep=True)
            deliver(s, b[4])
            for sn in range(2, w + 7):                # sub-SA 0 moves W+5 past everything
                deliver(s, a[sn])
            deliver(s, b[1], keep=True)               # old, but inside sub-SA 1's window
            deliver(s, b[2])
            deliver(s, b[1])                          # its duplicate
            deliver(s, b[3])                          # a duplicate on sub-SA 1 ...
            deliver(s, a[1])                          # ... and one on sub-SA 0 (too old now)
            # the same SNs on every other sub-SA are new there
            for sub in range(2, min(p.n_sub_sas, 8)):
                c = {sn: peer(s, sub) for sn in range(1, 4)}
                for sn in (3, 1, 2):
                    deliver(s, c[sn])
            # a sub-SA far ahead does not move sub-SA 0's window
            held = peer(s, 0)
            deliver(s, peer(s, 0))
            _to(s, last, s.judge.peer.counters[last] + w + 10)
            deliver(s, peer(s, last))
            deliver(s, held)


@case("replay", "advance-after-icv", requirements=(
    "REPLAY-ADVANCE-AFTER-ICV", "ICV-VERIFY", "REPLAY-WINDOW-SIZE"),
    applies=sequence_numbers)
def advance_after_icv(ctx: CaseContext) -> None:
    """A bit-flipped or SN-forged packet far ahead (T+W+10) must not move the window: packets just behind T are still accepted afterwards."""
    with opened(ctx, unlimited(ctx.profile)) as s:
        p = s.profile
        w = p.window
        for sub in ends(p):
            pkts = {sn: peer(s, sub) for sn in range(1, 9)}
            top = 8
            deliver(s, pkts[top])
            _to(s, sub, top + w + 10)
            far = peer(s, sub)                    # SN T + W + 10, authentic
            i = in_flight_index(s, far)
            for bit in (8 * len(far) - 1, 8 * (len(far) - p.aead_spec.icv_len - 1),
                        8 * len(far) // 2):
                s.deliver_changed(i, "flip", bit)  # ICV, last ciphertext byte, middle
            with blame("REPLAY-ADVANCE-AFTER-ICV", "after copies of a packet T + W + 10 "
                                                   "with bad ICVs, T - 1 was dropped"):
                deliver(s, pkts[top - 1])         # T - 1: still inside the window
            # a forged sequence number far ahead, on a packet that is still in flight
            s.deliver_changed(in_flight_index(s, pkts[top - 2]), "forge-seq", w + 10)
            s.deliver_changed(in_flight_index(s, pkts[top - 3]), "forge-seq", 1 << 20)
            with blame("REPLAY-ADVANCE-AFTER-ICV", "after forged copies with SNs W + 10 and "
                                                   "2^20 ahead, the originals were dropped"):
                deliver(s, pkts[top - 2])
                deliver(s, pkts[top - 3])
            # the authentic far packet moves the window; T - 4 is then too old
            deliver(s, far)
            deliver(s, pkts[top - 4])


def _esn(profile: Profile, caps: Capabilities) -> str | None:
    return None if profile.seq is SeqWire.ESN else "profile does not use extended sequence numbers"


WRAP = 1 << 32


def _near_wrap(s: Session, sub: int, wrap: int = WRAP) -> dict[int, bytes]:
    """Bring sub-SA ``sub`` to just below ``wrap`` in steps the receiver follows (each
    under 2^31, one accepted packet after each), then seal SNs wrap-W-4 .. wrap+3."""
    w = s.profile.window
    step = (1 << 31) - 1
    while wrap - w - 4 - s.judge.peer.counters[sub] > step:
        _to(s, sub, s.judge.peer.counters[sub] + step)
        deliver(s, peer(s, sub))
    return _run(s, sub, wrap - w - 4, wrap + 3)


@case("replay", "esn-wrap-case-a", requirements=(
    "ESN-INFER-CASE-A", "AAD-ESN-HIGH", "REPLAY-WINDOW-SIZE", "REPLAY-DUPLICATE-DROP"),
    applies=_esn)
def esn_wrap_case_a(ctx: CaseContext) -> None:
    """ESN case A (window inside one subspace): with T just below 2^32 (and 2^33), packets after the wrap get Seqh = Th + 1, packets in the window Th."""
    with opened(ctx, unlimited(ctx.profile)) as s:
        w = s.profile.window
        sub = 0
        for wrap in (WRAP, 2 * WRAP):
            pk = _near_wrap(s, sub, wrap)
            top = wrap - 3
            deliver(s, pk[top], keep=True)
            deliver(s, pk[top - (w - 1)])           # bottom of the window, Seql >= Bl: Th
            deliver(s, pk[wrap - 1])                # Seql >= Bl: Th
            deliver(s, pk[wrap + 2] if wrap > WRAP else pk[wrap])   # Seql < Bl: Th + 1
            deliver(s, pk[top])                     # duplicate, now from the last subspace
        if s.profile.n_sub_sas > 1:
            deliver(s, peer(s, 1))                  # another sub-SA is still at its start


@case("replay", "esn-wrap-case-b", requirements=(
    "ESN-INFER-CASE-B", "AAD-ESN-HIGH", "REPLAY-TOO-OLD-DROP", "REPLAY-DUPLICATE-DROP",
    "REPLAY-WINDOW-SIZE"), applies=_esn)
def esn_wrap_case_b(ctx: CaseContext) -> None:
    """ESN case B (window straddling 2^32): with T just after the wrap, late packets from the previous subspace get Seqh = Th - 1, the rest Th; low word 0 is valid."""
    with opened(ctx, unlimited(ctx.profile)) as s:
        w = s.profile.window
        sub = s.profile.n_sub_sas - 1
        pk = _near_wrap(s, sub)
        deliver(s, pk[WRAP - 3])
        top = WRAP + 2
        deliver(s, pk[top], keep=True)              # crossing: T's low word is 2 < W - 1
        for sn in (WRAP - 1, WRAP - 2, WRAP - 5):   # previous subspace, inside the window
            deliver(s, pk[sn], keep=sn == WRAP - 1)
        deliver(s, pk[WRAP], keep=True)             # low word 0 of the current subspace
        deliver(s, pk[WRAP + 1])
        deliver(s, pk[top - (w - 1)])               # bottom of the window: Seql == Bl
        deliver(s, pk[top - w])                     # W behind: too old
        deliver(s, pk[top - w - 1])
        deliver(s, pk[WRAP - 1])                    # duplicates on both sides of the wrap
        deliver(s, pk[WRAP])
        deliver(s, pk[top])
        deliver(s, pk[WRAP + 3])                    # and the window moves on
        if s.profile.n_sub_sas > 1:
            deliver(s, peer(s, 0))


def _forge_zero(s: Session, wire: bytes) -> None:
    """Deliver a copy of an in-flight packet whose sequence number field reads 0."""
    p = s.profile
    width = 64 if p.seq is SeqWire.SEQ64 else 32
    field = s.judge.reference.codec.decode(wire).seq
    mask = ~((1 << (width - p.seq_bits_for_id)) - 1) & ((1 << width) - 1)
    target = field & mask          # keep the sub-SA ID bits, zero the counter
    s.deliver_changed(in_flight_index(s, wire), "forge-seq", (target - field) % (1 << width))


@case("replay", "seq-zero", requirements=("REPLAY-SEQ-ZERO", "ICV-VERIFY",
                                           "REPLAY-TOO-OLD-DROP"), applies=sequence_numbers)
def seq_zero(ctx: CaseContext) -> None:
    """Sequence number 0 is never accepted: neither an authentic packet carrying it nor a copy whose SN field was zeroed, early (T < W) or late (T >= W)."""
    with opened(ctx, unlimited(ctx.profile)) as s:
        p = s.profile
        w = p.window
        for sub in ends(p):
            pkts = {sn: peer(s, sub) for sn in range(1, 5)}
            deliver(s, pkts[1])
            deliver(s, pkts[2])
            payload, nh = payload_for(p, 8)
            zero = peer_custom(s, sub, aligned(p, payload, nh), next_header=nh, counter=0)
            inject(s, zero, f"authentic packet on sub-SA {sub} with counter 0 (T small)")
            _forge_zero(s, pkts[3])
            deliver(s, pkts[3])
            _to(s, sub, s.judge.peer.counters[sub] + w + 5)
            deliver(s, peer(s, sub))                   # T >= W now
            inject(s, zero, f"authentic packet on sub-SA {sub} with counter 0 (T >= W)")
            _forge_zero(s, pkts[4])
            deliver(s, peer(s, sub))


BIG = 1 << 20


def _applies_big(profile: Profile, caps: Capabilities) -> str | None:
    if not profile.replay_protected:
        return "no sequence number"
    if caps.replay_window is not None:
        return f"IUT has a fixed window of {caps.replay_window}"
    return variant(profile, caps, window=BIG)[1]


@case("replay", "large-window", requirements=("REPLAY-WINDOW-SIZE", "REPLAY-TOO-OLD-DROP",
                                               "REPLAY-DUPLICATE-DROP"), applies=_applies_big)
def large_window(ctx: CaseContext) -> None:
    """A window of 2^20: packets 2^20 - 1 behind the top are accepted, 2^20 behind dropped, after a jump of the top by about 2^20."""
    with opened(ctx, unlimited(ctx.profile).replace(window=BIG)) as s:
        sub = s.profile.n_sub_sas - 1
        pkts = {sn: peer(s, sub) for sn in range(1, 6)}
        deliver(s, pkts[1])
        top = BIG + 2                              # pkts[3] is exactly W - 1 behind it
        _to(s, sub, top)
        t = peer(s, sub)
        deliver(s, t, keep=True)
        deliver(s, pkts[3])
        deliver(s, pkts[2])                        # exactly W behind: too old
        deliver(s, pkts[5], keep=True)
        deliver(s, pkts[4])
        deliver(s, t)                              # duplicates
        deliver(s, pkts[5])
        deliver(s, peer(s, sub))                   # T + 1
        late = {sn: peer(s, sub) for sn in range(top + 2, top + 4)}
        _to(s, sub, top + BIG + 10)
        deliver(s, peer(s, sub))                   # jump a whole window ahead
        deliver(s, late[top + 2])                  # too old now
        deliver(s, late[top + 3])


def _range_variant(profile: Profile) -> tuple[int, int]:
    """(N for the IUT, N for the peer) so that the peer has a sub-SA ID >= the IUT's N
    that the IUT's wire format can carry."""
    n = profile.n_sub_sas
    if profile.subsa is SubSaLocation.HEADER:
        return n, n + 1
    iut_n = n if n & (n - 1) else (n - 1 if n > 2 else 3)
    return iut_n, 1 << (iut_n - 1).bit_length()


def _applies_range(profile: Profile, caps: Capabilities) -> str | None:
    why = sub_sas(profile, caps)
    if why:
        return why
    iut_n, peer_n = _range_variant(profile)
    if peer_n > 1 << 16:
        return "the sub-SA ID space is full"
    for n in (iut_n, peer_n):
        why = variant(profile, caps, n_sub_sas=n)[1]
        if why:
            return why
    return None


@case("replay", "subsa-id-range", requirements=(
    "SUBSA-ID-RANGE", "SUBSA-ID-AUTHENTICATED",
    "RECV-ACCEPT-VALID"), applies=_applies_range)
def subsa_id_range(ctx: CaseContext) -> None:
    """An authentic packet on a sub-SA ID >= N (sealed by a peer with more sub-SAs and the same keys) is dropped; relabelled packets fail; the valid IDs keep working."""
    iut_n, peer_n = _range_variant(ctx.profile)
    profile = unlimited(ctx.profile).replace(n_sub_sas=iut_n)
    with opened(ctx, profile) as s:
        p = s.profile
        wide = Sender(p.replace(n_sub_sas=peer_n), s.inbound.keymat, s.inbound.spi)
        for sub in range(iut_n, peer_n):
            for _ in range(3):
                payload, nh = payload_for(p, 8)
                sealed = wide.seal(sub, payload, nh)
                sn = "" if sealed.seq is None else f" (SN {sealed.seq})"
                inject(s, sealed.wire, f"authentic packet on sub-SA {sub} of {iut_n}{sn}")
        for sub in range(iut_n):
            wire = peer(s, sub)
            for other in range(1, iut_n):
                s.deliver_changed(in_flight_index(s, wire), "relabel", sub + other)
            deliver(s, wire)
