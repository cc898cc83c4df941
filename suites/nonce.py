"""Directed nonce cases: a black-box keystream-reuse detector, sub-SA separation, and
counters at the top of the IV space, with a GCM forgery to show what reuse costs.

Theory of operation: the IUT is made to protect the same known payload on every sub-SA,
round after round (a byte longer each round, so that colliding packets differ in more
than their sequence numbers and the forgery below finds one key). Whatever its nonce
construction, a stream-based AEAD (AES-GCM's CTR,
ChaCha20) turns a repeated (key, nonce) into a repeated keystream, and the keystream of a
packet is its ciphertext XOR the plaintext it must carry (here the payload, behind the
Payload Info Header for EESP with it); the detector compares these and needs no key at
all, so it also sees reuse that the judge's nonce ledger cannot (the ledger rebuilds
nonces from the model's keys and the wire IV, and an IUT with a wrong salt or key
derivation only shows up there as an ICV failure). Packets are sent through the IUT
directly and judged afterwards, so a reuse is reported (first) even when the same
packets also break other rules. Where reuse is found under AES-GCM with 16-byte ICVs the
finding shows its impact: ``suites.gcm_forgery`` recovers the GHASH key from the
colliding packets, forges the tag of a packet with a payload byte flipped, and a model
receiver of the IUT's outbound SA (the model's keys) is asked to accept it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.engine.judge import Finding
from harness.engine.session import Session, make_payload
from spec_model import Delivered, Framing, Profile, Receiver, SeqWire
from spec_model.errors import DecodeError
from spec_model.limits import LimitPolicy
from spec_model.subsa import seq_for

from . import CaseContext, case
from .gcm_forgery import (GcmForgeryError, forge_from_collision, keystream, recover_h,
                          same_keystream)
from .wire import ends, needs, opened, set_counters, sub_sas

SIZE = 48              # payload bytes (tunnels: plus a 20-byte IPv4 header)
MIN_OVERLAP = 16       # keystream bytes two packets must share to count as reuse
MAX_SUB_SAS = 16       # sub-SAs a case drives at most


@dataclass
class Sent:
    n: int               # the judge's packet number
    sub: int
    payload: bytes
    wire: bytes
    counter: int         # the counter the model expects this packet to use
    seq: int | None      # the full sequence number the model expects


class Watcher:
    """Sends through the IUT, holds the judge's findings back, and looks for keystream
    reuse across everything sent before handing all findings to the session."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.sent: list[Sent] = []
        self.judged: list[Finding] = []

    def send(self, sub: int, size: int = SIZE) -> None:
        s, p = self.s, self.s.profile
        s.log("iut_send", sub_sa=sub, size=size, v6=False)
        payload, nh = make_payload(p, size)
        result = s._call("protect", s.iut.protect, sub, payload, nh)
        self.judged += s.judge.on_protect(sub, payload, nh, result)
        if isinstance(result, (bytes, bytearray)):
            counter = s.judge.expected.counters[sub]
            seq = seq_for(p, sub, counter) if p.replay_protected else None
            self.sent.append(Sent(s.judge.sent, sub, payload, bytes(result), counter, seq))

    def finish(self) -> None:
        self.s.judge_all(reuse_findings(self.s, self.sent) + self.judged)


def _keystreams(s: Session, sent: list[Sent]) -> list[tuple[Sent, bytes]]:
    """Per packet, the keystream that encrypted its payload, from the first ciphertext
    byte on; the bytes over EESP's Payload Info Header (the IUT's choices) read as 0."""
    p, codec = s.profile, s.judge.opener.codec
    out = []
    for x in sent:
        try:
            pkt = codec.decode(x.wire)
        except DecodeError:
            continue                       # the judge reports malformed packets
        e = len(pkt.exposed)
        start = max(0, 4 - e) if p.framing is Framing.EESP_FULL else 0
        skip = max(0, e - 4) if p.framing is Framing.EESP_FULL else e
        ks = bytes(start) + keystream(pkt.ciphertext[start:], x.payload[skip:])
        if len(ks) - start >= MIN_OVERLAP:
            out.append((x, ks))
    return out


