"""Profiles: one protocol variant as a point in the seed draft's design space.

Theory of operation: a ``Profile`` is a frozen value with one field per axis of the design
space (spec-facts §10, seed draft §4.5-4.10): where the sub-SA ID lives (A), how nonces
stay unique across sub-SAs (B), the sequence number on the wire (C), the framing (D), the
alignment (E) and the crypt offset (F), plus the AEAD, the number of sub-SAs, the replay
window and the limits. Constructing a profile validates it against ``RULES``, a table of
(rule name, refusal class, requirement ID, predicate, reason): the first rule whose
predicate holds refuses the profile with ``InsecureProfile`` or ``ImpossibleProfile``.
``NAMED`` holds the profiles users select by name. Nothing here encodes bytes or keeps
state; derived numbers that need the wire layout live in the framing modules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace
from typing import Callable

from .aead import AEADS, Aead, IV_LEN
from .errors import ImpossibleProfile, InsecureProfile, ProfileError, UnknownProfile


class SubSaLocation(enum.Enum):
    """Axis A: where a receiver reads the sub-SA ID."""
    NONE = "none"        # one sub-SA only
    SPI = "spi"          # low bits of the SPI (a 2^k-aligned SPI block)
    SEQ = "seq"          # high bits of the sequence number on the wire
    HEADER = "header"    # a header field: the EESP Session ID


class NonceScheme(enum.Enum):
    """Axis B: what makes the (key, nonce) pairs of different sub-SAs distinct."""
    SUBSA_KEY = "subsa-key"            # own key per sub-SA from a KDF; IV = counter
    SUBSA_SALT = "subsa-salt"          # shared key, salt XOR sub-SA ID; IV = counter
    PARTITIONED_IV = "partitioned-iv"  # shared key and salt, sub-SA ID in the IV's top bits
    IMPLICIT_IV = "implicit-iv"        # RFC 8750: no IV on the wire, IV = sequence number
    EXPLICIT_COUNTER = "explicit-counter"  # explicit IV = the packet's sequence number


class SeqWire(enum.Enum):
    """Axis C: the sequence number field on the wire."""
    SEQ32 = "32"        # 32-bit counter, all of it sent
    ESN = "esn"         # 64-bit counter, low 32 bits sent (RFC 4303 ESN)
    SEQ64 = "64"        # 64-bit counter, all of it sent
    NONE = "none"       # no sequence number, no replay protection


class Framing(enum.Enum):
    """Axis D: the header/trailer layout."""
    ESP = "esp"                        # RFC 4303 header and trailer
    EESP_FULL = "eesp-full"            # EESP with the Payload Info Header
    EESP_OPTIMIZED = "eesp-optimized"  # EESP without it (tunnel mode only)
    PSP = "psp"                        # PSP header, no trailer, no padding


class Mode(enum.Enum):
    TUNNEL = "tunnel"
    TRANSPORT = "transport"


class Kdf(enum.Enum):
    """Per-sub-SA key derivation (only with NonceScheme.SUBSA_KEY)."""
    NONE = "none"
    HKDF_SHA256 = "hkdf-sha256"
    HKDF_SHA384 = "hkdf-sha384"
    HKDF_SHA512 = "hkdf-sha512"
    PSP_CMAC = "psp-cmac"


#: bits of the sequence number field on the wire
SEQ_WIRE_BITS = {SeqWire.SEQ32: 32, SeqWire.ESN: 32, SeqWire.SEQ64: 64, SeqWire.NONE: 0}
#: bits of the sender's counter
SEQ_COUNTER_BITS = {SeqWire.SEQ32: 32, SeqWire.ESN: 64, SeqWire.SEQ64: 64, SeqWire.NONE: 64}
#: framings each sequence-number width fits in
SEQ_FRAMINGS = {
    Framing.ESP: {SeqWire.SEQ32, SeqWire.ESN, SeqWire.SEQ64},
    Framing.EESP_FULL: {SeqWire.SEQ64, SeqWire.NONE},
    Framing.EESP_OPTIMIZED: {SeqWire.SEQ64, SeqWire.NONE},
    Framing.PSP: {SeqWire.NONE},
}
EESP_FRAMINGS = frozenset({Framing.EESP_FULL, Framing.EESP_OPTIMIZED})
MIN_WINDOW = {Framing.ESP: 32, Framing.EESP_FULL: 64, Framing.EESP_OPTIMIZED: 64,
              Framing.PSP: 0}
MAX_WINDOW = 1 << 30
MAX_CRYPT_OFFSET = 63          # 6-bit field, 4-octet units
MAX_SUBSA_ID_BITS = 16         # SPI and sequence-number carriers; the EESP Session ID is 16 bits
PSP_AEADS = {"aes128gcm16": 0, "aes256gcm16": 1}   # AEAD -> PSP header version


@dataclass(frozen=True)
class Profile:
    name: str = "custom"
    framing: Framing = Framing.ESP
    seq: SeqWire = SeqWire.SEQ32
    subsa: SubSaLocation = SubSaLocation.NONE
    nonce: NonceScheme = NonceScheme.EXPLICIT_COUNTER
    kdf: Kdf = Kdf.NONE
    aead: str = "aes128gcm16"
    mode: Mode = Mode.TUNNEL
    alignment: int = 4
    crypt_offset: int = 0          # 4-octet units used by the sender
    max_crypt_offset: int = 0      # negotiated maximum a receiver accepts; 0 = option forbidden
    exposed_authenticated: bool = True
    n_sub_sas: int = 1
    window: int = 64
    hard_packets: int | None = None   # child-SA hard limit (packets)
    soft_packets: int | None = None   # child-SA rekey threshold (packets)
    hard_bytes: int | None = None     # child-SA hard limit (payload bytes)
    soft_bytes: int | None = None
    sums_kept: bool = False           # sub-SAs can keep exact sums (same core, or atomics)

    def __post_init__(self) -> None:
        for rule in RULES:
            if rule.broken(self):
                raise rule.refusal(rule.name, rule.reason, requirement=rule.requirement)

    # --- derived values ----------------------------------------------------------------
    @property
    def aead_spec(self) -> Aead:
        return AEADS[self.aead]

    @property
    def subsa_bits(self) -> int:
        """k: bits that carry the sub-SA ID in the SPI, the sequence number or the IV."""
        return (self.n_sub_sas - 1).bit_length()

    @property
    def seq_bits_for_id(self) -> int:
        return self.subsa_bits if self.subsa is SubSaLocation.SEQ else 0

    @property
    def iv_len(self) -> int:
        return 0 if self.nonce is NonceScheme.IMPLICIT_IV else IV_LEN

    @property
    def shared_key(self) -> bool:
        """True when all sub-SAs encrypt under one key."""
        return self.nonce is not NonceScheme.SUBSA_KEY

    @property
    def replay_protected(self) -> bool:
        return self.seq is not SeqWire.NONE

    def replace(self, **changes) -> "Profile":
        """A copy with some axes changed (validated like any profile)."""
        if "name" not in changes:
            changes["name"] = f"{self.name}+" if not self.name.endswith("+") else self.name
        return replace(self, **changes)

    @classmethod
    def from_axes(cls, axes: dict[str, object]) -> "Profile":
        """The inverse of ``axes``: a profile from plain values (validated)."""
        enums = {f.name: f.type for f in fields(cls)}
        kinds = {"framing": Framing, "seq": SeqWire, "subsa": SubSaLocation,
                 "nonce": NonceScheme, "kdf": Kdf, "mode": Mode}
        assert set(kinds) <= set(enums)
        return cls(**{k: kinds[k](v) if k in kinds else v for k, v in axes.items()})

    def axes(self) -> dict[str, object]:
        """The profile as plain values, for reports and the README table."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.value if isinstance(v, enum.Enum) else v
        return out


