"""The receiver of one child SA with N sub-SAs: windows, checks, opening.

Theory of operation: ``Receiver.open`` takes the bytes of one packet and returns either
``Delivered`` or ``Dropped`` — a drop is an ordinary outcome, with a reason and the
requirement ID of the rule that demands it. The order of checks is the RFC 4303 §3.4 order
made sub-SA aware:

1. decode the cleartext headers (``wire/``)             -> MALFORMED
2. SPI belongs to this SA                               -> UNKNOWN_SPI
3. sub-SA ID < N                                        -> SUBSA_OUT_OF_RANGE
4. full sequence number (ESN: RFC 4303 Appendix A),
   preliminary replay check on the sub-SA's window      -> REPLAY / TOO_OLD
5. per-sub-SA hard limit                                -> LIMIT
6. ICV (AEAD open)                                      -> ICV
7. only now: create the sub-SA's window if new, advance it
8. body checks: padding, pad length, inner length       -> MALFORMED
9. next header 59 is a dummy                            -> DUMMY

Windows are created only for sub-SAs whose packets authenticated (SUBSA-WINDOW-AFTER-AUTH);
before that, checks run against a blank window. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from .errors import CryptOffsetBeyondPayload, DecodeError, IcvMismatch
from .nonce import nonce_builder
from .profile import Framing, NonceScheme, Profile, SeqWire, SubSaLocation
from .replay import ReplayWindow, Verdict, infer_esn, too_old_requirement
from .sa import SaEnd
from .subsa import locate, owns_spi
from .wire.payload import NEXT_HEADER_DUMMY, PayloadInfoHeader


class DropReason(enum.Enum):
    MALFORMED = "malformed"
    UNKNOWN_SPI = "unknown-spi"
    SUBSA_OUT_OF_RANGE = "sub-sa-out-of-range"
    REPLAY = "replay"
    TOO_OLD = "too-old"
    LIMIT = "limit"
    ICV = "icv"
    DUMMY = "dummy"


class Delivered(NamedTuple):
    sub_sa: int
    seq: int | None
    payload: bytes
    next_header: int


class Dropped(NamedTuple):
    reason: DropReason
    requirement: str
    detail: str
    sub_sa: int | None = None
    seq: int | None = None


Outcome = Delivered | Dropped

# enum members looked up once: attribute access on an Enum class is slow in CPython 3.11
_REPLAY, _TOO_OLD = Verdict.REPLAY, Verdict.TOO_OLD


class Receiver(SaEnd):
    def __init__(self, profile: Profile, keymat: bytes, spi: int) -> None:
        super().__init__(profile, keymat, spi)
        self.windows: dict[int, ReplayWindow] = {}
        self.accepted = [0] * profile.n_sub_sas
        self._blank = self.new_window() if profile.replay_protected else None
        # the profile's choices, resolved once (enum tests cost more than the AEAD call)
        self._esn = profile.seq is SeqWire.ESN
        self._iiv = profile.nonce is NonceScheme.IMPLICIT_IV
        self._psp = profile.framing is Framing.PSP
        self._full = profile.framing is Framing.EESP_FULL
        self._id_in_seq = profile.subsa is SubSaLocation.SEQ
        self._n = profile.n_sub_sas
        self._nonce = nonce_builder(profile)
        self._limited = (self.policy.packets_per_subsa is not None
                         or self.policy.packets_total is not None)

    def new_window(self) -> ReplayWindow:
        """A fresh window for a sub-SA (also the blank one new sub-SAs are checked on)."""
        return ReplayWindow(self.profile.window)

    def top(self, sub_sa: int) -> int:
        """Highest authenticated sequence number of a sub-SA (0 before any)."""
        w = self.windows.get(sub_sa)
        return w.top if w is not None else 0

    def jump(self, sub_sa: int, top: int) -> None:
        """Test hook: move a sub-SA's window as if ``top`` had been accepted."""
        window = self.windows.get(sub_sa)
        if window is None:
            window = self.windows[sub_sa] = self.new_window()
        if top > window.top:
            window.accept(top)

    def open(self, data: bytes) -> Outcome:
        p = self.profile
        try:
            pkt = self.codec.decode(data)
        except DecodeError as e:
            return Dropped(DropReason.MALFORMED, e.requirement, str(e))
        if not owns_spi(p, self.base_spi, pkt.spi):
            return Dropped(DropReason.UNKNOWN_SPI, "SPI-UNKNOWN-DROP",
                           f"SPI {pkt.spi:#010x} belongs to no SA here")
        # -- sub-SA and full sequence number (the ID is read before ESN inference, which
        #    needs that sub-SA's window; the profile rules keep ESN and SEQ-located IDs apart)
        seq = pkt.seq
        if self._id_in_seq:
            sub_sa, counter = locate(p, self.base_spi, pkt.spi, pkt.session_id, seq)
        else:
            sub_sa = locate(p, self.base_spi, pkt.spi, pkt.session_id, None)[0]
            if self._esn:
                seq = infer_esn(seq, self.top(sub_sa), p.window)[0]
            counter = seq
        if sub_sa >= self._n:
            return Dropped(DropReason.SUBSA_OUT_OF_RANGE, "SUBSA-ID-RANGE",
                           f"sub-SA ID {sub_sa}, the SA has {self._n}", sub_sa, seq)
        # -- preliminary replay check
        window = self.windows.get(sub_sa)
        if self._blank is not None:
            verdict = (window or self._blank).check(counter)
            if verdict is _REPLAY:
                req = "REPLAY-SEQ-ZERO" if counter == 0 else "REPLAY-DUPLICATE-DROP"
                return Dropped(DropReason.REPLAY, req, f"sequence number {seq} already seen",
                               sub_sa, seq)
            if verdict is _TOO_OLD:
                req = "REPLAY-SEQ-ZERO" if counter == 0 else too_old_requirement(
                    p.window, self.top(sub_sa) - counter)
                return Dropped(DropReason.TOO_OLD, req,
                               f"sequence number {seq} is left of the window "
                               f"(top {self.top(sub_sa)}, W {p.window})", sub_sa, seq)
        if self._limited and self._past_limit(counter):
            return Dropped(DropReason.LIMIT, "LIMIT-RECEIVER-ENFORCE",
                           f"sub-SA {sub_sa} past its hard limit", sub_sa, seq)
        # -- ICV
        cipher, salt, _ = self.keying.get(sub_sa)
        iv = seq if self._iiv else int.from_bytes(pkt.iv, "big")
        header = data[:self.codec.header_len_of(data)]
        try:
            plain = cipher.open(self._nonce(salt, pkt.spi, iv), pkt.ciphertext, pkt.icv,
                                self.codec.aad(header, seq) + pkt.exposed)
        except IcvMismatch as e:
            return Dropped(DropReason.ICV, e.requirement, str(e), sub_sa, seq)
        # -- authenticated: now the window may be created and moved
        if self._blank is not None:
            if window is None:
                window = self.windows[sub_sa] = self.new_window()
            window.accept(counter)
        self.accepted[sub_sa] += 1
        try:
            if pkt.exposed:
                inner = self.layout.unpack(pkt.exposed + plain,
                                           pkt.next_header if self._psp else None)
                if self._full and len(pkt.exposed) > PayloadInfoHeader.overhead + len(inner.payload):
                    raise CryptOffsetBeyondPayload(
                        f"{len(pkt.exposed)} clear bytes, the inner packet has "
                        f"{len(inner.payload)}")
            else:
                inner = self.layout.unpack(plain, pkt.next_header if self._psp else None)
        except DecodeError as e:
            return Dropped(DropReason.MALFORMED, e.requirement, str(e), sub_sa, seq)
        if inner.next_header == NEXT_HEADER_DUMMY:
            return Dropped(DropReason.DUMMY, "WIRE-DUMMY-DISCARD", "next header 59",
                           sub_sa, seq)
        return Delivered(sub_sa, seq, inner.payload, inner.next_header)

    def _past_limit(self, counter: int | None) -> bool:
        pol = self.policy
        if pol.packets_per_subsa is not None and counter is not None:
            return counter > pol.packets_per_subsa
        return pol.packets_total is not None and sum(self.accepted) >= pol.packets_total