def reuse_findings(s: Session, sent: list[Sent]) -> list[Finding]:
    """NONCE-UNIQUE-PER-KEY (and NONCE-SUBSA-SEPARATION across sub-SAs) for every group of
    packets with the same keystream; the first group is used for a forgery under GCM."""
    streams = _keystreams(s, sent)
    by_prefix: dict[bytes, list[tuple[Sent, bytes]]] = {}
    for x, ks in streams:
        by_prefix.setdefault(ks[:MIN_OVERLAP + 4], []).append((x, ks))
    groups = []
    for members in by_prefix.values():
        first = members[0][1]
        group = [x for x, ks in members if same_keystream(first, ks, MIN_OVERLAP + 4)]
        if len(group) > 1:
            groups.append(group)
    findings: list[Finding] = []
    for i, group in enumerate(groups):
        where = ", ".join(f"packet {x.n} (sub-SA {x.sub})" for x in group[:6])
        more = f" and {len(group) - 6} more" if len(group) > 6 else ""
        msg = (f"{len(group)} packets were encrypted with the same keystream (ciphertext "
               f"XOR known payload): one key and nonce for {where}{more}")
        if i == 0:
            msg += "; " + impact(s, group)
        findings.append(Finding.of("NONCE-UNIQUE-PER-KEY", msg))
        subs = sorted({x.sub for x in group})
        if len(subs) > 1:
            findings.append(Finding.of("NONCE-SUBSA-SEPARATION",
                                       f"sub-SAs {subs} encrypt with the same keystream: "
                                       f"{where}{more}"))
    if len(groups) > 1:
        findings.append(Finding.of("NONCE-UNIQUE-PER-KEY", f"{len(groups)} groups of "
                                                          f"packets share a keystream"))
    return findings


def _samples(s: Session, group: list[Sent]):
    p, codec = s.profile, s.judge.opener.codec
    out = []
    for x in group:
        pkt = codec.decode(x.wire)
        header = x.wire[:codec.header_len_of(x.wire)]
        seq = x.seq
        if p.seq is SeqWire.ESN and seq is not None:
            seq = (seq >> 32 << 32) | pkt.seq          # the wire's low word, model's high
        elif seq is None:
            seq = pkt.seq
        out.append((x, pkt, (codec.aad(header, seq) + pkt.exposed, pkt.ciphertext, pkt.icv)))
    return out


def impact(s: Session, group: list[Sent]) -> str:
    """Recover H from the colliding packets, forge a packet with a payload byte flipped
    and ask a model receiver of the IUT's outbound SA to accept it (AES-GCM-16 only)."""
    p = s.profile
    aead = p.aead_spec
    if aead.family != "aes-gcm" or aead.icv_len != 16:
        return f"no forgery attempted for {aead.name} (needs AES-GCM with 16-byte ICVs)"
    try:
        samples = _samples(s, group)
        candidates = recover_h([smp for _, _, smp in samples])
    except (GcmForgeryError, DecodeError) as e:
        return f"GHASH key not recovered: {e}"
    off = 4 if p.framing is Framing.EESP_FULL else 0
    tried = 0
    for k, (x, pkt, known) in enumerate(samples[:2]):
        ordered = [known] + [smp for j, (_, _, smp) in enumerate(samples) if j != k]
        j = max(0, off + len(x.payload) - 1 - len(pkt.exposed))   # the last payload byte
        ct = bytearray(pkt.ciphertext)
        ct[j] ^= 0x01
        changed = bytearray(x.payload)
        body_index = j + len(pkt.exposed) - off
        if 0 <= body_index < len(changed):
            changed[body_index] ^= 0x01
        prefix = x.wire[:len(x.wire) - len(pkt.ciphertext) - len(pkt.icv)]
        try:
            tags = forge_from_collision(ordered, known[0], bytes(ct))
        except GcmForgeryError as e:
            return f"GHASH key not recovered: {e}"
        for tag in tags:
            tried += 1
            forged = prefix + bytes(ct) + tag
            o = s.outbound
            rx = Receiver(o.profile, o.keymat, o.spi)
            if x.seq is not None:
                rx.jump(x.sub, x.counter - 1)
            out = rx.open(forged)
            if isinstance(out, Delivered) and out.payload == bytes(changed):
                return (f"forged packet accepted by a receiver of this SA: packet {x.n} "
                        f"with payload byte {body_index} flipped and its tag forged from "
                        f"the GHASH key recovered out of {len(samples)} packets "
                        f"({len(candidates)} candidate key(s))")
    return (f"GHASH key candidates recovered ({len(candidates)}) but none of {tried} forged "
            f"packets opens under the model's keys (the IUT's key or nonce differs from "
            f"the model's)")