@dataclass(frozen=True)
class Rule:
    name: str
    refusal: type[ProfileError]
    requirement: str
    broken: Callable[[Profile], bool]
    reason: str


def _header_len_unpaddable(p: Profile) -> int | None:
    """Bytes in front of the payload for framings that cannot pad their header."""
    if p.framing is Framing.ESP:
        return 4 + SEQ_WIRE_BITS[p.seq] // 8 + p.iv_len
    if p.framing is Framing.PSP:
        return 16
    return None


def _limit_values(p: Profile) -> list[int | None]:
    return [p.hard_packets, p.soft_packets, p.hard_bytes, p.soft_bytes]


_I, _X = InsecureProfile, ImpossibleProfile

RULES: tuple[Rule, ...] = (
    Rule("unknown-aead", _X, "ICV-LENGTH", lambda p: p.aead not in AEADS,
         f"AEAD must be one of {', '.join(AEADS)}"),
    Rule("seq-width-vs-framing", _X, "WIRE-ESP-LAYOUT",
         lambda p: p.seq not in SEQ_FRAMINGS[p.framing],
         "ESP carries a 32-bit or 64-bit sequence number, EESP a 64-bit one or none, "
         "PSP none"),
    Rule("subsa-count", _X, "SUBSA-ID-RANGE",
         lambda p: not 1 <= p.n_sub_sas <= 1 << MAX_SUBSA_ID_BITS,
         "the number of sub-SAs must be 1..65536"),
    Rule("subsa-without-location", _X, "SUBSA-ID-LOCATION",
         lambda p: p.n_sub_sas > 1 and p.subsa is SubSaLocation.NONE,
         "several sub-SAs need a place on the wire for the sub-SA ID"),
    Rule("subsa-header-needs-eesp", _X, "SUBSA-ID-LOCATION",
         lambda p: p.subsa is SubSaLocation.HEADER and p.framing not in EESP_FRAMINGS,
         "only EESP has a header field (the Session ID) for the sub-SA ID"),
    Rule("subsa-psp-is-spi", _X, "SUBSA-ID-LOCATION",
         lambda p: p.framing is Framing.PSP and p.subsa not in (SubSaLocation.SPI,
                                                                SubSaLocation.NONE),
         "PSP identifies an SA by its SPI only"),
    Rule("subsa-seq-without-seq", _X, "SUBSA-ID-LOCATION",
         lambda p: p.subsa is SubSaLocation.SEQ and p.seq is SeqWire.NONE,
         "the sub-SA ID cannot live in a sequence number that is not sent"),
    Rule("subsa-seq-with-esn", _X, "ESN-INFER-CASE-A",
         lambda p: p.subsa is SubSaLocation.SEQ and p.seq is SeqWire.ESN,
         "sub-SA ID bits in the transmitted low word make each sub-SA's counter wrap inside "
         "the 32-bit word; RFC 4303 Appendix A then infers the wrong high half"),
    Rule("subsa-seq-too-wide", _X, "SUBSA-ID-LOCATION",
         lambda p: p.subsa is SubSaLocation.SEQ and p.seq is SeqWire.SEQ32
         and p.subsa_bits > 16,
         "more than 16 sub-SA ID bits leave a 32-bit sequence number too few for a counter"),
    Rule("shared-key-counter-iv", _I, "NONCE-SUBSA-SEPARATION",
         lambda p: p.n_sub_sas > 1
         and p.nonce in (NonceScheme.IMPLICIT_IV, NonceScheme.EXPLICIT_COUNTER)
         and p.subsa is not SubSaLocation.SEQ,
         "per-sub-SA counters used as IVs under one key and salt repeat nonces across "
         "sub-SAs (every counter starts at 1)"),
    Rule("iiv-without-seq", _X, "NONCE-IIV-NEEDS-SEQ",
         lambda p: p.nonce is NonceScheme.IMPLICIT_IV and p.seq is SeqWire.NONE,
         "an implicit IV has no source without a sequence number"),
    Rule("subsa-key-without-kdf", _X, "KDF-SUBSA-KEY",
         lambda p: (p.nonce is NonceScheme.SUBSA_KEY) != (p.kdf is not Kdf.NONE),
         "per-sub-SA keys need a KDF, and a KDF is only used for per-sub-SA keys"),
    Rule("psp-kdf", _X, "KDF-PSP-KEY",
         lambda p: (p.framing is Framing.PSP) != (p.kdf is Kdf.PSP_CMAC),
         "PSP derives each SA key from the master key with AES-CMAC, and only PSP does"),
    Rule("psp-aead", _X, "WIRE-PSP-HEADER",
         lambda p: p.framing is Framing.PSP and p.aead not in PSP_AEADS,
         "PSP version 0 and 1 define AES-GCM-128 and AES-GCM-256 with a 16-byte ICV only"),
    Rule("exposed-not-authenticated", _I, "CRYPTOFF-AUTHENTICATED",
         lambda p: not p.exposed_authenticated and (p.crypt_offset or p.max_crypt_offset),
         "bytes left in clear by a crypt offset must be in the AAD, or they can be "
         "rewritten in flight"),
    Rule("crypt-offset-range", _X, "CRYPTOFF-MAX",
         lambda p: not (0 <= p.crypt_offset <= p.max_crypt_offset <= MAX_CRYPT_OFFSET),
         "crypt offset and its maximum are 0..63 four-byte units, offset <= maximum"),
    Rule("crypt-offset-needs-full-format", _X, "CRYPTOFF-FULL-FORMAT",
         lambda p: p.max_crypt_offset > 0 and p.framing in (Framing.ESP,
                                                            Framing.EESP_OPTIMIZED),
         "a crypt offset needs a field to carry it and the full format (ESP has none; "
         "EESP requires the Payload Info Header with it)"),
    Rule("optimized-outside-tunnel", _X, "WIRE-EESP-OPTIMIZED",
         lambda p: p.framing is Framing.EESP_OPTIMIZED and p.mode is not Mode.TUNNEL,
         "the optimized format relies on the inner IP header; transport payloads do not "
         "say their protocol and length"),
    Rule("full-format-in-tunnel", _X, "WIRE-EESP-OPTIMIZED",
         lambda p: p.framing is Framing.EESP_FULL and p.mode is Mode.TUNNEL,
         "EESP-04 makes the format a function of the mode: tunnel mode uses the optimized "
         "format"),
    Rule("alignment", _X, "WIRE-ALIGN", lambda p: p.alignment not in (4, 8),
         "alignment is 4 or 8 bytes (no alignment breaks RFC 4303 §2.4 and IPv6)"),
    Rule("header-misaligned", _X, "WIRE-ALIGN",
         lambda p: (_header_len_unpaddable(p) or 0) % p.alignment != 0,
         "this framing cannot pad its header, and the payload would start misaligned"),
    Rule("window-without-seq", _X, "REPLAY-WINDOW-MIN",
         lambda p: not p.replay_protected and p.window != 0,
         "without a sequence number there is no replay window (use window=0)"),
    Rule("window-size", _X, "REPLAY-WINDOW-MIN",
         lambda p: p.replay_protected
         and not MIN_WINDOW[p.framing] <= p.window <= MAX_WINDOW,
         f"the replay window must hold at least 32 (ESP) or 64 (EESP) and at most "
         f"{MAX_WINDOW} packets"),
    Rule("window-vs-counter", _X, "REPLAY-WINDOW-MIN",
         lambda p: p.replay_protected
         and p.window >= 1 << (SEQ_COUNTER_BITS[p.seq] - p.seq_bits_for_id - 1),
         "the window must be smaller than half the sub-SA's counter space"),
    Rule("limit-values", _X, "LIMIT-HARD-PER-SUBSA",
         lambda p: any(v is not None and v <= 0 for v in _limit_values(p))
         or (p.hard_packets is not None and p.soft_packets is not None
             and p.soft_packets > p.hard_packets)
         or (p.hard_bytes is not None and p.soft_bytes is not None
             and p.soft_bytes > p.hard_bytes),
         "limits are positive and a soft limit does not exceed its hard limit"),
    Rule("limit-hard-below-n", _X, "LIMIT-HARD-PER-SUBSA",
         lambda p: not p.sums_kept and p.hard_packets is not None
         and p.hard_packets < p.n_sub_sas,
         "a hard packet limit below N leaves some sub-SA a share of zero packets"),
    Rule("shared-key-over-2^64", _I, "LIMIT-2POW64-SHARED-KEY",
         lambda p: p.shared_key and p.hard_packets is not None and p.hard_packets > 1 << 64,
         "a key shared by sub-SAs must never protect more than 2^64 packets"),
)


