"""One test session: an installed IUT, its judge, and the step log.

Theory of operation: a ``Session`` is what a suite case or a lockstep machine works with.
It builds the IUT with the factory, installs a fresh pair of SAs in it, and offers the
moves a scenario is made of -- the IUT sends, the model's peer sends, a packet is
delivered (possibly changed on the way), both SAs are replaced by a rekey
(``harness.engine.rekey``) -- each judged at once. Every move is logged as
``(verb, kwargs)`` so that a failing scenario can be printed and replayed with ``replay``.

Each session has a label (case, profile, ordinal) from which its SPIs and keys are
derived with the run's seed, so no two sessions of a run share an SA: state a long-lived
IUT keeps under an SPI cannot leak from one session into the next, and a rerun with the
same seed builds the same SAs. The empty label is the fixed SAs of results files written
before labels existed.

Every call into the IUT goes through ``_call``, which turns what can go wrong into the
finding that names it: an exception (IUT-NO-CRASH), a hang (IUT-HANG, raised as
``IutLost`` so that Hypothesis does not retry a scenario that costs a deadline each time),
a dead process or daemon (IUT-CRASH), an answer outside the contract (IUT-CONTRACT). It
also records a one-line summary of every answer (``answers``), so two runs of the same
steps can be compared. When the session fails, the ``ConformanceFailure`` is made in one
place (``_failure``), which also asks an IUT with the optional ``evidence`` verb what it
can show of the session (the packets on the wire and their keys, for an IUT over the
network) while it is still open: the answer rides on the failure as ``evidence``. That
call can only add to the failure -- an answer outside the contract is one more
IUT-CONTRACT finding after the failure's own, an exception becomes a note in the
evidence's ``README.txt`` -- so the failure that was found is always the one reported. A
run of packets whose bytes do not depend on the IUT's answers (``deliver_run``) goes to an
isolated IUT pipelined, every answer still judged in order. It is I/O-free apart from what
the IUT itself does.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from spec_model import Mode, Profile
from spec_model.errors import DecodeError, SendRefused
from spec_model.keying import keymat_len
from spec_model.profile import SubSaLocation
from spec_model.receiver import Delivered, Dropped

from ..contract import (IutCrash, IutFactory, IutHang, IutRaised, Refused, SaConfig,
                        contract_violation)
from . import stop
from .isolation import Unsendable
from .judge import Finding, Verdict

SPI_OUT = 0x0000_1000          # the fixed SAs of unlabelled (version-1) sessions
SPI_IN = 0x0000_2000


def _derive(seed: int, label: str, what: str, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"espspec/{seed}/{label}/{what}/{len(out)}".encode()).digest()
    return out[:n]


def keymat(profile: Profile, label: str, seed: int) -> bytes:
    """The fixed key material of unlabelled sessions (``label`` is "out" or "in")."""
    n = keymat_len(profile)
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"espspec/{label}/{profile.name}/{seed}/{len(out)}".encode()).digest()
    return out[:n]


def _spi(profile: Profile, seed: int, label: str, what: str) -> int:
    """A 31-bit SPI from the label, aligned for the sub-SA ID where the SPI carries it,
    never in the reserved range (RFC 4303 §2.1)."""
    bits = profile.subsa_bits if profile.subsa is SubSaLocation.SPI else 0
    spi = int.from_bytes(_derive(seed, label, what, 4), "big") & 0x3FFF_FFFF
    spi &= ~((1 << bits) - 1)
    return spi | 0x0001_0000 if spi < 0x0001_0000 else spi


def sa_pair(profile: Profile, label: str, seed: int) -> tuple[SaConfig, SaConfig]:
    """The (outbound, inbound) SAs of the session ``label``."""
    if not label:
        return (SaConfig(profile, SPI_OUT, keymat(profile, "out", seed)),
                SaConfig(profile, SPI_IN, keymat(profile, "in", seed)))
    n = keymat_len(profile)
    out_spi = _spi(profile, seed, label, "spi-out")
    in_spi = _spi(profile, seed, label, "spi-in") | 0x4000_0000    # never out's SPI
    return (SaConfig(profile, out_spi, _derive(seed, label, "key-out", n)),
            SaConfig(profile, in_spi, _derive(seed, label, "key-in", n)))


IUT_FILL, PEER_FILL = 0xA5, 0x5A
# the inner addresses of tunnel-mode payloads (documentation ranges, RFC 5737 / RFC 3849):
# the IUT's end is .1 / ::1, the model peer's .2 / ::2, as a TUN daemon's tunnel has them
INNER_V4 = (bytes([203, 0, 113, 1]), bytes([203, 0, 113, 2]))
INNER_V6 = (bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "02"))
# the inner packet's protocol: 253, for experimentation (RFC 3692), so that the fill bytes
# are no transport header a gateway would parse and drop as malformed (strongSwan drops an
# inner "UDP packet too short"); transport-mode payloads keep next header 17
INNER_PROTOCOL = 253


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF


def make_payload(profile: Profile, size: int, fill: int = IUT_FILL, v6: bool = False,
                 from_peer: bool | None = None) -> tuple[bytes, int | None]:
    """A payload of about ``size`` bytes that suits the mode: an IP packet in tunnel mode
    (a valid header, ``INNER_V4``/``INNER_V6``: from the IUT's end to the peer's, or back
    when ``from_peer``, which defaults to ``fill == PEER_FILL``; protocol
    ``INNER_PROTOCOL``), raw transport bytes with next header UDP otherwise."""
    body = bytes((fill + i) & 0xFF for i in range(size))
    if profile.mode is not Mode.TUNNEL:
        return body, 17
    if from_peer is None:
        from_peer = fill == PEER_FILL
    if v6:
        src, dst = INNER_V6[::-1] if from_peer else INNER_V6
        return struct.pack("!IHBB16s16s", 6 << 28, len(body), INNER_PROTOCOL, 64, src,
                           dst) + body, None
    src, dst = INNER_V4[::-1] if from_peer else INNER_V4
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, INNER_PROTOCOL, 0,
                       src, dst)
    return head[:10] + struct.pack("!H", _ipv4_checksum(head)) + head[12:] + body, None


class ConformanceFailure(AssertionError):
    """Raised inside a scenario on the first finding that fails the run."""

    def __init__(self, findings: list[Finding], steps: list[tuple[str, dict]],
                 profile: Profile | None = None, session: str = "",
                 answers: list[str] | None = None,
                 evidence: dict[str, bytes] | None = None) -> None:
        super().__init__("; ".join(str(f) for f in findings))
        self.findings = findings
        self.steps = steps
        self.profile = profile      # the profile the failing session ran (may be a variant)
        self.session = session      # the label of the failing session (its SPIs and keys)
        self.answers = answers or []
        self.evidence = evidence    # the IUT's evidence of the session ({file: bytes}) or None


def _note(text: str) -> dict[str, bytes]:
    """Evidence that is only a note saying why there is no other."""
    return {"README.txt": (text + "\n").encode()}


class IutLost(BaseException):
    """The IUT stopped answering: ends the case at once. A BaseException, so that
    Hypothesis does not shrink a scenario each retry of which costs a deadline."""

    def __init__(self, failure: ConformanceFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def describe(verb: str, value) -> str:
    """One line that says what the IUT answered, without the bytes that vary by design
    (random IVs): what two runs of the same steps must agree on."""
    if isinstance(value, Refused):
        return f"{verb}: Refused({value.requirement})"
    if isinstance(value, bytes):
        return f"{verb}: {len(value)} bytes"
    if isinstance(value, Delivered):
        return (f"{verb}: Delivered(sub-SA {value.sub_sa}, SN {value.seq}, "
                f"{len(value.payload)} bytes, next header {value.next_header})")
    if isinstance(value, Dropped):
        return f"{verb}: Dropped({value.reason.value if value.reason else None})"
    if value is None or isinstance(value, (bool, int, str, list, tuple)):
        return f"{verb}: {value!r}"[:160]
    return f"{verb}: a {type(value).__name__}"


def exception_finding(verb: str, e: Exception) -> tuple[Finding, str]:
    """The finding an exception in place of an answer is, and how the transcript says it."""
    if isinstance(e, IutCrash):
        return Finding.of("IUT-CRASH", str(e)), f"crashed ({e.how})"
    if isinstance(e, Unsendable):
        return (Finding.of("IUT-CONTRACT", f"{verb} returned {e}, which is none of the "
                                           f"contract's types"), "unsendable")
    if isinstance(e, IutRaised):          # raised in the worker process
        return Finding.of("IUT-NO-CRASH", f"{verb} raised {e}"), f"raised {e.type_name}"
    return (Finding.of("IUT-NO-CRASH", f"{verb} raised {type(e).__name__}: {e}"),
            f"raised {type(e).__name__}")


@dataclass
class Session:
    factory: IutFactory
    profile: Profile
    seed: int = 0
    strict: bool = False
    label: str = ""
    sink: list[Finding] | None = None     # collects findings that do not fail the run
    steps: list[tuple[str, dict]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from .judge import Judge
        self.failure: ConformanceFailure | None = None
        self.in_flight: list[tuple[str, bytes]] = []
        self.outbound, self.inbound = sa_pair(self.profile, self.label, self.seed)
        self.iut = None
        self.iut = self._call("constructor", self.factory)
        try:
            self.caps = self._call("capabilities", self.iut.capabilities)
            self.judge = Judge(self.outbound, self.inbound, self.caps)
            installed = self._call("install", self.iut.install, self.outbound, self.inbound)
            if installed is not None and self.caps.negotiates_keys:
                self.negotiated(installed)
        except (ConformanceFailure, IutLost):
            self.close()
            raise

    def negotiated(self, sas: tuple[SaConfig, SaConfig]) -> None:
        """Judge the SAs an IUT negotiated itself (IKE) instead of the ones proposed:
        their profile must be the session's, and the judge starts on them afresh."""
        from .judge import Judge
        outbound, inbound = sas
        if outbound.profile != self.profile:
            self.judge_all([Finding.of("IUT-CONTRACT", f"install answered SAs of profile "
                                                       f"{outbound.profile.name}, not "
                                                       f"{self.profile.name}")])
        self.outbound, self.inbound = outbound, inbound
        self.judge = Judge(outbound, inbound, self.caps)

    @classmethod
    def open(cls, factory: IutFactory, profile: Profile, **kw) -> "Session":
        return cls(factory, profile, **kw)

    @classmethod
    def without_sas(cls, profile: Profile) -> "Session":
        """A session that builds nothing and installs nothing: only its guarded calls
        (``_call``) and findings, for talking to an IUT before any SA exists."""
        s = cls.__new__(cls)
        s.factory, s.profile, s.seed, s.strict, s.label, s.sink = None, profile, 0, False, "", None
        s.steps, s.findings, s.answers, s.failure, s.iut = [], [], [], None, None
        return s

    # --- bookkeeping -------------------------------------------------------------------------
    def log(self, verb: str, **kwargs) -> None:
        self.steps.append((verb, kwargs))

    def _failure(self, findings: list[Finding]) -> ConformanceFailure:
        self.failure = ConformanceFailure(findings, list(self.steps), self.profile,
                                          self.label, list(self.answers))
        self.failure.evidence = self._evidence(self.failure)
        return self.failure

    def _evidence(self, failure: ConformanceFailure) -> dict[str, bytes] | None:
        """The IUT's ``evidence`` of this session, or None when it has no such verb (or
        no IUT is open). Never raises: a bad answer adds an IUT-CONTRACT finding after
        ``failure``'s own, an exception becomes a note; either way the evidence is then
        only a README.txt saying so."""
        verb = getattr(getattr(self, "iut", None), "evidence", None)
        if not callable(verb):
            return None
        try:
            value = verb()
        except Exception as e:  # noqa: BLE001 -- must not hide the failure being reported
            what = e.how if isinstance(e, IutCrash) else f"{type(e).__name__}: {e}"
            return _note(f"no evidence: the IUT's evidence verb raised {what}")
        problem = contract_violation("evidence", value)
        if problem:
            finding = Finding.of("IUT-CONTRACT", f"evidence {problem}")
            self.findings.append(finding)
            failure.findings.append(finding)
            return _note(f"no evidence: the IUT's evidence verb {problem}")
        return value

    def judge_all(self, findings: list[Finding]) -> None:
        self.findings.extend(findings)
        failing = [f for f in findings if f.verdict is Verdict.FAIL
                   or (self.strict and f.verdict is Verdict.NON_STRICT)]
        if failing:
            raise self._failure(failing)
        if self.sink is not None:
            self.sink.extend(findings)

    def _call(self, verb: str, fn, *args):
        """Call one IUT verb; whatever goes wrong becomes the finding that names it."""
        stop.check()
        try:
            outcome = fn(*args)
        except (ConformanceFailure, IutLost):
            raise
        except Exception as e:  # judged below: an exception is an answer too
            outcome = e
        return self._answer(verb, outcome)

    def _answer(self, verb: str, outcome):
        """One IUT answer (or the exception instead of it), judged against the contract."""
        if isinstance(outcome, IutHang):
            self.findings.append(Finding.of("IUT-HANG", str(outcome)))
            raise IutLost(self._failure([self.findings[-1]])) from None
        if isinstance(outcome, Exception):
            finding, answer = exception_finding(verb, outcome)
            self.answers.append(f"{verb}: {answer}")
            self.judge_all([finding])                # a MUST: this raises
        problem = contract_violation(verb, outcome)
        if problem:
            self.answers.append(f"{verb}: outside the contract ({type(outcome).__name__})")
            self.judge_all([Finding.of("IUT-CONTRACT", f"{verb} {problem}")])
        self.answers.append(describe(verb, outcome))
        return outcome

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
        payload, nh = make_payload(self.profile, size, fill=PEER_FILL, v6=v6)
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
        fillers = []
        for _ in range(max(0, self.profile.window + extra)):
            filler = self._peer_seal(sub_sa, 0)
            if filler is None:
                break
            fillers.append((filler.wire, f"filler on sub-SA {sub_sa} SN {filler.seq}"))
        self.deliver_run(fillers)
        self.deliver_wire(held.wire, f"packet SN {held.seq} held back {self.profile.window + extra} packets "
                                f"on sub-SA {sub_sa}")

    def deliver_run(self, packets: list[tuple[bytes, str]]) -> None:
        """Deliver packets in a row, judging each answer in order; an IUT in a worker
        process gets them pipelined (their bytes do not depend on its answers)."""
        many = getattr(self.iut, "call_many", None)
        if many is None or len(packets) < 2:
            for wire, label in packets:
                self.deliver_wire(wire, label)
            return
        stop.check()
        for (wire, label), outcome in zip(packets, many("unprotect", [(w,) for w, _ in packets])):
            result = self._answer("unprotect", outcome)
            self.judge_all(self.judge.on_unprotect(wire, result, label))

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

    def rekey(self) -> bool:
        """Replace both SAs by new ones (the IUT's optional ``rekey`` verb, when its
        capabilities declare it) and the judge by one on the new SAs that knows the old
        ones (``harness.engine.rekey``). Packets in flight stay in flight."""
        if not self.caps.rekey:
            return False
        from .rekey import rekey
        self.log("rekey")
        rekey(self, sa_pair)
        return True

    def close(self) -> None:
        """Close the IUT; a failure to close is a finding only while nothing else failed
        (closing a crashed IUT must not hide the finding that ended the session). While
        ``close`` is judged the IUT is still the session's, so that a failure to close
        gets the IUT's evidence too."""
        iut = self.iut
        if iut is None:
            return
        if self.failure is not None:
            self.iut = None
            try:
                iut.close()
            except Exception:  # noqa: BLE001
                pass
            return
        try:
            self._call("close", iut.close)
        finally:
            self.iut = None


