"""The anti-replay window and ESN inference (spec_model.replay) against brute-force oracles.

The window oracle is a set of accepted numbers plus T, with RFC 4303 §3.4.3 semantics:
right of T is NEW, seq + W <= T is TOO_OLD, otherwise REPLAY iff seen; 0 counts as seen
from the start. The ESN oracle picks, among the candidates Seqh in {Th-1, Th, Th+1}, the
one whose 64-bit value lies in B .. B + 2**32 - 1 (B = T - W + 1): the range Appendix A2.2
maps the 2**32 low words onto.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import example, given, settings, strategies as st

from spec_model.replay import (INVALID_SEQ, SEQ_MAX, EsnCase, ReplayWindow, Verdict,
                               infer_esn)

NEW, REPLAY, TOO_OLD = Verdict.NEW, Verdict.REPLAY, Verdict.TOO_OLD
M32 = (1 << 32) - 1
MIB = 1 << 20


def cfg(n: int) -> settings:
    """n examples, or more when the loaded profile (e.g. "certify") asks for more."""
    return settings(max_examples=max(n, settings.default.max_examples), deadline=None)


class Oracle:
    def __init__(self, w: int) -> None:
        self.w = w
        self.top = 0
        self.seen = {0}

    def check(self, s: int) -> Verdict:
        if s > self.top:
            return NEW
        if s + self.w <= self.top:
            return TOO_OLD
        return REPLAY if s in self.seen else NEW

    def accept(self, s: int) -> None:
        self.seen.add(s)
        self.top = max(self.top, s)


def ring_bits(w: int) -> int:
    """Sequence numbers the implementation's ring covers (its bitmap, in bits)."""
    return ReplayWindow(w).memory_bytes() * 8


def sweep(win: ReplayWindow, oracle: Oracle, margin: int = 3) -> None:
    """check() every number from a little left of the window to a little right of T."""
    top = oracle.top
    assert win.top == top
    for s in range(max(0, top - oracle.w - margin), min(SEQ_MAX, top + margin) + 1):
        assert win.check(s) is oracle.check(s), (s, top)


def feed(w: int, seqs: list[int]) -> None:
    """Run a stream through check+accept, check_and_accept and the oracle in lock step."""
    split, fused, oracle = ReplayWindow(w), ReplayWindow(w), Oracle(w)
    for s in seqs:
        want = oracle.check(s)
        got = split.check(s)
        assert got is want, (s, oracle.top)
        if got is NEW:
            split.accept(s)
            oracle.accept(s)
        assert fused.check_and_accept(s) is want, (s, oracle.top)
        assert split.top == fused.top == oracle.top
        # probes at the window edges, with check() only: must not move anything
        top = oracle.top
        for p in (top - w, top - w + 1, top, top + 1):
            if 0 <= p <= SEQ_MAX:
                assert split.check(p) is oracle.check(p), (p, top)
    sweep(split, oracle)
    sweep(fused, oracle)


# --- streams for the oracle property ------------------------------------------------------

WINDOWS = st.one_of(st.sampled_from([32, 33, 64, 65, 100, 1000, 1023, 1024, 1025, 4095, 4096]),
                    st.integers(32, 4096))


@st.composite
def window_and_stream(draw) -> tuple[int, list[int]]:
    w = draw(WINDOWS)
    ring = ring_bits(w)
    edges = [w - 2, w - 1, w, w + 1, ring - 9, ring - 8, ring - 1, ring, ring + 1, ring + 8,
             2 * ring]
    op = st.one_of(
        st.tuples(st.just("fwd"), st.integers(1, 9)),                 # in order, small gaps
        st.tuples(st.just("fwd"), st.integers(1, 2 * w)),             # gaps near the window
        st.tuples(st.just("fwd"), st.sampled_from(edges)),            # gaps at the ring size
        st.tuples(st.just("fwd"), st.integers(1, 1 << 40)),           # large jumps
        st.tuples(st.just("back"), st.integers(0, 2 * w + 16)),       # reordered / old
        st.tuples(st.just("back"), st.sampled_from([w - 2, w - 1, w, w + 1])),
        st.tuples(st.just("dup"), st.integers(0, 1 << 16)),           # duplicates
        st.tuples(st.just("abs"), st.sampled_from([0, 1, SEQ_MAX - 1, SEQ_MAX])),
    )
    base = draw(st.sampled_from([0, 0, (1 << 32) - 50, 1 << 63, SEQ_MAX - 3 * ring]))
    hi, seqs = base, []
    for kind, x in draw(st.lists(op, min_size=1, max_size=120)):
        if kind == "fwd":
            s = min(hi + x, SEQ_MAX)
        elif kind == "back":
            s = max(hi - x, 0)
        elif kind == "dup":
            s = seqs[x % len(seqs)] if seqs else 0
        else:
            s = x
        seqs.append(s)
        hi = max(hi, s)
    return w, seqs


