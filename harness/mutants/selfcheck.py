"""Self-check: one hand-written scenario per mutant that shows it differ from the reference.

Theory of operation: ``demonstrate(name)`` installs the mutant and a ``ReferenceIut`` on
the same two SAs (a ``Lab``) and plays one short scenario on both, with nothing but
spec_model beside them: the model's ``Sender`` is the peer whose packets go to both IUTs'
``unprotect``, a fresh model ``Receiver`` opens what each IUT's ``protect`` returned, and
the model's keying recomputes the nonce of a packet from its wire IV. The scenario returns
one line saying what differs; ``demonstrate`` raises AssertionError when the mutant
answered exactly like the reference, i.e. when the bug would be invisible. This is not
the kill test (the suites run against the mutants elsewhere); it proves each seeded bug is
observable at all. Each scenario has a default profile and takes any other
(``demonstrate(name, profile)``); ``check_claims`` runs it on every profile the mutant's
``MutantInfo`` names. ``python -m harness.mutants.selfcheck [--claims]`` runs them all.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from dataclasses import replace
from typing import Callable

from spec_model import (Delivered, Dropped, Framing, Mode, Profile, Receiver, Sender,
                        named)
from spec_model.keying import keymat_len
from spec_model.keying import Keying
from spec_model.nonce import nonce_builder
from spec_model.subsa import locate
from spec_model.wire import codec_for
from spec_model.wire.payload import EspTrailer, Optimized, PayloadInfoHeader

from ..adapters.reference import ReferenceIut
from ..contract import Refused, SaConfig
from . import MUTANT_INFO, MUTANTS
from .base import Pieces

SPI_OUT, SPI_IN = 0x1000, 0x2000


def _keymat(profile: Profile, label: str) -> bytes:
    n = keymat_len(profile)
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"selfcheck/{label}/{len(out)}".encode()).digest()
    return out[:n]


def _payload(profile: Profile, size: int = 8) -> tuple[bytes, int | None]:
    body = bytes(range(size))
    if profile.mode is Mode.TUNNEL:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + size, 0, 0, 64, 17, 0,
                           bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + body, None
    return body, 17


def show(outcome) -> str:
    """A verdict in a few words: delivered/dropped/refused/sent."""
    if isinstance(outcome, Delivered):
        return f"delivered (sub-SA {outcome.sub_sa}, SN {outcome.seq})"
    if isinstance(outcome, Dropped):
        return f"dropped {outcome.reason.value} [{outcome.requirement}]"
    if isinstance(outcome, Refused):
        return f"refused [{outcome.requirement}]"
    return "sent"


def differ(what: str, mutant, reference) -> str:
    """One line on what differs; AssertionError when the two answers read the same."""
    m, r = (x if isinstance(x, str) else show(x) for x in (mutant, reference))
    assert m != r, f"{what}: mutant and reference both {m}"
    return f"{what}: mutant {m}, reference {r}"


class Lab:
    """A mutant and a reference IUT installed on the same outbound and inbound SAs."""

    def __init__(self, mutant_class: type, profile: Profile | str) -> None:
        p = named(profile) if isinstance(profile, str) else profile
        self.profile = p
        self.outbound = SaConfig(p, SPI_OUT, _keymat(p, "out"))
        self.inbound = SaConfig(p, SPI_IN, _keymat(p, "in"))
        self.mutant, self.reference = mutant_class(), ReferenceIut()
        for iut in (self.mutant, self.reference):
            iut.install(self.outbound, self.inbound)
        self.peer = Sender(p, self.inbound.keymat, SPI_IN)
        self.keying = Keying(p, self.outbound.keymat, SPI_OUT)
        self.codec = codec_for(p)

    @property
    def both(self):
        return self.mutant, self.reference

    # --- the IUTs as receivers -----------------------------------------------------------
    def peer_packet(self, sub_sa: int = 0, counter: int | None = None, size: int = 8,
                    sender: Sender | None = None, **options) -> bytes:
        """The model peer's next packet on sub_sa, or the one with the given counter."""
        sender = sender or self.peer
        if counter is not None:
            # direct, not set_counter: that refuses -1, and counter 0 needs it
            sender.counters[sub_sa] = counter - 1
        return sender.seal(sub_sa, *_payload(self.profile, size), **options).wire

    def deliver(self, wire: bytes) -> tuple:
        return tuple(iut.unprotect(wire) for iut in self.both)

    # --- the IUTs as senders -------------------------------------------------------------
    def protect(self, sub_sa: int = 0, size: int = 8) -> tuple:
        payload, nh = _payload(self.profile, size)
        return tuple(iut.protect(sub_sa, payload, nh) for iut in self.both)

    def set_counter(self, sub_sa: int, value: int) -> None:
        for iut in self.both:
            iut.set_counter(sub_sa, value)

    def open(self, wire, counter: int | None = None):
        """A fresh model receiver on the outbound SA opens an IUT's packet (positioned
        just before ``counter`` when given). A refusal passes through."""
        if not isinstance(wire, bytes):
            return wire
        opener = Receiver(self.profile, self.outbound.keymat, SPI_OUT)
        if counter:
            opener.jump(0, counter - 1)
        return opener.open(wire)

    def nonce(self, wire: bytes) -> tuple[str, bytes]:
        """(key label, nonce) of an IUT packet, from its wire IV and the model's keys."""
        p = self.profile
        pkt = self.codec.decode(wire)
        sub = locate(p, SPI_OUT, pkt.spi, pkt.session_id, pkt.seq)[0]
        _, salt, key_id = self.keying.get(sub)
        return key_id, nonce_builder(p)(salt, pkt.spi, int.from_bytes(pkt.iv, "big"))


