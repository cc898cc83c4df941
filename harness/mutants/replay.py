"""Replay-family mutants: receivers whose anti-replay window or ESN inference is wrong.

Theory of operation: ``spec_model.Receiver`` keeps one ``ReplayWindow`` per sub-SA in
``self.windows`` (created after the first packet of that sub-SA authenticated, a blank
window standing in before) and infers ESN high halves with ``infer_esn`` from
``self.top(sub_sa)``. Most mutants here change the window only: ``WindowedReceiver`` makes
every window (and the blank one) with ``new_window`` through a dict that creates a
sub-SA's window on its first look-up — a fresh window answers exactly as the blank one,
so nothing but the window class changes — and each mutant overrides ``new_window`` with a
window that is one size off, shared, starts without 0, or misses duplicates of T. The
others override one step of the receive path: advancing the window for a packet whose ICV
failed, inferring Seqh = Th in case B, or taking any sub-SA ID the wire can carry as
valid. All are observable by sending the model's packets to the IUT and comparing its
verdict with the model's.
"""

from __future__ import annotations

from spec_model import Dropped, DropReason, Receiver
from spec_model.errors import DecodeError
from spec_model.profile import MAX_SUBSA_ID_BITS, SubSaLocation
from spec_model.replay import EsnCase, ReplayWindow, Verdict, infer_esn
from spec_model.subsa import locate

from .base import MutantIut, register

REPLAY_PROTECTED = ("esp", "esp-esn", "esp-iiv", "esp-seq64", "esp-subsa-spi",
                    "esp-subsa-salt", "esp-subsa-seq", "eesp-v0", "eesp-v0-transport")
NOT_ESN = ("esp", "esp-seq64", "esp-subsa-seq", "eesp-v0", "eesp-v0-transport")
ESN = ("esp-esn", "esp-iiv", "esp-subsa-spi", "esp-subsa-salt")
MULTI_SUBSA = ("esp-subsa-spi", "esp-subsa-salt", "esp-subsa-seq", "eesp-v0",
               "eesp-v0-transport")


class WindowedReceiver(Receiver):
    """A receiver whose windows come from an overridden ``Receiver.new_window``."""


# --- the window moves before the ICV check -----------------------------------------------

class EagerReceiver(Receiver):
    """A packet whose ICV fails still moves its sub-SA's window (creating it if new).

    Done after the fact, with the same effect: ``Receiver.open`` runs unchanged, and
    when it drops a packet for its ICV the window is moved as if it had been accepted
    before the check.
    """

    def open(self, data: bytes):
        out = super().open(data)
        if (self._blank is not None and isinstance(out, Dropped)
                and out.reason is DropReason.ICV):
            counter = locate(self.profile, self.base_spi, self.base_spi, 0, out.seq)[1]
            window = self.windows.get(out.sub_sa)
            if window is None:
                window = self.windows[out.sub_sa] = self.new_window()
            if window.check(counter) is Verdict.NEW:
                window.accept(counter)
        return out


@register(family="replay",
          bug="the window is advanced before the ICV check: a forged packet with a bad ICV "
              "still moves it",
          requirements=("REPLAY-ADVANCE-AFTER-ICV", "SUBSA-WINDOW-AFTER-AUTH"),
          profiles=REPLAY_PROTECTED)
class WindowBeforeIcv(MutantIut):
    name = "mutant:window-before-icv"
    receiver_class = EagerReceiver


# --- the window is one off ---------------------------------------------------------------

class WideReceiver(WindowedReceiver):
    def new_window(self) -> ReplayWindow:
        return ReplayWindow(self.profile.window + 1)   # too old only if seq + W < T


@register(family="replay",
          bug="the too-old test is seq + W < T instead of <=: the window accepts W+1 "
              "values (T-W is still taken; a receiver may choose that window, so it is "
              "espspec-strict: NON-STRICT, FAIL only under --strict)",
          requirements=("REPLAY-WINDOW-EXACT",),
          profiles=NOT_ESN)
class WindowTooWide(MutantIut):
    name = "mutant:window-too-wide"
    receiver_class = WideReceiver


class NarrowReceiver(WindowedReceiver):
    def new_window(self) -> ReplayWindow:
        return ReplayWindow(self.profile.window - 1)   # T-W+1 counts as too old


@register(family="replay",
          bug="the window is one short: a packet W-1 behind T is dropped as too old",
          requirements=("REPLAY-WINDOW-SIZE",),
          profiles=REPLAY_PROTECTED)
class WindowTooNarrow(MutantIut):
    name = "mutant:window-too-narrow"
    receiver_class = NarrowReceiver


# --- one window for all sub-SAs ----------------------------------------------------------