@cfg(250)
@given(window_and_stream())
def test_window_matches_oracle(ws):
    w, seqs = ws
    feed(w, seqs)


@cfg(25)
@given(st.sampled_from([32, 64, 100, 4096]), st.integers(0, 2 ** 32), st.integers(0, 1 << 62))
def test_long_random_streams_match_oracle(w, seed, base):
    """A few thousand packets per stream, so the ring wraps many times."""
    rng = random.Random(seed)
    hi, seqs = base, []
    for _ in range(3000):
        r = rng.random()
        if r < 0.45:
            s = hi + rng.randint(1, 12)
        elif r < 0.85:
            s = hi - rng.randint(0, w + 10)
        elif r < 0.95 and seqs:
            s = rng.choice(seqs[-200:])
        else:
            s = hi + rng.randint(w, 3 * ring_bits(w))
        s = min(max(s, 0), SEQ_MAX)
        seqs.append(s)
        hi = max(hi, s)
    feed(w, seqs)


@pytest.mark.parametrize("w", [1, 2, 7, 8, 9, 15, 16, 17, 31])
def test_tiny_windows_match_oracle(w):
    """Below the 32-packet minimum the class still works (rings of 2..5 bytes)."""
    rng = random.Random(w)
    hi, seqs = 0, []
    for _ in range(4000):
        s = max(0, hi + rng.randint(-w - 3, 4))
        if rng.random() < 0.02:
            s = hi + rng.randint(1, 100)
        seqs.append(s)
        hi = max(hi, s)
    feed(w, seqs)


@pytest.mark.parametrize("w", [32, 33, 64])
def test_every_jump_from_every_ring_position(w):
    """Exhaustive over where T sits in the ring and how far it jumps (every clear path:
    same block, next block, partial clears with and without wrap-around, whole ring)."""
    ring = ring_bits(w)
    for start in range(0, ring + 9):
        for jump in range(1, ring + 17):
            win, oracle = ReplayWindow(w), Oracle(w)
            # a dense window below `start`, every other number accepted
            for s in range(max(1, start - w + 1), start + 1, 2):
                win.accept(s)
                oracle.accept(s)
            if start and win.top != start:
                win.accept(start)
                oracle.accept(start)
            win.accept(start + jump)
            oracle.accept(start + jump)
            top = oracle.top
            for s in range(max(0, top - w - 1), top + 2):
                assert win.check(s) is oracle.check(s), (start, jump, s)


# --- window edges, explicitly -------------------------------------------------------------


@pytest.mark.parametrize("w", [32, 64, 100, 4096])
def test_edges_of_the_window(w):
    win = ReplayWindow(w)
    t = 10 * w + 3
    assert win.check_and_accept(t) is NEW
    assert win.top == t
    assert win.check(t - w) is TOO_OLD                 # exactly W behind T
    assert win.check(t - w - 1) is TOO_OLD             # W + 1 behind
    assert win.check(t - (w - 1)) is NEW               # W - 1 behind: inside, unseen
    win.accept(t - (w - 1))
    assert win.check(t - (w - 1)) is REPLAY
    assert win.check_and_accept(t - (w - 1)) is REPLAY
    assert win.check(t) is REPLAY
    assert win.check(t + 1) is NEW
    assert win.top == t
    # moving T by one pushes the oldest inside number out
    win.accept(t + 1)
    assert win.check(t - (w - 1)) is TOO_OLD
    assert win.check(t - (w - 2)) is NEW


def test_fresh_window():
    win = ReplayWindow(64)
    assert win.top == 0 and win.size == 64
    assert win.check(1) is NEW
    assert win.check(SEQ_MAX) is NEW
    assert win.top == 0