def _subsa_list(p: Profile) -> list[int]:
    n = p.n_sub_sas
    return list(range(n)) if n <= MAX_SUB_SAS else list(range(MAX_SUB_SAS - 1)) + [n - 1]


@case("nonce", "keystream-reuse", requirements=("NONCE-UNIQUE-PER-KEY",
                                                 "NONCE-SUBSA-SEPARATION"))
def keystream_reuse(ctx: CaseContext) -> None:
    """Black box: the same payload on every sub-SA, 4 rounds (a byte longer each), never shows one keystream twice; on reuse, the impact demonstration forges a GCM packet the SA accepts."""
    with opened(ctx) as s:
        w = Watcher(s)
        for r in range(4):
            for sub in _subsa_list(s.profile):
                w.send(sub, SIZE + r)
        w.finish()


@case("nonce", "subsa-separation", requirements=(
    "NONCE-SUBSA-SEPARATION", "NONCE-UNIQUE-PER-KEY", "KDF-SUBSA-KEY", "SUBSA-ID-LOCATION"),
    applies=sub_sas)
def subsa_separation(ctx: CaseContext) -> None:
    """Every sub-SA sends with equal counters (from 1, and after a jump to 2^20 where the IUT can set counters): the nonces (ledger) and keystreams (detector) all differ."""
    with opened(ctx) as s:
        w = Watcher(s)
        subs = _subsa_list(s.profile)
        for r in range(3):
            for sub in subs:
                w.send(sub, SIZE + r)
        if s.caps.can_set_counters:
            jumped = [sub for sub in subs if s.jump_iut(sub, 1 << 20)]
            for r in range(2):
                for sub in jumped:
                    w.send(sub, SIZE + r)
        w.finish()


def _top(p: Profile, users: int) -> int:
    """The last counter value each of ``users`` sub-SAs may reach: the counter space, the
    2^64 / N share of a shared key, or (sums kept) an equal part of the total."""
    pol = LimitPolicy.of(p)
    top = min(pol.counter_max, pol.packets_per_subsa or pol.counter_max)
    return min(top, pol.packets_total // users) if pol.packets_total else top


@case("nonce", "counter-top", requirements=("NONCE-UNIQUE-PER-KEY", "NONCE-SUBSA-SEPARATION",
                                             "NONCE-IIV-LAYOUT", "SEND-WITHIN-LIMITS"),
      applies=needs(set_counters))
def counter_top(ctx: CaseContext) -> None:
    """Two sub-SAs send at counter 1, 2^32 + 1 (same low word) and the top two values of their counter (IV) space: all go out, with distinct nonces and keystreams."""
    with opened(ctx) as s:
        p = s.profile
        w = Watcher(s)
        subs = ends(p)
        for sub in subs:
            w.send(sub)                    # the bottom of the space: counter 1
        top = _top(p, len(subs))
        if top > 1 << 33:                  # counter 2^32 + 1: equal to 1 in its low 32 bits
            for sub in subs:
                s.jump_iut(sub, 1 << 32)
            for sub in subs:
                w.send(sub)
        for sub in subs:
            s.jump_iut(sub, top - 2)
        for r in range(1, 3):
            for sub in subs:
                w.send(sub, SIZE + r)
        w.finish()
