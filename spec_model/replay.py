"""The anti-replay window of one sub-SA, and ESN high-order inference.

Theory of operation: a ``ReplayWindow`` remembers which of the last W sequence numbers of
ONE (sub-)SA have been accepted. It is sans-IO: no clock, no packets, no keys, no
globals; the caller hands it integers and gets a ``Verdict`` back. The receive path of
RFC 4303 §3.4.3 uses it twice: ``check`` before the ICV is computed (the preliminary
check, it never changes the window) and ``accept`` after the ICV verified (only then may
the window move). ``check_and_accept`` fuses the two for callers that verified already,
and for benchmarks.

Names follow RFC 4303 Appendix A: W is the window size, T (``top``) the highest accepted
sequence number, B = T - W + 1 the bottom. Exactly the W numbers B..T are inside the
window; a number right of T is new; a number left of B (seq + W <= T) is too old. No
sender ever sends 0 (its counter starts at 0 and the first packet carries 1), so the
window starts life as if 0 had been accepted: 0 is a replay while T < W and too old after.

The bitmap follows RFC 6479: a ring of ``ceil(W / 8) + 1`` one-byte blocks, one block more
than W bits need. Sequence number s lives in bit ``s % 8`` of block ``(s // 8) % n``.
When T moves right, the blocks between the old and the new top block are zeroed with one
slice assignment (all of them when the jump covers the whole ring) and no bit is ever
shifted, so a packet costs O(1) apart from that clear. The spare block is what makes
clearing whole blocks safe: B..T never touches more than n blocks, so a block that is
recycled for new numbers holds nothing that is still inside the window. Bits left over
below B in the bottom block are never read, because the too-old test is arithmetic, not a
bitmap lookup. One-byte blocks were measured faster in CPython than 64-bit words held
in an ``array('Q')`` (small ints are cached and never allocated); memory is W/8 bytes
plus one, 2 MiB for W = 2**24.

``infer_esn`` is RFC 4303 Appendix A2.2: with extended sequence numbers only the low 32
bits (Seql) travel, and the receiver reconstructs the high 32 bits (Seqh) from T and W.
It yields the unique 64-bit number in B .. B + 2**32 - 1 whose low word is Seql. Where
that number does not exist in the counter space (before 1 or past 2**64 - 1) it returns
``INVALID_SEQ`` (0), which every window rejects; see its docstring.

What does not live here: sequence-number parsing, the ICV check, the choice of which
sub-SA's window a packet goes to (one ``ReplayWindow`` per sub-SA ID), the loss-of-sync
recovery of Appendix A3 (it needs trial ICV computations), and any logging or counting
of drops. ``too_old_requirement`` says which rule a receiver that delivers a too-old
packet breaks: REPLAY-WINDOW-EXACT (espspec-strict) less than one 64-bit block beyond W,
because RFC 4303 lets a receiver choose its window and RFC 6479's bitmap may keep one
block more, REPLAY-TOO-OLD-DROP (MUST) further left. Requirement IDs served:
REPLAY-DUPLICATE-DROP, REPLAY-TOO-OLD-DROP, REPLAY-WINDOW-EXACT, REPLAY-WINDOW-SIZE, REPLAY-SEQ-ZERO, REPLAY-PRELIM-CHECK, REPLAY-PER-SUBSA-WINDOW,
ESN-INFER-CASE-A, ESN-INFER-CASE-B.
"""

from __future__ import annotations

import enum

__all__ = ["Verdict", "ReplayWindow", "EsnCase", "infer_esn", "too_old_requirement",
           "INVALID_SEQ", "SEQ_MAX", "WINDOW_MAX", "WINDOW_SLACK"]

#: highest value of a full 64-bit sequence-number counter
SEQ_MAX = (1 << 64) - 1
#: largest window a ReplayWindow accepts (the profile validator uses the same bound)
WINDOW_MAX = 1 << 30
#: the one sequence number no sender ever sends; ``infer_esn`` returns it for
#: "no such 64-bit number", and every window rejects it
INVALID_SEQ = 0

#: how far beyond W a receiver's own window may reach before a delivery breaks a MUST:
#: one 64-bit block (RFC 6479 §2: the effective window is up to a block more than W)
WINDOW_SLACK = 64