@pytest.mark.parametrize("w", [1, 32, 64, 100])
def test_sequence_number_zero_is_never_acceptable(w):
    win = ReplayWindow(w)
    assert win.check(0) is REPLAY
    assert win.check_and_accept(0) is REPLAY
    with pytest.raises(ValueError):
        win.accept(0)
    if w > 1:
        win.accept(w - 1)                              # T = W - 1: 0 is still inside
        assert win.check(0) is REPLAY
        assert win.check_and_accept(0) is REPLAY
    win.accept(w)                                      # T = W: 0 is exactly W behind
    assert win.check(0) is TOO_OLD
    assert win.check_and_accept(0) is TOO_OLD
    assert win.top == w


@pytest.mark.parametrize("w", [32, 64, 100, 4096])
@pytest.mark.parametrize("extra", [0, 1, 7, 8, 9, 12345, 1 << 40])
def test_jump_of_ring_size_or_more_clears_everything(w, extra):
    ring = ring_bits(w)
    win = ReplayWindow(w)
    t = 5 * ring + 3
    for s in range(t - w + 1, t + 1):                  # a full window
        win.accept(s)
    new_top = t + ring + extra
    win.accept(new_top)
    assert win.check(t) is TOO_OLD
    # the numbers that share ring slots with the old window must read as unseen
    for s in range(new_top - w + 1, new_top):
        assert win.check(s) is NEW, s
    assert win.check(new_top) is REPLAY
    assert win.check(new_top - w) is TOO_OLD


@pytest.mark.parametrize("w", [32, 64, 100, 4096])
@pytest.mark.parametrize("short", [1, 8, 9])
def test_jump_just_short_of_the_ring(w, short):
    """The clear covers all but a block or so of the ring and wraps round its end."""
    ring = ring_bits(w)
    win, oracle = ReplayWindow(w), Oracle(w)
    t = 3 * ring + 5
    for s in range(t - w + 1, t + 1):
        win.accept(s)
        oracle.accept(s)
    win.accept(t + ring - short)
    oracle.accept(t + ring - short)
    sweep(win, oracle, margin=10)


def test_end_of_the_counter_space():
    w = 64
    win = ReplayWindow(w)
    assert win.check_and_accept(SEQ_MAX - 10) is NEW
    assert win.check_and_accept(SEQ_MAX) is NEW
    assert win.check(SEQ_MAX) is REPLAY
    assert win.check(SEQ_MAX - 10) is REPLAY
    assert win.check(SEQ_MAX - 9) is NEW
    assert win.check(SEQ_MAX - w) is TOO_OLD
    assert win.check(SEQ_MAX - w + 1) is NEW
    with pytest.raises(ValueError):
        win.check(SEQ_MAX + 1)
    with pytest.raises(ValueError):
        win.check_and_accept(SEQ_MAX + 1)
    with pytest.raises(ValueError):
        win.accept(SEQ_MAX + 1)
    assert win.top == SEQ_MAX


def test_bad_sequence_numbers_are_refused_and_change_nothing():
    for top in (5, 1000):
        win, oracle = ReplayWindow(64), Oracle(64)
        win.accept(top)
        oracle.accept(top)
        for bad in (-1, -8, -64, -(1 << 70), SEQ_MAX + 1, 1 << 65):
            for method in (win.check, win.check_and_accept, win.accept):
                with pytest.raises(ValueError):
                    method(bad)
        sweep(win, oracle)


def test_accept_refuses_what_check_would_refuse():
    win, oracle = ReplayWindow(32), Oracle(32)
    for s in (100, 90):
        win.accept(s)
        oracle.accept(s)
    with pytest.raises(ValueError):
        win.accept(90)                                 # REPLAY
    with pytest.raises(ValueError):
        win.accept(68)                                 # TOO_OLD (exactly W behind)
    sweep(win, oracle)


@pytest.mark.parametrize("bad", [0, -1, (1 << 30) + 1, 1.0, "64", None, True])
def test_window_size_validation(bad):
    with pytest.raises(ValueError):
        ReplayWindow(bad)


def test_window_size_limits_accepted():
    assert ReplayWindow(1).size == 1
    assert ReplayWindow(32).memory_bytes() == 5


# --- W = 2**24 ----------------------------------------------------------------------------