def _named(name: str, **axes) -> Profile:
    return Profile(name=name, **axes)


NAMED: dict[str, Profile] = {p.name: p for p in (
    _named("esp"),
    _named("esp-esn", seq=SeqWire.ESN),
    _named("esp-iiv", seq=SeqWire.ESN, nonce=NonceScheme.IMPLICIT_IV),
    _named("esp-seq64", seq=SeqWire.SEQ64),
    _named("esp-subsa-spi", seq=SeqWire.ESN, subsa=SubSaLocation.SPI,
           nonce=NonceScheme.PARTITIONED_IV, n_sub_sas=4, window=128),
    _named("esp-subsa-salt", seq=SeqWire.ESN, subsa=SubSaLocation.SPI,
           nonce=NonceScheme.SUBSA_SALT, n_sub_sas=4, window=128),
    _named("esp-subsa-seq", seq=SeqWire.SEQ32, subsa=SubSaLocation.SEQ,
           nonce=NonceScheme.EXPLICIT_COUNTER, n_sub_sas=4, window=128),
    _named("eesp-v0", framing=Framing.EESP_OPTIMIZED, seq=SeqWire.SEQ64,
           subsa=SubSaLocation.HEADER, nonce=NonceScheme.SUBSA_KEY, kdf=Kdf.HKDF_SHA256,
           alignment=8, n_sub_sas=4, window=128),
    _named("eesp-v0-transport", framing=Framing.EESP_FULL, seq=SeqWire.SEQ64,
           subsa=SubSaLocation.HEADER, nonce=NonceScheme.SUBSA_KEY, kdf=Kdf.HKDF_SHA256,
           mode=Mode.TRANSPORT, alignment=8, crypt_offset=3, max_crypt_offset=16,
           n_sub_sas=4, window=128),
    _named("psp-v0", framing=Framing.PSP, seq=SeqWire.NONE, subsa=SubSaLocation.SPI,
           nonce=NonceScheme.SUBSA_KEY, kdf=Kdf.PSP_CMAC, mode=Mode.TRANSPORT,
           alignment=8, max_crypt_offset=63, n_sub_sas=4, window=0),
)}


def named(name: str) -> Profile:
    try:
        return NAMED[name]
    except KeyError:
        raise UnknownProfile(f"unknown profile {name!r}; known: {', '.join(NAMED)}") from None