VERBS = {"iut_send", "peer_send", "deliver", "deliver_bytes", "duplicate", "drop",
         "deliver_changed", "hold_past_window", "jump_iut", "jump_peer", "rekey"}


def rerun(factory: IutFactory, profile: Profile, steps: list[tuple[str, dict]],
          seed: int = 0, strict: bool = False, session: str = "") -> Session | ConformanceFailure:
    """Run a logged step list again on a fresh session with the same label: the session
    after the last step, or the failure that ended it (an IUT hang included)."""
    try:
        s = Session.open(factory, profile, seed=seed, strict=strict, label=session)
    except ConformanceFailure as failure:
        return failure
    except IutLost as lost:
        return lost.failure
    outcome: Session | ConformanceFailure = s
    try:
        for verb, kwargs in steps:
            if verb not in VERBS:
                raise ValueError(f"unknown step {verb!r}")
            getattr(s, verb)(**kwargs)
    except ConformanceFailure as failure:
        outcome = failure
    except IutLost as lost:
        outcome = lost.failure
    try:
        s.close()
    except ConformanceFailure as failure:       # the close itself failed
        outcome = failure
    except IutLost as lost:
        outcome = lost.failure
    return outcome


def replay(factory: IutFactory, profile: Profile, steps: list[tuple[str, dict]],
           seed: int = 0, strict: bool = False, session: str = "") -> list[Finding]:
    """Run a logged step list again; returns the findings (raises nothing)."""
    return rerun(factory, profile, steps, seed, strict, session).findings