def test_large_window_memory():
    w = 1 << 24
    tracemalloc.start()
    try:
        win = ReplayWindow(w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert win.memory_bytes() < 4 * MIB
    assert win.memory_bytes() >= w // 8                # a bit per number, nothing less
    assert peak < 4 * MIB


def test_large_window_edges():
    w = 1 << 24
    ring = ring_bits(w)
    win = ReplayWindow(w)
    t = 3 * w + 12345
    assert win.check_and_accept(t) is NEW
    for s in (t - w, t - w - 1, 1, 0):
        assert win.check(s) is TOO_OLD, s
    for s in (t - w + 1, t - w + 2, t - w + 8, t - 1):
        assert win.check_and_accept(s) is NEW, s
        assert win.check(s) is REPLAY, s
    # in-order run across block boundaries, with a late packet at the far edge
    for s in range(t + 1, t + 100):
        assert win.check_and_accept(s) is NEW
    t = win.top
    assert win.check_and_accept(t - w + 1) is NEW
    assert win.check_and_accept(t - w + 1) is REPLAY
    assert win.check(t - w) is TOO_OLD
    # a jump of exactly the ring size: the slots of everything seen recycle as unseen
    seen = [t - w + 1, t - 50, t]
    win.accept(t + ring)
    for s in seen:
        assert win.check(s) is TOO_OLD
        assert win.check(s + ring) is (REPLAY if s == t else NEW)
    assert win.check(t + ring - w + 1) is NEW
    assert win.check(t + ring - w) is TOO_OLD


# --- ESN inference ------------------------------------------------------------------------


def esn_oracle(seql: int, top: int, w: int) -> tuple[int, EsnCase]:
    th = top >> 32
    b = top - w + 1
    [v] = [v for v in (h * (1 << 32) + seql for h in (th - 1, th, th + 1))
           if b <= v <= b + M32]
    case = EsnCase.A if b >= th << 32 else EsnCase.B
    return (v if 1 <= v <= SEQ_MAX else INVALID_SEQ), case


TH = st.one_of(st.sampled_from([0, 1, 2, 1 << 31, M32 - 1, M32]), st.integers(0, M32))
ESN_W = st.one_of(st.sampled_from([1, 2, 32, 64, 1024, 1 << 24, 1 << 31]),
                  st.integers(1, 1 << 31))


@st.composite
def esn_inputs(draw) -> tuple[int, int, int]:
    w = draw(ESN_W)
    tl = draw(st.one_of(
        st.integers(0, M32),
        st.integers(max(0, w - 4), min(M32, w + 4)),   # at the A/B boundary Tl = W - 1
        st.integers(0, 8),
        st.integers(M32 - 8, M32)))
    top = (draw(TH) << 32) | tl
    bl = (tl - w + 1) & M32
    seql = draw(st.one_of(
        st.integers(0, M32),
        st.integers(max(0, bl - 3), min(M32, bl + 3)),
        st.integers(max(0, tl - 3), min(M32, tl + 3)),
        st.sampled_from([0, 1, M32])))
    return seql, top, w


@cfg(600)
@given(esn_inputs())
@example((0, 0, 64))                                    # T = 0: Seqh = Th = 0, seql = 0
@example((M32, 10, 64))                                 # case B, Th = 0, seql >= Bl
@example((3, SEQ_MAX - 5, 64))                          # case A, Th + 1 = 2**32
@example((63, 63, 64))                                  # Tl = W - 1: case A
@example((62, 62, 64))                                  # Tl = W - 2: case B
def test_infer_esn_matches_oracle(args):
    seql, top, w = args
    got = infer_esn(seql, top, w)
    assert got == esn_oracle(seql, top, w)
    v, _ = got
    assert 0 <= v <= SEQ_MAX
    assert v == INVALID_SEQ or v & M32 == seql


def test_infer_esn_worked_examples():
    th = 5
    # case A: T = 5:1000, W = 64, Bl = 937
    t = (th << 32) | 1000
    assert infer_esn(1000, t, 64) == ((th << 32) | 1000, EsnCase.A)
    assert infer_esn(937, t, 64) == ((th << 32) | 937, EsnCase.A)          # = Bl
    assert infer_esn(936, t, 64) == (((th + 1) << 32) | 936, EsnCase.A)    # < Bl: next
    assert infer_esn(M32, t, 64) == ((th << 32) | M32, EsnCase.A)
    assert infer_esn(0, t, 64) == (((th + 1) << 32), EsnCase.A)
    # case B: T = 5:10, W = 64, Bl = 2**32 - 53
    t = (th << 32) | 10
    bl = (1 << 32) - 53
    assert infer_esn(bl, t, 64) == (((th - 1) << 32) | bl, EsnCase.B)      # previous
    assert infer_esn(M32, t, 64) == (((th - 1) << 32) | M32, EsnCase.B)
    assert infer_esn(bl - 1, t, 64) == ((th << 32) | (bl - 1), EsnCase.B)  # far ahead
    assert infer_esn(5, t, 64) == ((th << 32) | 5, EsnCase.B)
    assert infer_esn(11, t, 64) == ((th << 32) | 11, EsnCase.B)
    # the boundary between the cases: Tl = W - 1 is A, Tl = W - 2 is B
    assert infer_esn(0, (th << 32) | 63, 64) == ((th << 32), EsnCase.A)
    assert infer_esn(M32, (th << 32) | 62, 64) == (((th - 1) << 32) | M32, EsnCase.B)


def test_infer_esn_before_the_first_subspace():
    """Case B with Th = 0 and Seql >= Bl names Seqh = -1: no such number. The result is
    INVALID_SEQ, which the window rejects (0 counts as accepted; T < W here)."""
    w = 64
    win = ReplayWindow(w)
    win.accept(10)
    bl = (10 - w + 1) & M32
    for seql in (bl, bl + 1, M32):
        v, case = infer_esn(seql, win.top, w)
        assert (v, case) == (INVALID_SEQ, EsnCase.B)
        assert v & M32 != seql                         # detectable: the low word changed
        assert win.check(v) is REPLAY
        assert win.check_and_accept(v) is REPLAY
    assert win.top == 10
    # the same low words below Bl are ordinary numbers in subspace 0
    assert infer_esn(bl - 1, 10, w) == (bl - 1, EsnCase.B)
    assert infer_esn(11, 10, w) == (11, EsnCase.B)
    # a fresh window (T = 0) is case B too
    assert infer_esn(1, 0, w) == (1, EsnCase.B)
    assert infer_esn(M32, 0, w) == (INVALID_SEQ, EsnCase.B)


def test_infer_esn_past_the_last_subspace():
    """Case A with Th = 2**32 - 1 and Seql < Bl names Seqh = 2**32, past 2**64 - 1 (a
    sender may not wrap its counter). The result is INVALID_SEQ, which is TOO_OLD."""
    w = 64
    win = ReplayWindow(w)
    top = SEQ_MAX - 5
    win.accept(top)
    for seql in (0, 3, (top & M32) - w):
        v, case = infer_esn(seql, top, w)
        assert (v, case) == (INVALID_SEQ, EsnCase.A)
        assert win.check(v) is TOO_OLD
    # in-range low words still resolve, up to the very last number
    assert infer_esn(M32, top, w) == (SEQ_MAX, EsnCase.A)
    assert infer_esn((top & M32) - w + 1, top, w) == (top - w + 1, EsnCase.A)


@pytest.mark.parametrize("args", [(-1, 0, 64), (1 << 32, 0, 64), (0, -1, 64),
                                  (0, SEQ_MAX + 1, 64), (0, 0, 0), (0, 0, (1 << 31) + 1)])
def test_infer_esn_validation(args):
    with pytest.raises(ValueError):
        infer_esn(*args)


# --- ESN end to end: 64-bit counters, 32 bits on the wire -----------------------------------


def esn_receive(w: int, sent: list[int], top: int = 0) -> dict[EsnCase, int]:
    """Feed the low words of ``sent`` through infer_esn and the window. Every packet that
    is inside or right of the window when it arrives must reconstruct exactly; returns how
    often each case was taken."""
    win, oracle = ReplayWindow(w), Oracle(w)
    if top:
        win.accept(top)
        oracle.accept(top)
    cases = {EsnCase.A: 0, EsnCase.B: 0}
    for s in sent:
        assert s > oracle.top - w, "the generator must keep packets inside the window"
        full, case = infer_esn(s & M32, win.top, w)
        cases[case] += 1
        assert full == s, (hex(s), hex(win.top), case)
        want = oracle.check(s)
        assert win.check_and_accept(full) is want
        if want is NEW:
            oracle.accept(s)
    assert win.top == oracle.top == max(sent + [top])
    return cases


def reorder_in_blocks(seqs: list[int], block: int, rng: random.Random) -> list[int]:
    out = []
    for i in range(0, len(seqs), block):
        chunk = seqs[i:i + block]
        rng.shuffle(chunk)
        out += chunk
    return out


@cfg(40)
@given(w=st.sampled_from([32, 64, 100, 1024, 4096]),
       k=st.sampled_from([1, 2, 7, 1 << 31, M32]),
       before=st.integers(1, 3000), after=st.integers(1, 3000),
       seed=st.integers(0, 2 ** 32), dups=st.floats(0, 0.2))
def test_esn_streams_across_subspace_boundaries(w, k, before, after, seed, dups):
    rng = random.Random(seed)
    boundary = k << 32
    start = max(1, boundary - before)
    sent = list(range(start, min(SEQ_MAX, boundary + after) + 1))
    block = rng.randint(1, w)                          # reordering stays inside W
    stream = reorder_in_blocks(sent, block, rng)
    # duplicates, re-sent soon enough to still be inside the window
    out: list[int] = []
    hi = 0
    for s in stream:
        out.append(s)
        hi = max(hi, s)
        if rng.random() < dups:
            out.append(rng.choice([d for d in out[-w:] if d > hi - w]))
    cases = esn_receive(w, out, top=start - 1)
    assert cases[EsnCase.A] > 0                        # T starts W or more below 2**32 * k


@pytest.mark.parametrize("k", [1, 2, M32])
@pytest.mark.parametrize("w", [32, 64, 1024])
def test_esn_both_cases_at_a_boundary(k, w):
    """Deterministic walk over one boundary k * 2**32 with reordering: before it the
    window is case A and late packets from the next subspace need Th + 1; just after it
    the window is case B and late packets from the previous subspace need Th - 1."""
    rng = random.Random(k * 7919 + w)
    boundary = k << 32
    # blocks of W/2 shuffled, the boundary in the middle of one
    first = boundary - 3 * w - w // 4
    sent = reorder_in_blocks(list(range(first, boundary + 3 * w)), w // 2, rng)
    win = ReplayWindow(w)
    win.accept(first - 1)
    seen = {EsnCase.A: set(), EsnCase.B: set()}
    for s in sent:
        full, case = infer_esn(s & M32, win.top, w)
        assert full == s
        th = win.top >> 32
        seen[case].add((s >> 32) - th)                 # which Seqh was picked, relative
        assert win.check_and_accept(full) is NEW
    assert seen[EsnCase.A] >= {0, 1}                   # current and next in case A
    assert seen[EsnCase.B] >= {-1, 0}                  # previous and current in case B
    # Th + 1 under case A: T just below the boundary, a packet just past it
    win = ReplayWindow(w)
    win.accept(boundary - 2)
    full, case = infer_esn((boundary + 3) & M32, win.top, w)
    assert (full, case) == (boundary + 3, EsnCase.A)
    # Th - 1 under case B: T just past the boundary, a late packet from before it
    win.accept(boundary + 2)
    full, case = infer_esn((boundary - w + 3) & M32, win.top, w)
    assert (full, case) == (boundary - w + 3, EsnCase.B)
    assert win.check(full) is NEW
    # once T moves W - 1 past the boundary the window is inside one subspace again
    win.accept(boundary + w - 1)
    assert infer_esn((boundary + w) & M32, win.top, w)[1] is EsnCase.A


@pytest.mark.parametrize("tl", [5, 1000, M32 - 5])
def test_esn_range_of_inference(tl):
    """Appendix A can place a low word anywhere in B .. B + 2**32 - 1: the farthest jump
    ahead it resolves is T + 2**32 - W. One number further aliases to the bottom of the
    window; and a packet exactly W behind T aliases to 2**32 ahead. In both cases the
    window cannot see it, only the ICV (computed with the wrong Seqh) can drop it."""
    w = 64
    top = (9 << 32) | tl
    far = top + (1 << 32) - w
    assert infer_esn(far & M32, top, w)[0] == far
    assert infer_esn((far + 1) & M32, top, w)[0] == far + 1 - (1 << 32) == top - w + 1
    old = top - w
    assert infer_esn(old & M32, top, w)[0] == old + (1 << 32)
