"""One test session: an installed IUT, its judge, and the step log.

Theory of operation: a ``Session`` is what a suite case or a lockstep machine works with.
It makes deterministic SA configurations for a profile (keys derived from the profile
name and a seed, fixed SPIs), installs them in the IUT, and offers the moves a scenario is
made of — the IUT sends, the model's peer sends, a packet is delivered (possibly changed
on the way) — each judged at once. Every move is logged as ``(verb, kwargs)`` so that a
failing scenario can be printed and replayed with ``replay``. IUT exceptions become
IUT-NO-CRASH findings. It is I/O-free apart from what the IUT itself does.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from spec_model import Kdf, Mode, Profile
from spec_model.errors import DecodeError, SendRefused
from spec_model.kdf import ROOT_KEY_LEN
from spec_model.profile import SubSaLocation

from ..contract import Iut, IutFactory, Refused, SaConfig
from .judge import Finding, Verdict

SPI_OUT = 0x0000_1000
SPI_IN = 0x0000_2000


def keymat(profile: Profile, label: str, seed: int) -> bytes:
    n = ROOT_KEY_LEN[profile.kdf] if profile.kdf is not Kdf.NONE else profile.aead_spec.keymat_len
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"espspec/{label}/{profile.name}/{seed}/{len(out)}".encode()).digest()
    return out[:n]


def make_payload(profile: Profile, size: int, fill: int = 0xA5, v6: bool = False
                 ) -> tuple[bytes, int | None]:
    """A payload of about ``size`` bytes that suits the mode: an IP packet in tunnel mode
    (at least a header), raw transport bytes with next header UDP otherwise."""
    body = bytes((fill + i) & 0xFF for i in range(size))
    if profile.mode is not Mode.TUNNEL:
        return body, 17
    if v6:
        return struct.pack("!IHBB16s16s", 6 << 28, len(body), 17, 64, bytes(16),
                           bytes(15) + b"\x01") + body, None
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 17, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + body, None


class ConformanceFailure(AssertionError):
    """Raised inside a scenario on the first finding that fails the run."""

    def __init__(self, findings: list[Finding], steps: list[tuple[str, dict]],
                 profile: Profile | None = None) -> None:
        super().__init__("; ".join(str(f) for f in findings))
        self.findings = findings
        self.steps = steps
        self.profile = profile      # the profile the failing session ran (may be a variant)


@dataclass
class Session:
    iut: Iut
    profile: Profile
    seed: int = 0
    strict: bool = False
    steps: list[tuple[str, dict]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    sink: list[Finding] | None = None     # collects findings that do not fail the run

    def __post_init__(self) -> None:
        from .judge import Judge
        self.outbound = SaConfig(self.profile, SPI_OUT, keymat(self.profile, "out", self.seed))
        self.inbound = SaConfig(self.profile, SPI_IN, keymat(self.profile, "in", self.seed))
        self.caps = self.iut.capabilities()
        self.iut.install(self.outbound, self.inbound)
        self.judge = Judge(self.outbound, self.inbound, self.caps)
        self.in_flight: list[tuple[str, bytes]] = []

    @classmethod
    def open(cls, factory: IutFactory, profile: Profile, **kw) -> "Session":
        return cls(factory(), profile, **kw)

    # --- bookkeeping -------------------------------------------------------------------------
    def log(self, verb: str, **kwargs) -> None:
        self.steps.append((verb, kwargs))

    def judge_all(self, findings: list[Finding]) -> None:
        self.findings.extend(findings)
        failing = [f for f in findings if f.verdict is Verdict.FAIL
                   or (self.strict and f.verdict is Verdict.NON_STRICT)]
        if failing:
            raise ConformanceFailure(failing, list(self.steps), self.profile)
        if self.sink is not None:
            self.sink.extend(findings)

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except ConformanceFailure:
            raise
        except Exception as e:  # the IUT crashed: that is a finding, not our traceback
            self.judge_all([Finding.of("IUT-NO-CRASH", f"{what} raised {type(e).__name__}: "
                                                       f"{e}")])

    # --- moves -------------------------------------------------------------------------------
    def iut_send(self, sub_sa: int, size: int, v6: bool = False) -> bytes | Refused | None:
        self.log("iut_send", sub_sa=sub_sa, size=size, v6=v6)
        payload, nh = make_payload(self.profile, size, v6=v6)
        result = self._call("protect", self.iut.protect, sub_sa, payload, nh)
        self.judge_all(self.judge.on_protect(sub_sa, payload, nh, result))
        return result

    def peer_send(self, sub_sa: int, size: int, v6: bool = False) -> bytes | None:
        """The model's peer protects a packet for the IUT and puts it in flight."""
        self.log("peer_send", sub_sa=sub_sa, size=size, v6=v6)
        sealed = self._peer_seal(sub_sa, size, v6)
        if sealed is not None:
            self.in_flight.append((f"peer packet sub-SA {sub_sa} SN {sealed.seq}", sealed.wire))
            return sealed.wire
        return None

    def _peer_seal(self, sub_sa: int, size: int, v6: bool = False):
        payload, nh = make_payload(self.profile, size, fill=0x5A, v6=v6)
        try:
            return self.judge.peer.seal(sub_sa, payload, nh)
        except SendRefused:
            return None

    def deliver_wire(self, wire: bytes, label: str) -> None:
        result = self._call("unprotect", self.iut.unprotect, wire)
        self.judge_all(self.judge.on_unprotect(wire, result, label))

    def deliver_bytes(self, wire: str, label: str = "hand-built packet") -> None:
        """Deliver bytes a scenario built itself (hex, so that the step log is JSON)."""
        self.log("deliver_bytes", wire=wire, label=label)
        self.deliver_wire(bytes.fromhex(wire), label)

    def deliver(self, index: int) -> None:
        self.log("deliver", index=index)
        label, wire = self.in_flight.pop(index % len(self.in_flight))
        self.deliver_wire(wire, label)

    def duplicate(self, index: int) -> None:
        self.log("duplicate", index=index)
        label, wire = self.in_flight[index % len(self.in_flight)]
        self.in_flight.append((label + " (duplicate)", wire))

    def drop(self, index: int) -> None:
        self.log("drop", index=index)
        self.in_flight.pop(index % len(self.in_flight))

    def deliver_changed(self, index: int, how: str, value: int) -> None:
        """Deliver a changed copy of an in-flight packet (the original stays in flight)."""
        self.log("deliver_changed", index=index, how=how, value=value)
        label, wire = self.in_flight[index % len(self.in_flight)]
        changed = self.change(wire, how, value)
        if changed is not None:
            self.deliver_wire(changed, f"{label} with {how} {value:#x}")

    def change(self, wire: bytes, how: str, value: int) -> bytes | None:
        p = self.profile
        codec = self.judge.reference.codec
        if how == "flip":
            bit = value % (8 * len(wire))
            out = bytearray(wire)
            out[bit // 8] ^= 1 << (bit % 8)
            return bytes(out)
        try:
            pkt = codec.decode(wire)
        except DecodeError:
            return None
        import dataclasses
        if how == "forge-seq" and pkt.seq is not None:
            width = 64 if p.seq.value == "64" else 32
            if value % (1 << width) == 0:
                return None                 # the same field value: not a forgery
            return codec.encode(dataclasses.replace(pkt, seq=(pkt.seq + value) % (1 << width)))
        if how == "relabel" and p.n_sub_sas > 1:
            sub = value % p.n_sub_sas
            if p.subsa is SubSaLocation.SPI:
                return codec.encode(dataclasses.replace(pkt, spi=self.inbound.spi | sub))
            if p.subsa is SubSaLocation.HEADER:
                return codec.encode(dataclasses.replace(pkt, session_id=sub))
            if p.subsa is SubSaLocation.SEQ:
                shift = 32 - p.subsa_bits if p.seq.value == "32" else 64 - p.subsa_bits
                seq = (pkt.seq & ((1 << shift) - 1)) | (sub << shift)
                return codec.encode(dataclasses.replace(pkt, seq=seq))
        return None

    def hold_past_window(self, sub_sa: int, extra: int) -> None:
        """Send one packet, then W + extra more that are delivered, then the first one."""
        self.log("hold_past_window", sub_sa=sub_sa, extra=extra)
        held = self._peer_seal(sub_sa, 8)
        if held is None:
            return
        for _ in range(max(0, self.profile.window + extra)):
            filler = self._peer_seal(sub_sa, 0)
            if filler is None:
                break
            self.deliver_wire(filler.wire, f"filler on sub-SA {sub_sa} SN {filler.seq}")
        self.deliver_wire(held.wire, f"packet SN {held.seq} held back {self.profile.window + extra} packets "
                                f"on sub-SA {sub_sa}")

    def jump_iut(self, sub_sa: int, value: int) -> bool:
        """Set the IUT's and the judge's sender counters (when the IUT can)."""
        if not self.caps.can_set_counters:
            return False
        value = min(value, self.judge.expected.policy.counter_max)
        if value <= self.judge.expected.counters[sub_sa]:
            return False              # counters only move forward: going back reuses nonces
        self.log("jump_iut", sub_sa=sub_sa, value=value)
        self._call("set_counter", self.iut.set_counter, sub_sa, value)
        self.judge.expected.set_counter(sub_sa, value)
        self.judge._last_seq.pop(sub_sa, None)
        return True

    def jump_peer(self, sub_sa: int, delta: int) -> None:
        """Move the model's peer counter ahead by delta (packets the IUT never sees)."""
        peer = self.judge.peer
        value = min(peer.counters[sub_sa] + delta, peer.policy.counter_max - 1)
        if value <= peer.counters[sub_sa]:
            return
        self.log("jump_peer", sub_sa=sub_sa, delta=delta)
        peer.set_counter(sub_sa, value)

    def close(self) -> None:
        try:
            self.iut.close()
        except Exception:  # closing a crashed IUT must not hide the finding
            pass


VERBS = {"iut_send", "peer_send", "deliver", "deliver_bytes", "duplicate", "drop",
         "deliver_changed", "hold_past_window", "jump_iut", "jump_peer"}


def replay(factory: IutFactory, profile: Profile, steps: list[tuple[str, dict]],
           seed: int = 0, strict: bool = False) -> list[Finding]:
    """Run a logged step list again; returns the findings (raises nothing)."""
    session = Session.open(factory, profile, seed=seed, strict=strict)
    try:
        for verb, kwargs in steps:
            if verb not in VERBS:
                raise ValueError(f"unknown step {verb!r}")
            getattr(session, verb)(**kwargs)
    except ConformanceFailure as failure:
        return failure.findings
    finally:
        session.close()
    return session.findings
