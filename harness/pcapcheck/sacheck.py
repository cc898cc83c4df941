"""The checking state of one child SA: ``SaCheck``, and what a pass shares: ``PassContext``.

Theory of operation
-------------------
A ``SaCheck`` holds, per sub-SA, a handful of integers (highest counter, packets, bytes,
...) in plain lists indexed by sub-SA, and a small ring of the last ``CheckConfig.ring``
counters with the packet number and file position that carried them; no per-packet
object survives the packet, so memory is flat for any capture length. Per-sub-SA
constants (AEAD, salt, key ID, nonce space) are built on first use (``sub_info``): a
profile may have up to 65536 sub-SAs.

Each packet handed to it (``feed``, bound at construction: the ESP closure of
``fastpath`` or the general path) is checked against the model:

* wire format: the profile's codec (``spec_model.wire.codec_for``) decodes it; a refusal
  names the codec's requirement (WIRE-TRUNCATED, WIRE-ALIGN, WIRE-EESP-*, ...);
  ``feed_esp`` slices ESP packets the codec would accept without building its object;
* sub-SA: ``spec_model.subsa.locate`` reads the ID (SUBSA-ID-RANGE when >= N); ESN
  high halves come from ``spec_model.replay.infer_esn`` against the sub-SA's highest
  counter so far (``sequence.NEAREST_WINDOW``; a counter that seems to leave its space is
  retried as a wrapped one);
* ICV: one AEAD object per key (``spec_model.keying.Keying``), the nonce from
  ``spec_model.nonce.nonce_builder`` and the AAD from the codec (ICV-VERIFY; a failure is
  explained by ``diagnosis``);
* body: ``spec_model.wire.LAYOUTS`` unpacks trailer/PIH/padding (PAD-CONTENT-SEND,
  WIRE-PAD-LENGTH, ...);
* then ``account``: the counter (``sequence``), the nonce (``nonces``), the ring, the
  statistics and the limits (``limits``).

``SaCheck`` is assembled from the rule modules: ``SequenceRules``, ``NonceRules`` and
``IcvDiagnosis`` are mixins that work on its state; ``SaLimits`` is a part it owns.
With ``owned`` a worker's ``SaCheck`` checks only some sub-SAs (the rest are another
worker's, see ``jobs``). Reading the capture and finding a packet's SA are
``senderpass``'s and ``dispatch``'s; opening packets for the receiver judge is
``rxjudge``'s.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag

from spec_model.errors import DecodeError, IcvMismatch
from spec_model.keying import Keying
from spec_model.limits import LimitPolicy
from spec_model.nonce import iv_value, nonce_builder
from spec_model.profile import SEQ_WIRE_BITS, Framing, NonceScheme, SeqWire, SubSaLocation
from spec_model.replay import infer_esn
from spec_model.subsa import locate, seq_for, spi_for
from spec_model.wire import LAYOUTS, codec_for
from spec_model.wire.payload import NEXT_HEADER_DUMMY, PayloadInfoHeader

from .config import CheckConfig
from .diagnosis import IcvDiagnosis
from .dispatch import FRAMING_KIND, spi_of
from .fastpath import SPI_SN32, SPI_SN64, fast_esp_feed
from .keys import SaKey
from .limits import SaLimits
from .nonces import NonceRules, NonceSpace, sub_identity
from .report import FindingSink, SaStats, SubSaStats
from .sequence import NEAREST_WINDOW, SequenceRules

__all__ = ["PassContext", "SaCheck"]

_SENDER_SIDE = {"PAD-CONTENT-CHECK": "PAD-CONTENT-SEND"}   # receiver rule -> sender rule


class PassContext:
    """What the SA checks of one pass share: the sink, the config, the capture bytes."""

    def __init__(self, source, sink: FindingSink, config: CheckConfig) -> None:
        self.source = source
        self.sink = sink
        self.config = config
        self._fd = None

    def read(self, pos: int, length: int) -> bytes:
        """Bytes of the capture at a file position (to compare with an earlier packet)."""
        src = self.source
        if isinstance(src, (bytes, bytearray, memoryview)):
            return bytes(src[pos:pos + length])
        if self._fd is None:
            self._fd = os.open(src, os.O_RDONLY)
        return os.pread(self._fd, length, pos)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SaCheck(SequenceRules, NonceRules, IcvDiagnosis):
    """State and checks of one child SA (or of the sub-SAs of it one worker owns)."""

    def __init__(self, sa: SaKey, ctx: PassContext, owned: frozenset[int] | None,
                 spaces: dict) -> None:
        p = self.profile = sa.profile
        self.sa = sa
        self.ctx = ctx
        self.sink = ctx.sink
        cfg = ctx.config
        self.base = sa.spi
        self.kind = FRAMING_KIND[p.framing]
        self.codec = codec_for(p)
        self.layout = LAYOUTS[p.framing]
        self.keying = Keying(p, sa.keymat, sa.spi)
        self.policy = pol = LimitPolicy.of(p)
        self.nb = nonce_builder(p)
        self.n = n = p.n_sub_sas
        self.owned = owned
        self.loc = p.subsa
        self.esn = p.seq is SeqWire.ESN
        self.has_seq = p.replay_protected
        self.iiv = p.nonce is NonceScheme.IMPLICIT_IV
        self.psp = p.framing is Framing.PSP
        self.full = p.framing is Framing.EESP_FULL
        self.window = p.window
        self.cmax = pol.counter_max
        self.icv_len = p.aead_spec.icv_len
        self.shift = SEQ_WIRE_BITS[p.seq] - p.subsa_bits if p.subsa is SubSaLocation.SEQ else 0
        self.partitioned = p.nonce is NonceScheme.PARTITIONED_IV and p.subsa_bits > 0
        self.shared_key = p.shared_key and n > 1
        self.rmask = cfg.ring - 1
        self.diag_left = cfg.diagnose
        self.diag_hint = None          # the trial that explained the last ICV failure
        self.oor_hint = False          # out-of-range IDs explained by SUBSA-ID-LOCATION
        # per-sub-SA constants (lazily: a profile may have up to 65536 sub-SAs)
        self.iv_prefix = [iv_value(p, i, seq_for(p, i, 0) if self.has_seq else None, 0)
                          for i in range(n)]
        self.subs: list = [None] * n   # sub_info's tuples
        self.spaces = spaces           # (key_id, nonce prefix) -> NonceSpace, pass-wide
        self.aliases: dict[int, list] = {}   # sub-SA -> sub-SAs sharing its nonce space
        # per-sub-SA state: plain lists of ints, indexed by sub-SA
        self.highest = [0] * n
        self.expect = [-1] * n         # highest + 1 once a packet was seen (fast path)
        self.highest_pn = [0] * n
        self.pkts = [0] * n
        self.nbytes = [0] * n
        self.first_counter: list = [None] * n
        self.first_pn = [0] * n
        self.icv_fail = [0] * n
        self.malformed = [0] * n
        self.missing = [0] * n
        self.ooo = [0] * n
        self.dups = [0] * n
        self.rule_breaks = [0] * n
        self.dummies = [0] * n
        self.snap_cut = [0] * n
        self.rings: list = [None] * n
        self.limits = SaLimits(pol, n)
        # the ESP fast path: only where it provably does what the codec does
        c = self.codec
        self.fast = p.framing is Framing.ESP
        if self.fast:
            self.seq_len = c.seq_len
            self.hlen = c.header_len
            self.min_len = c.min_len
            self.align = p.alignment
            self.head = SPI_SN64 if c.seq_len == 8 else SPI_SN32
            self.aad_len = 4 + c.seq_len
            sample = self.head.pack(0x01020304, 0x05060708) + bytes(c.iv_len)
            self.aad_slice = not self.esn and c.aad(sample, 0x05060708) == sample[:self.aad_len]
            self.fast_nonce = self.nb(b"\x0a\x0b\x0c\x0d", 0x01020304, 0x1122334455667788) == \
                b"\x0a\x0b\x0c\x0d" + (0x1122334455667788).to_bytes(8, "big")
        self.feed = fast_esp_feed(self) if self.fast else self.feed_generic_at

    # --- per-sub-SA constants -------------------------------------------------------------
    def sub_info(self, sub: int) -> tuple:
        """(cipher, salt, key_id, raw 16-byte-tag AEAD or None, nonce space, the space's
        exact table) of a sub-SA."""
        hit = self.subs[sub]
        if hit is None:
            cipher, salt, key_id = self.keying.get(sub)
            raw = cipher.joined
            ident = sub_identity(self.sa, self.keying, sub)
            space = self.spaces.get(ident[:2])
            if space is None:
                space = self.spaces[ident[:2]] = NonceSpace(f"key {key_id}")
            space.join(self, sub)
            hit = self.subs[sub] = (cipher, salt, key_id, raw, space, space.exact)
        return hit

    # --- entry points ---------------------------------------------------------------------
    def feed_generic_at(self, n: int, foff: int, dpos: int, data: bytes, off: int,
                        ln: int) -> None:
        self.feed_generic(n, foff, dpos + off, data[off:off + ln])

    def feed_esp(self, n: int, foff: int, pos: int, pkt: bytes) -> None:
        """ESP framing with every check. A packet ``EspCodec.decode`` would refuse
        (length below min_len, ICV misaligned) or whose sub-SA is out of range goes
        through ``feed_generic``, which reports the codec's error and requirement; the
        rest is sliced here without building the codec's packet object."""
        ln = len(pkt)
        if ln < self.min_len or (ln - self.icv_len) % self.align:
            return self.feed_generic(n, foff, pos, pkt)
        spi, seqw = self.head.unpack_from(pkt)
        loc = self.loc
        if loc is SubSaLocation.SEQ:
            sub, counter = locate(self.profile, self.base, spi, 0, seqw)
        else:
            sub = locate(self.profile, self.base, spi, 0, None)[0]
        if not 0 <= sub < self.n:
            return self.feed_generic(n, foff, pos, pkt)
        if self.owned is not None and sub not in self.owned:
            return
        if self.esn:
            top = self.highest[sub] if self.pkts[sub] else self.sa.esn_start
            seq = counter = infer_esn(seqw, top, NEAREST_WINDOW)[0]
        elif loc is SubSaLocation.SEQ:
            seq = seqw
        else:
            seq = counter = seqw
        info = self.subs[sub] or self.sub_info(sub)
        hl = self.hlen
        if self.iiv:
            iv = seq
            nonce = self.nb(info[1], spi, iv)
        else:
            ivb = pkt[hl - 8:hl]
            iv = int.from_bytes(ivb, "big")
            nonce = info[1] + ivb if self.fast_nonce else self.nb(info[1], spi, iv)
        aad = pkt[:self.aad_len] if self.aad_slice else self.codec.aad(pkt, seq)
        try:
            raw = info[3]
            if raw is not None:
                pt = raw.decrypt(nonce, pkt[hl:], aad)
            else:
                icv = self.icv_len
                pt = info[0].open(nonce, pkt[hl:ln - icv], pkt[ln - icv:], aad)
        except (InvalidTag, IcvMismatch):
            if not (self.esn and (not seq or seq > self.cmax)):
                return self.icv_failed(n, foff, pkt, spi, sub, seq, iv, aad, b"", None)
            # ESN inference says the counter left its space: did the sender wrap?
            seq = counter = seqw
            if self.iiv:
                iv = seq
                nonce = self.nb(info[1], spi, iv)
            aad = self.codec.aad(pkt, seq)
            try:
                pt = info[0].open(nonce, pkt[hl:ln - self.icv_len], pkt[ln - self.icv_len:],
                                  aad)
            except IcvMismatch:
                return self.icv_failed(n, foff, pkt, spi, sub, seq, iv, aad, b"", None)
        try:
            inner = self.layout.unpack(pt)
            plen, nh = len(inner[0]), inner[1]
        except DecodeError as e:
            self.body_error(n, foff, spi, sub, e)
            plen, nh = 0, -1
        self.account(n, foff, pos, ln, spi, sub, counter, iv, nonce, plen, nh, info)

    def feed_generic(self, n: int, foff: int, pos: int, pkt: bytes) -> None:
        """Any framing, through the codec's decoder (the way ``Receiver.open`` does)."""
        sink = self.sink
        try:
            d = self.codec.decode(pkt)
        except DecodeError as e:
            spi = spi_of(pkt, self.kind)
            sink.check(e.requirement, n, foff, spi, None, f"{self.kind.upper()} packet "
                       f"refused by the {self.profile.name} codec: {e}")
            return
        p = self.profile
        spi = d.spi
        seq = d.seq
        if self.loc is SubSaLocation.SEQ:
            sub, counter = locate(p, self.base, spi, d.session_id, seq)
        else:
            sub = locate(p, self.base, spi, d.session_id, None)[0]
        if not 0 <= sub < self.n:
            return self.out_of_range(n, foff, pkt, d, sub)
        if self.owned is not None and sub not in self.owned:
            return
        if self.loc is not SubSaLocation.SEQ:
            if self.esn:
                top = self.highest[sub] if self.pkts[sub] else self.sa.esn_start
                seq = infer_esn(seq, top, NEAREST_WINDOW)[0]
            counter = seq
        iv = seq if self.iiv else int.from_bytes(d.iv, "big")
        if not self.has_seq:
            counter = self.counter_from_iv(sub, iv)
        info = self.subs[sub] or self.sub_info(sub)
        nonce = self.nb(info[1], spi, iv)
        header = pkt[:self.codec.header_len_of(pkt)]
        aad = self.codec.aad(header, seq) + d.exposed
        try:
            pt = info[0].open(nonce, d.ciphertext, d.icv, aad)
        except IcvMismatch:
            if not (self.esn and (not seq or seq > self.cmax)):
                return self.icv_failed(n, foff, pkt, spi, sub, seq, iv, aad, d.exposed, d)
            # ESN inference says the counter left its space: did the sender wrap?
            seq = counter = d.seq
            if self.iiv:
                iv = seq
                nonce = self.nb(info[1], spi, iv)
            aad = self.codec.aad(header, seq) + d.exposed
            try:
                pt = info[0].open(nonce, d.ciphertext, d.icv, aad)
            except IcvMismatch:
                return self.icv_failed(n, foff, pkt, spi, sub, seq, iv, aad, d.exposed, d)
        nh = d.next_header if self.psp else None
        try:
            body = d.exposed + pt if d.exposed else pt
            inner = self.layout.unpack(body, nh)
            if self.full and d.exposed and \
                    len(d.exposed) > PayloadInfoHeader.overhead + len(inner.payload):
                sink.check("CRYPTOFF-WITHIN-PAYLOAD", n, foff, spi, sub,
                           f"{len(d.exposed)} clear bytes, the inner packet has "
                           f"{len(inner.payload)}")
            plen, nh = len(inner.payload), inner.next_header
        except DecodeError as e:
            self.body_error(n, foff, spi, sub, e)
            plen, nh = 0, -1
        self.account(n, foff, pos, len(pkt), spi, sub, counter, iv, nonce, plen, nh, info)

    def cut(self, n: int, foff: int, captured: int, spi: int) -> None:
        """A packet cut by the snap length: counted and reported, not checked."""
        sub = None
        if self.loc is SubSaLocation.SPI and 0 <= spi - self.base < self.n:
            sub = spi - self.base
        elif self.loc is SubSaLocation.NONE:
            sub = 0
        if self.owned is not None and (sub if sub is not None else 0) not in self.owned:
            return
        self.snap_cut[sub or 0] += 1
        self.sink.info("snap-cut", n, foff, spi, sub,
                       f"{self.kind.upper()} packet cut by the snap length ({captured} bytes "
                       f"of it captured): ICV, nonce and sequence number not checked")

    # --- shared steps -----------------------------------------------------------------------
    def counter_from_iv(self, sub: int, iv: int) -> int:
        """Without a sequence number the counter travels in the IV (below the prefix)."""
        return iv & self.cmax

    def account(self, n, foff, pos, ln, spi, sub, counter, iv, nonce, plen, nh, info):
        """Sequence numbers, nonce rule and reuse, statistics and limits of one
        authenticated packet."""
        increasing = self.advance(n, foff, pos, ln, spi, sub, counter, iv)
        self.check_nonce(n, foff, pos, ln, spi, sub, counter, iv, nonce, info)
        ring = self.rings[sub]
        if ring is None:
            ring = self.rings[sub] = [None] * (self.rmask + 1)
        if increasing or counter + self.rmask >= self.highest[sub]:
            ring[counter & self.rmask] = (counter, n, pos, ln)
        self.pkts[sub] += 1
        self.nbytes[sub] += plen
        if nh == NEXT_HEADER_DUMMY:
            self.dummies[sub] += 1
        if self.limits.active:
            self.limits.account(self.sink, n, foff, spi, sub, counter, self.pkts[sub],
                                self.nbytes[sub], plen)

    def same_bytes(self, prev: tuple, pos: int, ln: int) -> bool:
        """Whether an earlier packet (``prev`` ends with its file position and length) has
        exactly this packet's bytes: a duplicate, not a second use of the nonce."""
        return prev[-1] == ln and self.ctx.read(prev[-2], ln) == self.ctx.read(pos, ln)

    def body_error(self, n, foff, spi, sub, e: DecodeError) -> None:
        self.malformed[sub] += 1
        req = _SENDER_SIDE.get(e.requirement, e.requirement)
        self.sink.check(req, n, foff, spi, sub, f"authenticated packet with a bad body: {e}")

    # --- results ----------------------------------------------------------------------------
    def stats(self) -> SaStats:
        sa = self.sa
        out = SaStats(sa.spi, self.profile.name, sa.direction, sa.src, sa.dst)
        owned = range(self.n) if self.owned is None else sorted(self.owned)
        for i in owned:
            if i >= 4096 and not self.pkts[i] and not self.icv_fail[i]:
                continue
            out.subs.append(SubSaStats(
                sub_sa=i, spi=spi_for(self.profile, sa.spi, i),
                key_id=self.subs[i][2] if self.subs[i] else "",
                packets=self.pkts[i], icv_failures=self.icv_fail[i],
                malformed=self.malformed[i], payload_bytes=self.nbytes[i],
                first_counter=self.first_counter[i], highest_counter=self.highest[i],
                first_packet=self.first_pn[i], highest_packet=self.highest_pn[i],
                missing=self.missing[i], out_of_order=self.ooo[i], duplicates=self.dups[i],
                iv_rule_breaks=self.rule_breaks[i], dummies=self.dummies[i],
                snap_cut=self.snap_cut[i]))
        return out
