"""The requirement catalogue: every testable rule with a stable ID.

Theory of operation: one table, ``CATALOGUE``, holds every rule espspec can test. An entry
gives the ID (stable: reports and baselines refer to it), the source text it comes from
(seed draft section, RFC section or EESP draft), the level (MUST / SHOULD / MAY, as the
source writes it or, for the informational seed draft, as its lower-case wording implies)
and a severity class that says what breaks when the rule is broken. The rest of the model
names these IDs in its exceptions, drop reasons and validation rules; a test checks that
every ID it names exists here. No logic lives in this module.

Sources are abbreviated: ``seed`` is draft "Broadening the Scope of ESP" (Aug 2023, in
shared/seed), ``EESP`` is draft-ietf-ipsecme-eesp-04, ``EESP-IKEv2`` is
draft-ietf-ipsecme-eesp-ikev2-02, ``PSP`` is the PSP Architecture Specification as
implemented by google/psp.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"
    STRICT = "espspec-strict"    # no document states it; espspec checks it under --strict


class Severity(enum.Enum):
    SECURITY = "security"        # replay, forgery or acceptance of unauthenticated data
    CRYPTO = "crypto"            # nonce reuse, key or limit misuse
    INTEROP = "interop"          # a conforming peer would disagree on the bytes
    ROBUSTNESS = "robustness"    # malformed input handling, resource exhaustion
    STRICTNESS = "strictness"    # checks a receiver should make but may omit


@dataclass(frozen=True)
class Requirement:
    id: str
    source: str
    level: Level
    severity: Severity
    text: str


M, S, Y, X = Level.MUST, Level.SHOULD, Level.MAY, Level.STRICT
SEC, CRY, INT, ROB, STR = (Severity.SECURITY, Severity.CRYPTO, Severity.INTEROP,
                           Severity.ROBUSTNESS, Severity.STRICTNESS)

_TABLE: tuple[tuple[str, str, Level, Severity, str], ...] = (
    # --- nonces and keys ----------------------------------------------------------------
    ("NONCE-UNIQUE-PER-KEY", "RFC 4106 §3.1; RFC 7634 §2; SP 800-38D §8", M, CRY,
     "A (key, nonce) pair is never used for two packets."),
    ("NONCE-SUBSA-SEPARATION", "seed §4.5", M, CRY,
     "Sub-SAs sharing one key use distinct salts or disjoint IV spaces; independent "
     "per-sub-SA counters are never used as IVs under one key and salt."),
    ("NONCE-IIV-NEEDS-SEQ", "RFC 8750 §3; EESP-IKEv2 (SN transform)", M, CRY,
     "An implicit IV needs a sequence number to derive it from."),
    ("NONCE-IIV-LAYOUT", "RFC 8750 §3", M, INT,
     "The implicit IV is 0^32 || SN for 32-bit sequence numbers and the 64-bit ESN "
     "otherwise."),
    ("KDF-SUBSA-KEY", "EESP (Sub SA keys); EESP-IKEv2 §3.1.1", M, CRY,
     "Each sub-SA key is HKDF-Expand(root key, Session ID, key length + 4)."),
    ("KDF-PSP-KEY", "PSP (key derivation)", M, INT,
     "The PSP SA key is derived from the master key and the SPI with AES-CMAC in "
     "SP 800-108 counter mode."),
    ("ICV-VERIFY", "RFC 4303 §3.4.4", M, SEC,
     "A packet whose ICV does not verify is dropped."),
    ("ICV-LENGTH", "RFC 4106 §6; RFC 4303 §2.8", M, SEC,
     "The ICV has exactly the length of the negotiated AEAD; a shorter ICV is refused."),
    ("AAD-RFC4106", "RFC 4106 §5; RFC 7634 §2.1", M, INT,
     "The AAD of classic ESP is SPI || SN(32), or SPI || ESN(64) with extended sequence "
     "numbers."),
    ("AAD-ESN-HIGH", "RFC 4303 §2.2.1; RFC 4106 §5", M, SEC,
     "The high 32 bits of an extended sequence number enter the ICV computation."),
    ("AAD-SEQ64-FULL", "seed §4.8; EESP (AAD)", M, SEC,
     "A 64-bit sequence number carried on the wire is authenticated in full."),
    ("AAD-EESP", "EESP (integrity coverage)", M, INT,
     "The EESP AAD is the base header, the options, the peer header (SN and IV) and any "
     "bytes the crypt offset leaves in clear."),
    ("AAD-PSP", "PSP (AAD)", M, INT,
     "The PSP AAD is the PSP header and the crypt-offset bytes after it."),
    ("CRYPTOFF-AUTHENTICATED", "seed §4.6; EESP (integrity coverage)", M, SEC,
     "Bytes left in clear by a crypt offset are authenticated."),
    ("CRYPTOFF-WITHIN-PAYLOAD", "EESP (Crypt Offset option)", M, ROB,
     "The crypt offset does not reach past the end of the inner packet."),
    ("CRYPTOFF-MAX", "EESP-IKEv2 (EESP_MAX_CRYPT_OFFSET)", M, SEC,
     "A crypt offset above the negotiated maximum is dropped."),
    ("CRYPTOFF-FULL-FORMAT", "EESP (packet formats)", M, INT,
     "A crypt offset is only used with the full format (Payload Info Header present)."),
    # --- sequence numbers and replay ------------------------------------------------------
    ("SEQ-FIRST-ONE", "RFC 4303 §3.3.3; EESP (peer header)", M, INT,
     "The counter starts at 0, so the first packet of a (sub-)SA carries 1."),
    ("SEQ-STRICTLY-INCREASING", "RFC 4303 §3.3.3; EESP (peer header)", M, INT,
     "A sender's sequence numbers strictly increase per (sub-)SA."),
    ("SEQ-NO-WRAP", "RFC 4303 §3.3.3; EESP (Sub SA limits)", M, SEC,
     "A sender never lets a counter wrap; it refuses to send instead."),
    ("REPLAY-DUPLICATE-DROP", "RFC 4303 §3.4.3", M, SEC,
     "A packet whose sequence number was already accepted is dropped."),
    ("REPLAY-TOO-OLD-DROP", "RFC 4303 §3.4.3", M, SEC,
     "A packet left of the window (W or more behind the highest accepted) is dropped."),
    ("REPLAY-WINDOW-EXACT", "espspec; RFC 4303 §3.4.3 leaves the size local; RFC 6479 §2",
     X, STR,
     "The window is the configured W: a packet W to W + 63 behind the highest accepted is "
     "dropped. No document demands it -- RFC 4303 leaves the window's size to the "
     "receiver and RFC 6479's block bitmap may keep up to one block more -- so a delivery "
     "is a finding only under --strict; 64 or more beyond W breaks REPLAY-TOO-OLD-DROP."),
    ("REPLAY-WINDOW-SIZE", "RFC 4303 §3.4.3", M, INT,
     "Every packet less than W behind the highest accepted and not yet seen is accepted."),
    ("REPLAY-ADVANCE-AFTER-ICV", "RFC 4303 §3.4.3; EESP (replay)", M, SEC,
     "The window moves only after the ICV of the packet verified."),
    ("REPLAY-PRELIM-CHECK", "RFC 4303 §3.4.3", S, ROB,
     "Duplicates and too-old packets are rejected before the ICV is computed."),
    ("REPLAY-SEQ-ZERO", "RFC 4303 §3.3.3", M, SEC,
     "Sequence number 0 is never accepted: no sender sends it."),
    ("REPLAY-WINDOW-MIN", "RFC 4303 §3.4.3; EESP (replay)", M, INT,
     "The window holds at least 32 packets (ESP) or 64 packets (EESP)."),
    ("REPLAY-PER-SUBSA-WINDOW", "seed §4.5; EESP (Sub SAs)", M, SEC,
     "Each sub-SA has a window of its own; traffic on one does not move another's."),
    ("ESN-INFER-CASE-A", "RFC 4303 Appendix A2.2, case A", M, INT,
     "With the window inside one subspace, Seqh = Th when Seql >= Bl, else Th + 1."),
    ("ESN-INFER-CASE-B", "RFC 4303 Appendix A2.2, case B", M, INT,
     "With the window straddling two subspaces, Seqh = Th - 1 when Seql >= Bl, else Th."),
    # --- sub-SAs ---------------------------------------------------------------------------
    ("SUBSA-ID-RANGE", "EESP (Sub SAs); seed §4.5", M, SEC,
     "A sender never uses a sub-SA ID >= N; a receiver drops it."),
    ("SUBSA-WINDOW-AFTER-AUTH", "EESP (Sub SAs)", S, ROB,
     "A window for a new sub-SA ID is created only after its packet authenticated."),
    ("SUBSA-ID-AUTHENTICATED", "seed §4.5; design space #7", M, SEC,
     "The sub-SA ID is inside the authenticated part of the packet."),
    ("SUBSA-ID-LOCATION", "seed §4.5", M, INT,
     "The sub-SA ID is where the profile puts it: low SPI bits, high sequence-number bits "
     "or the EESP Session ID."),
    # --- limits ----------------------------------------------------------------------------
    ("LIMIT-HARD-PER-SUBSA", "seed §4.5", M, CRY,
     "Without synchronisation, a hard limit L of the child SA is L/N per sub-SA."),
    ("LIMIT-HARD-SUM", "seed §4.5", M, CRY,
     "Where sums are kept, the packets (bytes) of all sub-SAs together never exceed L."),
    ("LIMIT-REKEY-SUM", "seed §4.5", M, CRY,
     "Rekey is due when the sum over sub-SAs reaches the soft limit."),
    ("LIMIT-REKEY-MAX-N", "seed §4.5", M, CRY,
     "Where sums are not kept, rekey is due when max over sub-SAs times N reaches the soft "
     "limit."),
    ("LIMIT-2POW64-SHARED-KEY", "seed §4.5; SP 800-38D §8.3", M, CRY,
     "A key shared by sub-SAs never protects more than 2^64 packets."),
    ("LIMIT-RECEIVER-ENFORCE", "seed §4.5", S, STR,
     "A receiver drops packets past the per-sub-SA hard limit."),
    # --- rekey: a new SA replaces the old one ---------------------------------------------
    ("REKEY-FRESH-COUNTER", "RFC 4303 §2.2, §3.3.3; EESP (peer header)", M, INT,
     "A new SA's sender counter starts at 0 (the counter is reset by establishing a new "
     "SA), so its first packet carries 1, however many the SA it replaced sent."),
    ("REKEY-FRESH-WINDOW", "RFC 4303 §3.4.3", M, INT,
     "A new SA's receive counter and window start at 0: its SN 1 is delivered even after "
     "the SA it replaced accepted high sequence numbers."),
    ("REKEY-OLD-SA", "RFC 4303 §3.4.2; espspec IUT contract (docs/adapters.md, rekey)", M,
     SEC, "A rekey replaces the SA: afterwards nothing is sent on the old SA, and a packet "
     "for the old inbound SPI is dropped as having no valid SA, unless the IUT declares an "
     "overlap, during which the old SA keeps its own window."),
    ("REKEY-LIMITS-RESTART", "seed §4.5; SP 800-38D §8.3", M, CRY,
     "Packet and byte limits and the 2^64 cap of a shared key count what one key "
     "protected: they start from zero for the new SA's key."),
    ("REKEY-DUE-LEADS-TO-REKEY", "seed §4.5", M, CRY,
     "Once the soft limit makes a rekey due, rekeying makes it not due (the new SA's "
     "counts start from zero) and packets flow on the new SA."),
    # --- conformance of the two ends as a whole -------------------------------------------
    ("SEND-WITHIN-LIMITS", "RFC 4303 §3.3; seed §4.5", M, INT,
     "A sender protects every packet that its counters and limits allow."),
    ("IUT-NO-CRASH", "RFC 4303 §3.4 (robustness)", M, ROB,
     "An implementation answers every input with a packet, a refusal or a drop; it "
     "never raises an error instead."),
    # --- the IUT contract (docs/adapters.md): how espspec can talk to an implementation ---
    ("IUT-HANG", "espspec IUT contract (docs/adapters.md, deadlines)", M, ROB,
     "Every verb answers within the per-verb deadline (--timeout)."),
    ("IUT-CRASH", "espspec IUT contract (docs/adapters.md, isolation)", M, ROB,
     "The implementation's process (or daemon) stays alive: no signal, no exit."),
    ("IUT-CONTRACT", "espspec IUT contract (docs/adapters.md, verbs)", M, ROB,
     "Every verb returns what the contract says: bytes or Refused from protect, a "
     "well-formed Delivered or Dropped from unprotect, Capabilities, a list of counters."),
    ("IUT-NONDETERMINISTIC", "espspec IUT contract (docs/adapters.md, sessions)", M, ROB,
     "The same steps on a freshly installed SA get the same answers."),
    ("RECV-ACCEPT-VALID", "RFC 4303 §3.4", M, INT,
     "A receiver delivers every authentic, well-formed packet that is inside or right of "
     "the window, with the payload the sender protected."),
    # --- wire format ------------------------------------------------------------------------
    ("SPI-UNKNOWN-DROP", "RFC 4303 §3.4.2", M, ROB,
     "A packet for an SPI without an SA is dropped."),
    ("WIRE-TRUNCATED", "RFC 4303 §2", M, ROB,
     "A packet too short for its headers, IV, trailer and ICV is dropped."),
    ("WIRE-ESP-LAYOUT", "RFC 4303 §2", M, INT,
     "SPI, sequence number, IV, ciphertext, ICV in this order, with the widths of the "
     "profile."),
    ("WIRE-PAD-LENGTH", "RFC 4303 §2.5", M, ROB,
     "A pad length that reaches past the decrypted payload is refused."),
    ("PAD-CONTENT-SEND", "RFC 4303 §2.4; EESP (padding)", M, INT,
     "Padding is 1, 2, 3, ... (ESP) or zeros (EESP)."),
    ("PAD-CONTENT-CHECK", "RFC 4303 §2.4; EESP (padding)", S, STR,
     "A receiver checks the padding content and drops a packet with wrong padding."),
    ("WIRE-ALIGN", "RFC 4303 §2.4; EESP (alignment); seed §4.10", M, INT,
     "The payload starts and the ICV starts at a multiple of the profile's alignment."),
    ("WIRE-DUMMY-DISCARD", "RFC 4303 §2.6; EESP (Payload Info Header)", M, INT,
     "A packet with next header 59 is a dummy and is discarded."),
    ("WIRE-EESP-BASE", "EESP (base header)", M, INT,
     "The first bit of the EESP base header is 1."),
    ("WIRE-VERSION", "EESP (base header); PSP (header)", M, INT,
     "A packet of an unexpected version is dropped."),
    ("WIRE-RESERVED-ZERO", "EESP (base header, Payload Info Header)", M, STR,
     "Reserved bits are sent as zero and a receiver drops a packet that sets them."),
    ("WIRE-EESP-OPTIONS", "EESP (options)", M, ROB,
     "Options are TLVs inside Opt Len; the Crypt Offset option has its fixed layout."),
    ("WIRE-EESP-PIH", "EESP (Payload Info Header)", M, INT,
     "The Payload Info Header carries next header and pad length in front of the payload."),
    ("WIRE-EESP-OPTIMIZED", "EESP (packet formats)", M, INT,
     "The optimized format carries an inner IP packet whose own length delimits the "
     "padding; it is used in tunnel mode only."),
    ("WIRE-PSP-HEADER", "PSP (header)", M, INT,
     "The PSP header: next header, header length in 8-octet units, crypt offset, "
     "version, V bit, fixed bit 1, SPI, IV."),
)

CATALOGUE: dict[str, Requirement] = {
    row[0]: Requirement(*row) for row in _TABLE
}


def get(requirement_id: str) -> Requirement:
    """The entry for an ID; KeyError names the unknown ID."""
    return CATALOGUE[requirement_id]