class _WrongPadding:
    """Layout mixin for the peer: padding bytes of 0xFF (right for no framing)."""

    @classmethod
    def pack(cls, payload: bytes, next_header: int, pad_len: int) -> bytes:
        body = super().pack(payload, next_header, pad_len)
        end = len(body) - cls.trailer
        return body[:end - pad_len] + b"\xff" * pad_len + body[end:]


class _WrongEspPad(_WrongPadding, EspTrailer):
    trailer = 2


class _WrongPihPad(_WrongPadding, PayloadInfoHeader):
    trailer = 0


class _WrongOptimizedPad(_WrongPadding, Optimized):
    trailer = 0


class WrongPaddingSender(Pieces, Sender):
    layouts = {Framing.ESP: _WrongEspPad, Framing.EESP_FULL: _WrongPihPad,
               Framing.EESP_OPTIMIZED: _WrongOptimizedPad}


Scenario = Callable[[Lab], str]
SCENARIOS: dict[str, tuple[str | Profile, Scenario]] = {}


def scenario(name: str, profile: str | Profile):
    """File the scenario of a mutant with the profile it runs on by default."""
    def file(fn: Scenario) -> Scenario:
        SCENARIOS[name] = (profile, fn)
        return fn
    return file


def _nonces(lab: Lab, wires: list) -> str:
    if not all(isinstance(w, bytes) for w in wires):
        return ", ".join(show(w) for w in wires)
    nonces = [lab.nonce(w) for w in wires]
    return (f"nonce {nonces[0][1].hex()} twice under one key"
            if len(set(nonces)) < len(nonces) else "distinct nonces")


def _sent(lab: Lab, result) -> str:
    """Whether an IUT sent (and how the model reads the packet) or refused."""
    return f"sent, model: {show(lab.open(result))}" if isinstance(result, bytes) else "refused"


def _share(lab: Lab) -> int:
    """The packets sub-SA 0 may send under the model's hard limit (its share, or all)."""
    pol = lab.reference.sender.policy
    share = pol.packets_per_subsa if pol.packets_per_subsa is not None else pol.packets_total
    assert share is not None, f"{lab.profile.name} has no packet hard limit"
    return share


# --- nonce -------------------------------------------------------------------------------

