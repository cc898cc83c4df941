"""The judge: the model beside the IUT, turning every disagreement into a finding.

Theory of operation: a ``Judge`` owns four model objects for one test run. For the IUT as
sender, ``expected`` (a model Sender on the IUT's outbound SA) says what the IUT should
send or refuse, and ``opener`` (a model Receiver on the same SA) must open what it sent.
For the IUT as receiver, ``peer`` (a model Sender on the IUT's inbound SA) makes packets,
and ``reference`` (a model Receiver on that SA) says what the IUT should do with each one.
``on_protect`` and ``on_unprotect`` compare and return ``Finding``s, each naming the
requirement broken; the level of that requirement makes the verdict (MUST -> FAIL,
SHOULD -> NON-STRICT, MAY -> INFO). A nonce ledger records the nonce of every packet the
IUT sends, rebuilt from its wire IV and the model's keys. Where the model cannot open an
IUT packet, ``diagnose_icv`` tries the usual wrong constructions (no ESN high half, a
truncated 64-bit SN, clear bytes outside the AAD, another sub-SA's key) to name the rule.
No I/O here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from spec_model import (CATALOGUE, Delivered, DropReason, Dropped, Framing, Level,
                        NonceLedger, NonceScheme, Receiver, Sender, SeqWire)
from spec_model.errors import DecodeError, IcvMismatch
from spec_model.nonce import nonce_builder
from spec_model.replay import EsnCase, infer_esn, too_old_requirement
from spec_model.subsa import locate

from ..contract import Capabilities, Refused, SaConfig


class Verdict(enum.Enum):
    PASS = "PASS"
    NON_STRICT = "NON-STRICT"
    FAIL = "FAIL"
    UNSUPPORTED = "UNSUPPORTED"
    INFO = "INFO"
    ERROR = "ERROR"            # espspec itself failed: no verdict about the IUT


LEVEL_VERDICT = {Level.MUST: Verdict.FAIL, Level.SHOULD: Verdict.NON_STRICT,
                 Level.MAY: Verdict.INFO, Level.STRICT: Verdict.NON_STRICT}
AAD_RULE = {Framing.ESP: "AAD-RFC4106", Framing.EESP_FULL: "AAD-EESP",
            Framing.EESP_OPTIMIZED: "AAD-EESP", Framing.PSP: "AAD-PSP"}
# a sender's fault when the model receiver complains about the body it built
SENDER_RULE = {"PAD-CONTENT-CHECK": "PAD-CONTENT-SEND", "REPLAY-DUPLICATE-DROP":
               "SEQ-STRICTLY-INCREASING", "REPLAY-TOO-OLD-DROP": "SEQ-STRICTLY-INCREASING",
               "REPLAY-WINDOW-EXACT": "SEQ-STRICTLY-INCREASING",
               "REPLAY-SEQ-ZERO": "SEQ-FIRST-ONE", "LIMIT-RECEIVER-ENFORCE":
               "LIMIT-HARD-PER-SUBSA"}


@dataclass(frozen=True)
class Finding:
    requirement: str
    message: str
    verdict: Verdict = Verdict.FAIL

    @classmethod
    def of(cls, requirement: str, message: str) -> "Finding":
        level = CATALOGUE[requirement].level if requirement in CATALOGUE else Level.MUST
        return cls(requirement, message, LEVEL_VERDICT[level])

    def __str__(self) -> str:
        return f"{self.verdict.value} {self.requirement}: {self.message}"


class Judge:
    def __init__(self, outbound: SaConfig, inbound: SaConfig, caps: Capabilities) -> None:
        self.outbound, self.inbound, self.caps = outbound, inbound, caps
        self.expected = Sender(outbound.profile, outbound.keymat, outbound.spi)
        self.opener = Receiver(outbound.profile, outbound.keymat, outbound.spi)
        self.peer = Sender(inbound.profile, inbound.keymat, inbound.spi)
        self.reference = Receiver(inbound.profile, inbound.keymat, inbound.spi)
        self.ledger = NonceLedger()
        self.sent = 0
        self._last_seq: dict[int, int] = {}
        self._nonce = nonce_builder(outbound.profile)

    # --- the IUT as sender ----------------------------------------------------------------
    def on_protect(self, sub_sa: int, payload: bytes, next_header: int | None,
                   result: bytes | Refused) -> list[Finding]:
        refusal = self.expected.refusal(sub_sa, len(payload))
        if isinstance(result, Refused):
            if refusal is None and not (self.caps.mtu and len(payload) > self.caps.mtu):
                return [Finding.of("SEND-WITHIN-LIMITS",
                                   f"IUT refused a packet on sub-SA {sub_sa} that its "
                                   f"counters and limits allow: {result.detail}")]
            return []
        self.sent += 1
        findings = []
        if refusal is not None:
            findings.append(Finding.of(refusal.requirement,
                                       f"IUT sent packet {self.sent} on sub-SA {sub_sa} where "
                                       f"it must refuse: {refusal}"))
            expected = None
        else:
            expected = self.expected.seal(sub_sa, payload, next_header)
        return findings + self._check_sent(sub_sa, payload, result, expected)

    def _check_sent(self, sub_sa, payload, wire, expected) -> list[Finding]:
        p = self.outbound.profile
        n = self.sent
        try:
            pkt = self.opener.codec.decode(wire)
        except DecodeError as e:
            return [Finding.of(e.requirement, f"IUT packet {n} is malformed: {e}")]
        out = []
        if expected is not None:
            exp = self.opener.codec.decode(expected.wire)
            if (pkt.spi, pkt.session_id) != (exp.spi, exp.session_id):
                out.append(Finding.of("SUBSA-ID-LOCATION",
                                      f"IUT packet {n} for sub-SA {sub_sa} carries SPI "
                                      f"{pkt.spi:#x} session {pkt.session_id}, expected SPI "
                                      f"{exp.spi:#x} session {exp.session_id}"))
            if p.replay_protected and pkt.seq != exp.seq:
                out.append(Finding.of(self._seq_rule(sub_sa, pkt.seq, expected),
                                      f"IUT packet {n} on sub-SA {sub_sa} carries SN "
                                      f"{pkt.seq}, expected {exp.seq}"))
        if pkt.seq is not None:
            self._last_seq[sub_sa] = pkt.seq
        # the model must open it, as a fresh receiver positioned just before this SN
        opened = self._open_fresh(wire, pkt, expected)
        if isinstance(opened, Dropped):
            if opened.reason is DropReason.ICV:
                out.append(Finding.of(self.diagnose_icv(wire, pkt, expected),
                                      f"IUT packet {n} (sub-SA {sub_sa}) does not verify "
                                      f"under the model's keys, nonce and AAD"))
            else:
                out.append(Finding.of(SENDER_RULE.get(opened.requirement, opened.requirement),
                                      f"IUT packet {n} (sub-SA {sub_sa}): {opened.detail}"))
        elif opened.payload != payload:
            out.append(Finding.of("RECV-ACCEPT-VALID", f"IUT packet {n} decrypts to another "
                                                       f"payload than it was given"))
        # nonce bookkeeping, from what is on the wire
        sub = locate(p, self.outbound.spi, pkt.spi, pkt.session_id, pkt.seq)[0]
        if 0 <= sub < p.n_sub_sas:
            _, salt, key_id = self.opener.keying.get(sub)
            iv = (expected.seq if expected is not None else pkt.seq or 0) \
                if p.nonce is NonceScheme.IMPLICIT_IV else int.from_bytes(pkt.iv, "big")
            reuse = self.ledger.record(key_id, self._nonce(salt, pkt.spi, iv), n, sub)
            if reuse is not None:
                out.append(Finding.of("NONCE-UNIQUE-PER-KEY", str(reuse)))
        return out

    def _seq_rule(self, sub_sa: int, seq: int, expected) -> str:
        """Which sequence-number rule a wrong SN on the wire breaks."""
        last = self._last_seq.get(sub_sa)
        if expected.counter == 1 or last is None:
            return "SEQ-FIRST-ONE" if expected.counter == 1 else "SEQ-STRICTLY-INCREASING"
        top = (1 << (64 if self.outbound.profile.seq is SeqWire.SEQ64 else 32)) - 1
        if seq <= last and top - last < 1 << 16:
            return "SEQ-NO-WRAP"          # it went back to the bottom near the top
        return "SEQ-STRICTLY-INCREASING"

    def _open_fresh(self, wire, pkt, expected):
        """Open with the model as if no other packet had arrived (the sender is judged
        on this packet alone; ordering is judged by the SN checks above)."""
        fresh = self.opener
        fresh.windows.clear()
        fresh.accepted = [0] * len(fresh.accepted)
        if expected is not None and expected.seq:
            fresh.jump(expected.sub_sa, expected.counter - 1)
        return fresh.open(wire)

    def diagnose_icv(self, wire: bytes, pkt, expected) -> str:
        """Name the rule an unverifiable IUT packet most likely broke."""
        p = self.outbound.profile
        codec = self.opener.codec
        sub = expected.sub_sa if expected is not None else 0
        cipher, salt, _ = self.opener.keying.get(sub)
        seq = expected.seq if expected is not None else pkt.seq
        iv = seq if p.nonce is NonceScheme.IMPLICIT_IV else int.from_bytes(pkt.iv, "big")
        nonce = self._nonce(salt, pkt.spi, iv)
        header = wire[:codec.header_len_of(wire)]
        aad = codec.aad(header, seq)
        candidates = []
        if p.seq is SeqWire.ESN:
            candidates.append(("AAD-ESN-HIGH", header[:8] + pkt.exposed))
        if p.seq is SeqWire.SEQ64 and seq is not None:
            i = aad.find(seq.to_bytes(8, "big"))
            if i >= 0:
                low = aad[:i] + bytes(4) + aad[i + 4:]
                cut = aad[:i] + aad[i + 4:]
                candidates += [("AAD-SEQ64-FULL", low + pkt.exposed),
                               ("AAD-SEQ64-FULL", cut + pkt.exposed)]
        if pkt.exposed:
            candidates.append(("CRYPTOFF-AUTHENTICATED", aad))
        for rule, candidate in candidates:
            try:
                cipher.open(nonce, pkt.ciphertext, pkt.icv, candidate)
                return rule
            except IcvMismatch:
                pass
        if p.nonce is NonceScheme.SUBSA_SALT and sub:
            _, salt0, _ = self.opener.keying.get(0)      # sub-SA 0's salt for every sub-SA?
            try:
                cipher.open(self._nonce(salt0, pkt.spi, iv), pkt.ciphertext, pkt.icv,
                            aad + pkt.exposed)
                return "NONCE-SUBSA-SEPARATION"
            except IcvMismatch:
                pass
        if p.nonce is NonceScheme.SUBSA_KEY and p.n_sub_sas > 1:
            for other in range(min(p.n_sub_sas, 16)):
                c, s, _ = self.opener.keying.get(other)
                try:
                    c.open(self._nonce(s, pkt.spi, iv), pkt.ciphertext, pkt.icv,
                           aad + pkt.exposed)
                    return "KDF-SUBSA-KEY"
                except IcvMismatch:
                    pass
        return AAD_RULE[p.framing]

    # --- the IUT as receiver ----------------------------------------------------------------
    def on_unprotect(self, wire: bytes, result, label: str) -> list[Finding]:
        p = self.inbound.profile
        before = self._esn_case(wire)
        model = self.reference.open(wire)
        if isinstance(model, Delivered):
            if isinstance(result, Dropped):
                if p.seq is SeqWire.ESN and before is not None and result.reason in (
                        DropReason.ICV, DropReason.REPLAY, DropReason.TOO_OLD, None):
                    rule = "ESN-INFER-CASE-A" if before is EsnCase.A else "ESN-INFER-CASE-B"
                elif result.reason in (DropReason.REPLAY, DropReason.TOO_OLD):
                    rule = "REPLAY-WINDOW-SIZE" if model.sub_sa == 0 or p.n_sub_sas == 1 \
                        else "REPLAY-PER-SUBSA-WINDOW"
                else:
                    rule = "RECV-ACCEPT-VALID"
                return [Finding.of(rule, f"{label}: the model delivers it (sub-SA "
                                         f"{model.sub_sa}, SN {model.seq}), the IUT drops it"
                                         f" ({result.reason.value if result.reason else '?'}"
                                         f": {result.detail})")]
            if result.payload != model.payload:
                return [Finding.of("RECV-ACCEPT-VALID", f"{label}: IUT delivered another "
                                                        f"payload than was protected")]
            return []
        if isinstance(result, Delivered):
            requirement = model.requirement
            behind = self._too_old_in_subspace(wire)
            if model.reason is DropReason.ICV and behind is not None:
                # ESN: read as Th + 1, the ICV fails
                requirement = too_old_requirement(p.window, behind)
            return [Finding.of(requirement, f"{label}: the model drops it "
                                                  f"({model.reason.value}: {model.detail}), "
                                                  f"the IUT delivers it")]
        if (self.caps.reports_drop_reasons and result.reason is not None
                and result.reason is not model.reason
                and not self._equivalent(model.reason, result.reason)):
            return [Finding(model.requirement, f"{label}: both drop it, the model for "
                                               f"{model.reason.value}, the IUT for "
                                               f"{result.reason.value}", Verdict.INFO)]
        return []

    def _equivalent(self, a: DropReason, b: DropReason) -> bool:
        """Reasons that one conforming receiver may report for another's."""
        left = {DropReason.TOO_OLD, DropReason.ICV, DropReason.REPLAY}
        return self.inbound.profile.seq is SeqWire.ESN and a in left and b in left

    def _esn_position(self, wire: bytes) -> tuple[int, int] | None:
        """ESN profiles: (received low word Seql, T of its sub-SA's reference window)."""
        p = self.inbound.profile
        if p.seq is not SeqWire.ESN:
            return None
        try:
            pkt = self.reference.codec.decode(wire)
        except DecodeError:
            return None
        sub = locate(p, self.inbound.spi, pkt.spi, pkt.session_id, None)[0]
        return pkt.seq, self.reference.top(sub)

    def _too_old_in_subspace(self, wire: bytes) -> int | None:
        """ESN: how far behind Tl a low word at least W behind it is (Appendix A reads it
        as Th + 1), else None."""
        pos = self._esn_position(wire)
        if pos is None:
            return None
        seql, tl = pos[0], pos[1] & 0xFFFFFFFF
        return tl - seql if seql <= tl and tl - seql >= self.inbound.profile.window else None

    def _esn_case(self, wire: bytes) -> EsnCase | None:
        """The Appendix A case of a packet, when its inference crosses a subspace."""
        pos = self._esn_position(wire)
        if pos is None:
            return None
        seql, top = pos
        seq, case = infer_esn(seql, top, self.inbound.profile.window)
        return case if seq >> 32 != top >> 32 else None