_M32 = (1 << 32) - 1
_ESN_WINDOW_MAX = 1 << 31          # Appendix A assumes W <= 2^31
_BIT = (1, 2, 4, 8, 16, 32, 64, 128)   # mask of bit s % 8; a tuple index beats 1 << k


class Verdict(enum.Enum):
    NEW = "new"            # may be accepted (right of T, or inside the window and unseen)
    REPLAY = "replay"      # inside the window and already accepted
    TOO_OLD = "too-old"    # left of the window: seq + W <= T


# module-level aliases: one specialised global load instead of an enum attribute lookup
_NEW = Verdict.NEW
_REPLAY = Verdict.REPLAY
_TOO_OLD = Verdict.TOO_OLD


def _bad_seq(seq: object) -> ValueError:
    return ValueError(f"sequence number {seq!r} is outside 0..2**64-1")


class ReplayWindow:
    """Anti-replay state of one sub-SA: window size W, highest accepted T, a ring bitmap.

    ``size`` and ``top`` are plain attributes for speed; treat them as read-only.
    Sequence numbers are ints; every method raises ValueError for one outside
    0..2**64-1 and never changes the window when it raises.
    """

    __slots__ = ("size", "top", "_bits", "_n", "_ti")

    def __init__(self, size: int) -> None:
        if type(size) is not int or not 1 <= size <= WINDOW_MAX:
            raise ValueError(f"window size must be an int in 1..2**30, got {size!r}")
        self.size = size                 # W
        self.top = 0                     # T
        self._n = n = (size + 7) // 8 + 1   # blocks in the ring, one spare
        self._bits = bytearray(n)
        self._bits[0] = 1                # sequence number 0 counts as accepted
        self._ti = 0                     # ring index of T's block, (T // 8) % n

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, top={self.top})"

    def memory_bytes(self) -> int:
        """Bytes the bitmap occupies: ceil(W / 8) + 1."""
        return len(self._bits)

    # --- reading ------------------------------------------------------------------------

    def check(self, seq: int) -> Verdict:
        """The preliminary check of RFC 4303 §3.4.3. Never changes the window.

        Raises ValueError for an int outside 0..2**64-1 (each range test sits on the
        branch it guards, so an in-range number pays for one comparison).
        """
        top = self.top
        if seq > top:
            if seq > SEQ_MAX:
                raise _bad_seq(seq)
            return _NEW
        if seq + self.size <= top:
            if seq < 0:
                raise _bad_seq(seq)
            return _TOO_OLD
        if seq < 0:
            raise _bad_seq(seq)
        if self._bits[(seq >> 3) % self._n] & _BIT[seq & 7]:
            return _REPLAY
        return _NEW

    # --- writing ------------------------------------------------------------------------

    def accept(self, seq: int) -> None:
        """Record ``seq`` as received (after its ICV verified); T moves if seq > T.

        Only valid for a number ``check`` calls NEW: raises ValueError for a replay, a
        too-old number or one outside 0..2**64-1, leaving the window unchanged.
        """
        top = self.top
        if seq > top:
            if (seq ^ top) < 8:
                self._bits[self._ti] |= _BIT[seq & 7]
            else:
                self._advance(top, seq)
            self.top = seq
            return
        if seq < 0 or seq + self.size <= top:
            raise ValueError(f"cannot accept {seq!r}: left of the window (T={top})")
        bits = self._bits
        i = (seq >> 3) % self._n
        m = _BIT[seq & 7]
        v = bits[i]
        if v & m:
            raise ValueError(f"cannot accept {seq!r}: already accepted")
        bits[i] = v | m

    def check_and_accept(self, seq: int) -> Verdict:
        """``check`` then, when the verdict is NEW, ``accept``; one call, one lookup."""
        top = self.top
        if seq > top:
            # (seq ^ top) < 8 <=> same 8-number block as T: nothing to clear. 2**64 - 1
            # ends a block, so a seq past it never takes this branch; _advance checks it.
            if (seq ^ top) < 8:
                self._bits[self._ti] |= _BIT[seq & 7]
            else:
                self._advance(top, seq)
            self.top = seq
            return _NEW
        if seq + self.size <= top:
            if seq < 0:
                raise _bad_seq(seq)
            return _TOO_OLD
        if seq < 0:
            raise _bad_seq(seq)
        bits = self._bits
        i = (seq >> 3) % self._n
        m = _BIT[seq & 7]
        v = bits[i]
        if v & m:
            return _REPLAY
        bits[i] = v | m
        return _NEW

    def _advance(self, top: int, seq: int) -> None:
        """Move T's block from top's to seq's (a later one) and set seq's bit.

        Zeroes the blocks after T's block up to and including seq's: they are recycled
        for the numbers T+1..seq and held numbers now left of the window. The caller
        stores the new T.
        """
        if seq > SEQ_MAX:
            raise _bad_seq(seq)
        bits = self._bits
        n = self._n
        blk = seq >> 3
        d = blk - (top >> 3)             # blocks to move, >= 1
        start = self._ti + 1
        if start == n:
            start = 0
        if d == 1:                       # the in-order case: recycle one block
            ti = start
        elif d >= n:                     # jumped over the whole ring: forget everything
            bits[:] = bytes(n)
            ti = blk % n
        else:
            end = start + d
            if end <= n:
                bits[start:end] = bytes(d)
            else:
                bits[start:] = bytes(n - start)
                bits[:end - n] = bytes(end - n)
            ti = end - 1 if end <= n else end - n - 1
        bits[ti] = _BIT[seq & 7]
        self._ti = ti