@scenario("counter-iv-shared-key", "esp-subsa-spi")
def _(lab):
    m0, r0 = lab.protect(0)
    m1, r1 = lab.protect(1)
    return differ(f"{lab.profile.name}, first packets on sub-SA 0 and 1 (nonces; the model "
                  f"opens sub-SA 1's)",
                  f"{_nonces(lab, [m0, m1])}, {show(lab.open(m1))}",
                  f"{_nonces(lab, [r0, r1])}, {show(lab.open(r1))}")


@scenario("kdf-ignores-session-id", "eesp-v0")
def _(lab):
    m, r = lab.protect(1)
    return differ(f"{lab.profile.name}, IUT packet on sub-SA 1 opened by the model",
                  lab.open(m), lab.open(r))


@scenario("iv-stuck", "esp")
def _(lab):
    sent = [lab.protect(0) for _ in range(2)]
    return differ(f"{lab.profile.name}, two IUT packets on sub-SA 0",
                  _nonces(lab, [m for m, _ in sent]), _nonces(lab, [r for _, r in sent]))


@scenario("iiv-low32", "esp-iiv")
def _(lab):
    lab.set_counter(0, (1 << 32) - 1)
    m, r = lab.protect(0)
    return differ(f"{lab.profile.name}, IUT packet with SN 2^32 opened by the model",
                  lab.open(m, 1 << 32), lab.open(r, 1 << 32))


# --- replay ------------------------------------------------------------------------------

@scenario("window-before-icv", "esp")
def _(lab):
    genuine = lab.peer_packet(counter=1)
    forged = bytearray(lab.peer_packet(counter=lab.profile.window + 10))
    forged[-1] ^= 1
    assert all(isinstance(x, Dropped) for x in lab.deliver(bytes(forged)))
    return differ(f"{lab.profile.name}, SN W+10 with a bad ICV (dropped by both), then SN 1",
                  *lab.deliver(genuine))


@scenario("window-too-wide", "esp")
def _(lab):
    w = lab.profile.window
    lab.deliver(lab.peer_packet(counter=w + 1))
    return differ(f"{lab.profile.name} (W={w}), SN {w + 1} then SN 1",
                  *lab.deliver(lab.peer_packet(counter=1)))


@scenario("window-too-narrow", "esp")
def _(lab):
    w = lab.profile.window
    lab.deliver(lab.peer_packet(counter=w))
    return differ(f"{lab.profile.name} (W={w}), SN {w} then SN 1",
                  *lab.deliver(lab.peer_packet(counter=1)))


@scenario("shared-window", "esp-subsa-spi")
def _(lab):
    lab.deliver(lab.peer_packet(0, counter=1))
    return differ(f"{lab.profile.name}, SN 1 on sub-SA 0 then SN 1 on sub-SA 1",
                  *lab.deliver(lab.peer_packet(1, counter=1)))


@scenario("esn-case-b-wrong", "esp-esn")
def _(lab):
    for iut in lab.both:
        iut.receiver.jump(0, (1 << 32) + 3)
    return differ(f"{lab.profile.name}, T = 2^32+3 (case B), SN 2^32-10 (Seql >= Bl: "
                  f"Seqh = Th-1)", *lab.deliver(lab.peer_packet(counter=(1 << 32) - 10)))


@scenario("seq-zero-accepted", "esp")
def _(lab):
    return differ(f"{lab.profile.name}, an authentic packet with SN 0",
                  *lab.deliver(lab.peer_packet(counter=0)))


@scenario("subsa-id-unchecked", "eesp-v0")
def _(lab):
    n = lab.profile.n_sub_sas
    wide = Sender(lab.profile.replace(n_sub_sas=2 * n), lab.inbound.keymat, SPI_IN)
    return differ(f"{lab.profile.name} (N={n}), an authentic packet on sub-SA {n}",
                  *lab.deliver(lab.peer_packet(n, sender=wide)))


@scenario("duplicate-top-accepted", "esp")
def _(lab):
    wire = lab.peer_packet(counter=1)
    lab.deliver(wire)
    return differ(f"{lab.profile.name}, SN 1 delivered twice", *lab.deliver(wire))


