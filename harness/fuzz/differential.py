"""The model against scapy: the same bytes to both, every disagreement classified.

Theory of operation: ``esp_target`` gives a packet to a fresh model receiver and to
scapy's ``SecurityAssociation.decrypt`` (``scapy.layers.ipsec``, classic ESP profiles
scapy has: AES-GCM-128 with 32-bit and extended sequence numbers); ``psp_target`` to the
model's PSP receiver and to ``PSP.decrypt`` (``scapy.contrib.psp``) with the key the
model derives for the packet's SPI. Each side's answer becomes a ``Verdict``: accepted
with payload and next header, rejected (the model's requirement, or scapy's documented
integrity error), or an exception scapy does not document (a finding in scapy whatever
the model says). Where both accept, payload and next header must agree. A disagreement is
classified by ``(library, what happened, the model's requirement or the exception)``;
``KNOWN`` holds the classes reviewed and written up in ``reports/fuzz-scapy/`` -- those
are counted, not raised, so that fuzzing goes on to find the next one (unless
``ESPSPEC_FUZZ_RAISE_KNOWN`` names them, for minimizing) -- and any other class raises ``ThirdPartyFinding`` (or ``Disagreement``) with one line. Both targets
take ``reseal.mutate`` as their mutator, so authentic packets with one field changed
reach scapy's trailer and header handling, not only its ICV check.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from spec_model import NAMED, Delivered, Framing, Receiver, SeqWire

from .oracle import Disagreement, Finding
from .sas import SPI, keymat, profiles_of, split

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

SCAPY_ESP_PROFILES = tuple(n for n in profiles_of(Framing.ESP)
                           if NAMED[n].aead == "aes128gcm16" and NAMED[n].subsa.value == "none"
                           and NAMED[n].seq in (SeqWire.SEQ32, SeqWire.ESN)
                           and NAMED[n].nonce.value == "explicit-counter")
SCAPY_PSP_PROFILES = profiles_of(Framing.PSP)


class ThirdPartyFinding(Finding):
    """scapy raised an exception it does not document, or a new class of disagreement."""


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    payload: bytes = b""
    next_header: int | None = None
    why: str = ""            # the model's requirement ID, or scapy's exception type

    @classmethod
    def of_model(cls, out) -> "Verdict":
        if isinstance(out, Delivered):
            return cls(True, out.payload, out.next_header)
        return cls(False, why=out.requirement)


@dataclass(frozen=True)
class Known:
    summary: str
    report: str = "reports/fuzz-scapy/README.md"


# (library, what happened, the model's requirement or scapy's exception) -> reviewed; the
# saved inputs are in corpora/crashes/index.json, the write-up in reports/fuzz-scapy/
KNOWN: dict[tuple[str, str, str], Known] = {
    ("scapy-esp", "accepts-what-the-model-drops", "REPLAY-SEQ-ZERO"): Known(
        "scapy has no anti-replay (its ipsec module says so): sequence number 0 is "
        "accepted"),
    ("scapy-esp", "accepts-what-the-model-drops", "WIRE-ALIGN"): Known(
        "scapy does not check that the ICV starts on a 4-byte boundary; RFC 4303 §2.4 asks "
        "the sender to align and says nothing of a receiver check"),
    ("scapy-esp", "raises", "dissecting the decrypted inner packet (tunnel mode)"): Known(
        "an authentic tunnel-mode packet whose payload does not parse as the protocol its "
        "next header names (ICMP, IPv4, IPv6, ESP, ...) makes SecurityAssociation.decrypt "
        "raise what that dissector raises (struct.error, MaximumItemsCount): the inner "
        "packet is dissected by a class constructor, outside scapy's usual fallback to Raw"),
    ("scapy-esp", "raises", "TypeError in scapy/layers/ipsec.py:decrypt"): Known(
        "IP protocol 50 with SPI 0 is dissected as the RFC 3948 non-ESP marker (a UDP "
        "4500 rule), so decrypt raises TypeError('... has no ESP layer')"),
    ("scapy-esp", "raises", "TypeError in scapy/layers/ipsec.py:check_spi"): Known(
        "a packet of another SPI is refused with TypeError('packet spi=... does not match "
        "the SA spi=...'), which decrypt's docstring does not name"),
    ("scapy-esp", "accepts-what-the-model-drops", "PAD-CONTENT-CHECK"): Known(
        "scapy does not check the padding bytes (1, 2, 3, ...); RFC 4303 §2.4 makes the "
        "check a SHOULD (the model's verdict is NON-STRICT there)"),
    ("scapy-psp", "accepts-what-the-model-drops", "WIRE-EESP-OPTIONS"): Known(
        "scapy accepts a virtualization cookie (V = 1) and any Hdr Ext Len; the model "
        "refuses both today, which the PSP specification does not ask (issue 11)"),
    ("scapy-psp", "raises", "TypeError in scapy/contrib/psp.py:decrypt (PSP)"): Known(
        "PSP.decrypt of a packet shorter than 8 bytes (no IV field dissected) takes the IV "
        "field's default, a RandBin, and raises TypeError(\"can't concat RandBin to "
        "bytes\")"),
    ("scapy-esp", "delivers-other-bytes", ""): Known(
        "in tunnel mode an empty inner packet comes back as a layer of its next header "
        "filled with scapy's defaults (an empty payload with next header 1 becomes 8 bytes "
        "of ICMP): bytes the packet never carried"),
    ("scapy-esp", "accepts-what-the-model-drops", "WIRE-PAD-LENGTH"): Known(
        "a pad length longer than the decrypted body is not refused: scapy slices the "
        "payload to nothing and delivers that"),
    ("scapy-esp", "raises", "ValueError in scapy/layers/ipsec.py:decrypt"): Known(
        "a packet too short for its 8-byte IV (SPI and SN only) builds a nonce shorter "
        "than 8 bytes and cryptography raises ValueError (not IPSecIntegrityError)"),
    ("scapy-esp", "raises", "IndexError in scapy/layers/ipsec.py:decrypt"): Known(
        "an authentic packet whose encrypted body is empty (no pad length, no next "
        "header) makes SecurityAssociation.decrypt raise IndexError"),
    ("scapy-psp", "accepts-what-the-model-drops", "WIRE-VERSION"): Known(
        "PSP.decrypt opens a version 1 (AES-GCM-256) packet with a 128-bit key: it checks "
        "the version only for being 0 or 1, never against the key it is given"),
    ("scapy-psp", "accepts-what-the-model-drops", "WIRE-EESP-BASE"): Known(
        "scapy accepts a PSP header whose last bit (always 1) is 0; the model drops it, "
        "under an EESP requirement ID (issue 11 gives PSP IDs of its own)"),
    ("scapy-psp", "accepts-what-the-model-drops", "WIRE-RESERVED-ZERO"): Known(
        "scapy accepts reserved bits set in the PSP header; the PSP specification says "
        "they are ignored on receive, so the model's drop is the error here (issue 11)"),
    ("scapy-psp", "accepts-what-the-model-drops", "WIRE-DUMMY-DISCARD"): Known(
        "PSP.decrypt delivers a packet whose next header is 59 (a dummy); scapy leaves "
        "the discard to its caller"),
    ("scapy-psp", "raises", "struct.error in scapy/fields.py:getfield (PSP)"): Known(
        "PSP() of 1 to 7 bytes (inside the fixed fields before the IV), or of a V = 1 "
        "header cut before its virtualization cookie, raises struct.error instead of "
        "dissecting what is there"),
    ("scapy-psp", "raises", "ValueError in scapy/contrib/psp.py:decrypt (PSP)"): Known(
        "PSP.decrypt of a packet of 8 to 11 bytes (an IV field of 0 to 3 bytes) builds a "
        "nonce shorter than 8 bytes and cryptography raises ValueError (not "
        "PSPIntegrityError)"),
    ("scapy-psp", "accepts-what-the-model-drops", "CRYPTOFF-WITHIN-PAYLOAD"): Known(
        "a crypt offset past the end of the payload: scapy authenticates everything as "
        "clear bytes and accepts; the model drops it"),
}
SEEN: Counter = Counter()
# "all", or one class as "library|what|why": raise for reviewed classes too (to minimize
# a saved input with -minimize_crash, which keeps only inputs that still crash)
RAISE_KNOWN = os.environ.get("ESPSPEC_FUZZ_RAISE_KNOWN", "")


def classify(library: str, model: Verdict, theirs: Verdict, undocumented: str = "") -> None:
    """Raise for a disagreement no one has reviewed; count the reviewed ones."""
    if undocumented:
        key = (library, "raises", undocumented)
    elif model.accepted and theirs.accepted:
        if (model.payload, model.next_header) == (theirs.payload, theirs.next_header):
            return
        key = (library, "delivers-other-bytes", "")
    elif model.accepted == theirs.accepted:
        return
    elif model.accepted:
        key = (library, "rejects-what-the-model-accepts", theirs.why)
    else:
        key = (library, "accepts-what-the-model-drops", model.why)
    SEEN[key] += 1
    if key in KNOWN and RAISE_KNOWN not in ("all", "|".join(key)):
        return
    what = " ".join(k for k in key if k)
    cls = ThirdPartyFinding if undocumented else Disagreement
    raise cls(f"{what}: model {_say(model)}, {library} {_say(theirs)}")


def raised(e: BaseException) -> str:
    """An undocumented exception as its class, the scapy function that raised it and the
    layer being built or dissected (``struct.error in scapy/fields.py:getfield (ICMP)``):
    one class per cause, not per input."""
    from scapy.packet import Packet
    tb, where, layer = e.__traceback__, "?", ""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_decrypt_esp" and "cls" in frame.f_locals:
            # tunnel mode: the inner packet is dissected by its next header's class; one
            # cause whatever the class (ICMP, IP, IPv6, ESP, ...) and the exception
            return "dissecting the decrypted inner packet (tunnel mode)"
        path = frame.f_code.co_filename
        if "/scapy/" in path:
            where = f"scapy/{path.rsplit('/scapy/', 1)[1]}:{frame.f_code.co_name}"
            me = frame.f_locals.get("self", frame.f_locals.get("pkt"))
            if isinstance(me, Packet):
                layer = type(me).__name__
        tb = tb.tb_next
    kind = type(e)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return f"{name} in {where}" + (f" ({layer})" if layer else "")


def _say(v: Verdict) -> str:
    if v.accepted:
        return f"accepts {len(v.payload)} bytes (next header {v.next_header})"
    return f"rejects ({v.why})" if v.why else "rejects"


def esp_target() -> Callable[[bytes], None]:
    from scapy.layers import ipsec
    from scapy.layers.inet import IP
    from scapy.packet import Raw
    sas = {}
    for name in SCAPY_ESP_PROFILES:
        p = NAMED[name]
        sas[name] = dict(crypt_algo="AES-GCM", crypt_key=keymat(p), crypt_icv_size=16,
                         auth_algo=None, esn_en=p.seq is SeqWire.ESN, esn=0,
                         tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2")
                         if p.mode.value == "tunnel" else None)

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        profile, packet = split(data, SCAPY_ESP_PROFILES)
        model = Verdict.of_model(Receiver(profile, keymat(profile), SPI).open(packet))
        if len(packet) < 8:      # no SPI and SN: scapy sees no ESP layer to decrypt at all
            return classify("scapy-esp", model, Verdict(False, why="no ESP layer"))
        sa = ipsec.SecurityAssociation(ipsec.ESP, spi=SPI, **sas[profile.name])
        outer = IP(bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=50) / Raw(packet)))
        try:
            out = sa.decrypt(outer)
        except ipsec.IPSecIntegrityError:
            return classify("scapy-esp", model, Verdict(False, why="IPSecIntegrityError"))
        except Exception as e:       # anything else is not in scapy's documentation
            return classify("scapy-esp", model, Verdict(False, why=type(e).__name__), raised(e))
        try:       # tunnel mode: the inner packet, its next header left in the outer one
            theirs = (Verdict(True, bytes(out), outer.proto) if profile.mode.value == "tunnel"
                      else Verdict(True, bytes(out.payload), out.proto))
        except Exception as e:
            return classify("scapy-esp", model, Verdict(False, why=type(e).__name__), raised(e))
        classify("scapy-esp", model, theirs)
    return test_one_input


def psp_target() -> Callable[[bytes], None]:
    from scapy.contrib.psp import PSP, PSPCipherError, PSPIntegrityError
    keys = {}
    for name in SCAPY_PSP_PROFILES:
        p = NAMED[name]
        rx = Receiver(p, keymat(p), SPI)
        keys[name] = {SPI | i: rx.keying.key_and_salt(i)[0] for i in range(p.n_sub_sas)}

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        profile, packet = split(data, SCAPY_PSP_PROFILES)
        model = Verdict.of_model(Receiver(profile, keymat(profile), SPI).open(packet))
        spi = int.from_bytes(packet[4:8], "big") if len(packet) >= 8 else SPI
        key = keys[profile.name].get(spi, keys[profile.name][SPI])
        try:
            pkt = PSP(packet)
            pkt.decrypt(key)
        except (PSPIntegrityError, PSPCipherError) as e:    # both documented
            return classify("scapy-psp", model, Verdict(False, why=type(e).__name__))
        except Exception as e:
            return classify("scapy-psp", model, Verdict(False, why=type(e).__name__), raised(e))
        classify("scapy-psp", model, Verdict(True, bytes(pkt.data), pkt.nexthdr))
    return test_one_input