class EsnCase(enum.Enum):
    A = "A"   # Tl >= W - 1: window inside one 2^32 subspace
    B = "B"   # Tl <  W - 1: window straddles two subspaces


def infer_esn(seql: int, top: int, window: int) -> tuple[int, EsnCase]:
    """Full 64-bit sequence number for a received low word seql, given T=top and W=window,
    exactly per RFC 4303 Appendix A2.2 (case A: Seql >= Bl -> Seqh = Th else Th+1;
    case B: Seql >= Bl -> Seqh = Th-1 else Th), with Bl = Tl - W + 1 mod 2^32.

    Equivalently: the unique number in B .. B + 2**32 - 1 (B = T - W + 1, possibly
    negative) whose low 32 bits are seql. Returns ``(Seqh * 2**32 + seql, case)``.

    Two inferences name a number outside the 64-bit counter space; both return
    ``INVALID_SEQ`` (0) with the case that produced them, raise nothing, and leave it to
    the window to drop the packet (0 is REPLAY while T < W, TOO_OLD after):

    * case B with Th = 0 and Seql >= Bl gives Seqh = -1, a subspace before the first.
      Nothing was ever sent there (T < W - 1 here, so the window still reaches below 0).
      Since Bl >= 1, the result's low word then differs from seql.
    * case A with Th = 2**32 - 1 and Seql < Bl gives Seqh = 2**32: the number would be
      past 2**64 - 1, which a sender may not reach (it must not wrap its counter).

    0 is never a valid sequence number, so the convention is unambiguous; the genuine
    inference Seqh = 0, Seql = 0 also yields 0 and is dropped the same way.

    Raises ValueError for seql outside 0..2**32-1, top outside 0..2**64-1 or window
    outside 1..2**31 (Appendix A assumes W <= 2**31).
    """
    if not 0 <= seql <= _M32 or not 0 <= top <= SEQ_MAX or not 1 <= window <= _ESN_WINDOW_MAX:
        raise ValueError(f"infer_esn: seql={seql!r}, top={top!r}, window={window!r} "
                         f"out of range")
    th = top >> 32
    tl = top & _M32
    bl = (tl - window + 1) & _M32
    if tl >= window - 1:
        if seql >= bl:
            return (th << 32) | seql, EsnCase.A
        if th == _M32:                   # Th + 1 = 2**32: past the counter space
            return INVALID_SEQ, EsnCase.A
        return ((th + 1) << 32) | seql, EsnCase.A
    if seql >= bl:
        if th == 0:                      # Th - 1 = -1: before the counter space
            return INVALID_SEQ, EsnCase.B
        return ((th - 1) << 32) | seql, EsnCase.B
    return (th << 32) | seql, EsnCase.B


def too_old_requirement(window: int, behind: int) -> str:
    """The rule a receiver breaks by delivering a packet ``behind`` (>= ``window``)
    sequence numbers behind its top: see the module's docstring."""
    if window <= behind < window + WINDOW_SLACK:
        return "REPLAY-WINDOW-EXACT"
    return "REPLAY-TOO-OLD-DROP"