# --- limits ------------------------------------------------------------------------------

@scenario("hard-limit-not-divided", "esp-subsa-salt")
def _(lab):
    share = _share(lab)
    lab.set_counter(0, share)
    return differ(f"{lab.profile.name}, sub-SA 0 after its share of {share} packets",
                  *lab.protect(0))


@scenario("rekey-one-subsa", named("esp-subsa-spi").replace(soft_packets=8, hard_packets=64))
def _(lab):
    for _ in range(2):
        lab.protect(0)
    return differ(f"{lab.profile.name} (soft limit {lab.profile.soft_packets}, N="
                  f"{lab.profile.n_sub_sas}), 2 packets on sub-SA 0, rekey due",
                  str(lab.mutant.rekey_due()), str(lab.reference.sender.rekey_due()))


@scenario("counter-wraps", "esp")
def _(lab):
    top = lab.reference.sender.policy.counter_max
    lab.set_counter(0, top)
    return differ(f"{lab.profile.name}, counter at its maximum {top:#x}",
                  *(_sent(lab, x) for x in lab.protect(0)))


@scenario("hard-limit-off-by-one", "esp-subsa-salt")
def _(lab):
    share = _share(lab)
    lab.set_counter(0, share)
    return differ(f"{lab.profile.name}, sub-SA 0 at its share of {share} packets",
                  *lab.protect(0))


@scenario("counter-space-unpartitioned", "esp-subsa-seq")
def _(lab):
    top = lab.reference.sender.policy.counter_max
    lab.set_counter(0, top)
    return differ(f"{lab.profile.name}, sub-SA 0 at the model's counter maximum {top:#x}",
                  *(_sent(lab, x) for x in lab.protect(0)))


# --- wire --------------------------------------------------------------------------------

@scenario("padding-unchecked", "esp")
def _(lab):
    wrong = WrongPaddingSender(lab.profile, lab.inbound.keymat, SPI_IN)
    return differ(f"{lab.profile.name}, an authentic packet with padding of 0xff bytes",
                  *lab.deliver(lab.peer_packet(sender=wrong, extra_pad=lab.profile.alignment)))


@scenario("cryptoff-not-in-aad", "eesp-v0-transport")
def _(lab):
    m, r = lab.protect(0, size=32)
    return differ(f"{lab.profile.name} (crypt offset {lab.profile.crypt_offset}), IUT packet "
                  f"opened by the model", lab.open(m), lab.open(r))


@scenario("short-icv-accepted", "esp")
def _(lab):
    forged = bytearray(lab.peer_packet())
    forged[-1] ^= 0x80
    return differ(f"{lab.profile.name}, the last byte of the ICV flipped",
                  *lab.deliver(bytes(forged)))


@scenario("aad-seq-low32", "eesp-v0")
def _(lab):
    m, r = lab.protect(0)
    line = differ(f"{lab.profile.name}, IUT packet opened by the model", lab.open(m), lab.open(r))
    # the mutant's own construction on the inbound SA, SN high half rewritten in flight
    own = type(lab.mutant).sender_class(lab.profile, lab.inbound.keymat, SPI_IN)
    pkt = own.codec.decode(lab.peer_packet(sender=own))
    forged = own.codec.encode(replace(pkt, seq=pkt.seq + (1 << 32)))
    mutant = lab.mutant.unprotect(forged)
    assert isinstance(mutant, Delivered), show(mutant)
    return f"{line}; SN 1 rewritten to 2^32+1 in flight: mutant {show(mutant)}"


@scenario("esn-high-not-in-aad", "esp-esn")
def _(lab):
    m, r = lab.protect(0)
    return differ(f"{lab.profile.name}, IUT packet opened by the model", lab.open(m), lab.open(r))


@scenario("esp-zero-padding", "esp")
def _(lab):
    m, r = lab.protect(0, size=1)    # ESP headers are 8, 16 or 20 bytes: 1 byte of padding
    return differ(f"{lab.profile.name}, IUT packet with 1 padding byte opened by the model",
                  lab.open(m), lab.open(r))