class SharedWindowReceiver(WindowedReceiver):
    _shared: ReplayWindow | None = None

    def new_window(self) -> ReplayWindow:
        if self._shared is None:
            self._shared = ReplayWindow(self.profile.window)
        return self._shared


@register(family="replay",
          bug="all sub-SAs share one window: traffic on one sub-SA makes another's packets "
              "replays or too old",
          requirements=("REPLAY-PER-SUBSA-WINDOW",),
          profiles=MULTI_SUBSA)
class SharedWindow(MutantIut):
    name = "mutant:shared-window"
    receiver_class = SharedWindowReceiver


# --- ESN case B inferred wrong -----------------------------------------------------------

class CaseBReceiver(Receiver):
    """Case B of RFC 4303 Appendix A2.2 with Seql >= Bl gives Seqh = Th, not Th - 1.

    ``Receiver.open`` infers from ``self.top(sub_sa)``, so this receiver notes the Seql of
    the packet being opened and, while it is, answers that look-up with Th + 1 in the
    case the bug is about: Appendix A then yields (Th + 1) - 1 = Th.
    """

    _seql: int | None = None

    def open(self, data: bytes):
        try:
            self._seql = self.codec.decode(data).seq if self._esn else None
        except DecodeError:   # super().open reports it as MALFORMED
            self._seql = None
        try:
            return super().open(data)
        finally:
            self._seql = None

    def top(self, sub_sa: int) -> int:
        top = super().top(sub_sa)
        seql, w = self._seql, self.profile.window
        if seql is None or top >> 32 == 0xFFFFFFFF:
            return top
        if infer_esn(seql, top, w)[1] is EsnCase.B and seql >= (top - w + 1) & 0xFFFFFFFF:
            return top + (1 << 32)
        return top


@register(family="replay",
          bug="ESN case B (window straddling two subspaces) with Seql >= Bl infers Seqh = "
              "Th instead of Th - 1",
          requirements=("ESN-INFER-CASE-B",),
          profiles=ESN)
class EsnCaseBWrong(MutantIut):
    name = "mutant:esn-case-b-wrong"
    receiver_class = CaseBReceiver


# --- sequence number 0 accepted ----------------------------------------------------------

class ZeroOpenWindow(ReplayWindow):
    """A window that does not start as if 0 had been accepted."""

    __slots__ = ()

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._bits[0] = 0


class ZeroReceiver(WindowedReceiver):
    def new_window(self) -> ReplayWindow:
        return ZeroOpenWindow(self.profile.window)


@register(family="replay",
          bug="sequence number 0 is accepted (the window does not start with 0 marked)",
          requirements=("REPLAY-SEQ-ZERO",),
          profiles=REPLAY_PROTECTED)
class SeqZeroAccepted(MutantIut):
    name = "mutant:seq-zero-accepted"
    receiver_class = ZeroReceiver


# --- sub-SA ID >= N accepted -------------------------------------------------------------

class UncheckedIdReceiver(Receiver):
    """Any sub-SA ID the wire can carry is in range (a window is made for it)."""

    def __init__(self, profile, keymat, spi) -> None:
        super().__init__(profile, keymat, spi)
        bits = (MAX_SUBSA_ID_BITS if profile.subsa is SubSaLocation.HEADER
                else profile.subsa_bits)
        self._n = 1 << bits
        self.accepted += [0] * (self._n - len(self.accepted))


@register(family="replay",
          bug="a sub-SA ID >= N is treated as valid: its packets are opened with that ID's "
              "key and get a window",
          requirements=("SUBSA-ID-RANGE",),
          profiles=("eesp-v0", "eesp-v0-transport"),
          needs="or a sub-SA ID in the SPI or sequence number with N not a power of two")
class SubsaIdUnchecked(MutantIut):
    name = "mutant:subsa-id-unchecked"
    receiver_class = UncheckedIdReceiver


# --- duplicates of T accepted ------------------------------------------------------------

class TopBlindWindow(ReplayWindow):
    """``seq >= T`` is taken as new: a duplicate of the highest accepted number passes."""

    __slots__ = ()

    def check(self, seq: int) -> Verdict:
        if seq and seq == self.top:
            return Verdict.NEW
        return super().check(seq)

    def accept(self, seq: int) -> None:
        if not (seq and seq == self.top):
            super().accept(seq)


class TopBlindReceiver(WindowedReceiver):
    def new_window(self) -> ReplayWindow:
        return TopBlindWindow(self.profile.window)


@register(family="replay",
          bug="the new-packet test is seq >= T instead of seq > T: a duplicate of the "
              "highest accepted packet is delivered again",
          requirements=("REPLAY-DUPLICATE-DROP",),
          profiles=REPLAY_PROTECTED)
class DuplicateTopAccepted(MutantIut):
    name = "mutant:duplicate-top-accepted"
    receiver_class = TopBlindReceiver