@scenario("subsa-id-wrong-place", "esp-subsa-spi")
def _(lab):
    m, r = lab.protect(1)
    head = [lab.codec.decode(w) for w in (m, r)]
    return differ(f"{lab.profile.name}, IUT packet on sub-SA 1 opened by the model",
                  *(f"SPI {h.spi:#010x} Session ID {h.session_id:#06x} {show(lab.open(w))}"
                    for h, w in zip(head, (m, r))))


# --- rekey -------------------------------------------------------------------------------

def _rekeyed(lab: Lab) -> tuple[SaConfig, SaConfig]:
    """Rekey both IUTs onto one new SA pair (new SPIs and keys); returns it."""
    p = lab.profile
    out = SaConfig(p, SPI_OUT + 0x10000, _keymat(p, "rekeyed-out"))
    inb = SaConfig(p, SPI_IN + 0x10000, _keymat(p, "rekeyed-in"))
    for iut in lab.both:
        iut.rekey(out, inb)
    return out, inb


def _seq(lab: Lab, wire) -> str:
    return f"SN {lab.codec.decode(wire).seq}" if isinstance(wire, bytes) else show(wire)


@scenario("rekey-keeps-counter", "esp")
def _(lab):
    lab.set_counter(0, 1000)
    lab.protect(0)
    _rekeyed(lab)
    m, r = lab.protect(0)
    return differ(f"{lab.profile.name}, first packet of the new SA after the old sent 1001",
                  _seq(lab, m), _seq(lab, r))


@scenario("rekey-keeps-limits", named("esp").replace(hard_packets=4))
def _(lab):
    for _ in range(4):
        lab.protect(0)
    _rekeyed(lab)
    m, r = lab.protect(0)
    return differ(f"{lab.profile.name} with L = 4, first packet of the new SA after the old "
                  f"sent 4", show(m), show(r))


@scenario("rekey-keeps-window", "esp")
def _(lab):
    lab.deliver(lab.peer_packet(0, counter=1000))
    _, inb = _rekeyed(lab)
    fresh = Sender(lab.profile, inb.keymat, inb.spi)
    return differ(f"{lab.profile.name}, new SA's SN 1 after the old SA accepted SN 1000",
                  *lab.deliver(lab.peer_packet(0, sender=fresh)))


@scenario("rekey-keeps-old-sa", "esp")
def _(lab):
    old = lab.peer_packet(0)
    _rekeyed(lab)
    return differ(f"{lab.profile.name}, a packet of the old inbound SA after the rekey",
                  *lab.deliver(old))


def demonstrate(name: str, profile: str | Profile | None = None) -> str:
    """Run the scenario of one mutant (on its default profile, or on ``profile``) and
    return the observable difference in one line. Raises AssertionError if the mutant
    behaves like the reference there, KeyError for an unknown mutant."""
    if name not in SCENARIOS:
        raise KeyError(f"no scenario for mutant {name!r}")
    default, run = SCENARIOS[name]
    return f"{name}: {run(Lab(MUTANTS[name], profile or default))}"


def check_claims() -> list[str]:
    """Run every mutant's scenario on every profile its MutantInfo names; one line per
    (mutant, profile) that the scenario could not show a difference on."""
    misses = []
    for name, info in MUTANT_INFO.items():
        for profile in info.profiles:
            try:
                demonstrate(name, profile)
            except AssertionError as e:
                misses.append(f"{name} on {profile}: {e}")
    return misses


def main(argv: list[str] | None = None) -> int:
    """Print every mutant's difference; with --claims, also try every claimed profile."""
    argv = sys.argv[1:] if argv is None else argv
    failed = 0
    for name in MUTANTS:
        try:
            print(demonstrate(name))
        except (AssertionError, KeyError) as e:
            failed += 1
            print(f"{name}: NOT OBSERVED: {e}")
    if "--claims" in argv:
        misses = check_claims()
        print("\n".join(misses) or "every claimed profile shows its mutant's difference")
        failed += len(misses)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
