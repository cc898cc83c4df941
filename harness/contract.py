"""The implementation-under-test (IUT) contract.

Theory of operation: espspec drives an implementation through five verbs and judges every
answer against the model. An adapter wraps one implementation (an in-process library, a
daemon, a capture) behind ``Iut``:

* ``capabilities()`` says what it can do; a case it rules out is UNSUPPORTED, never PASS.
* ``install(outbound, inbound)`` sets up one child SA per direction from ``SaConfig``s:
  the profile (with its N sub-SAs, window and limits), the base SPI and the key material.
  An IUT that negotiates its own keys (IKE; ``Capabilities.negotiates_keys``) takes the
  profile only and answers the pair of ``SaConfig``s it really installed.
* ``protect(sub_sa, payload, next_header)`` returns the packet bytes from the first
  (E)ESP/PSP header byte to the ICV, or a ``Refused`` (limit reached, counter exhausted,
  sub-SA out of range) — never an exception for a refusal.
* ``unprotect(wire)`` returns ``Delivered`` (payload, next header; sub-SA and SN when the
  IUT knows them) or ``Dropped`` (reason when the IUT can tell, else ``None``).
* optional ``set_counter(sub_sa, value)``, ``counters()``, ``rekey_due()`` and
  ``rekey(outbound, inbound)`` (replace both SAs by new ones, see ``Capabilities.rekey``);
  ``close()`` always. Optional attributes ``name`` and ``version`` say what was tested.
* optional ``evidence()``: what the IUT can show of the current session (since its
  ``install``) when the session fails -- None, or files as ``{file name: bytes}`` (plain
  names, no folders), e.g. the packets on the wire as a pcap and the keys to read them
  (``harness.capture.evidence``). The session asks for it once, before ``close``, and
  ``espspec run --report`` writes the files beside the results; an exception there never
  hides the failure that was found.

What a verb returns is checked against ``ANSWERS``, a table of one check per verb: an
answer outside the contract is an IUT-CONTRACT finding. An adapter whose implementation
died (a daemon exited) raises ``IutCrash``; one that gave up waiting raises ``IutHang``;
``harness.engine.isolation`` raises both for in-process adapters run in a child process.

Adapters plug in through ``harness.loader``; nothing here knows any particular
implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Protocol, runtime_checkable

from spec_model import Delivered, DropReason, Dropped, Profile
from spec_model.errors import EspSpecError

__all__ = ["ANSWERS", "Capabilities", "Delivered", "DropReason", "Dropped", "Iut",
           "IutCrash", "IutError", "IutFactory", "IutHang", "IutRaised", "OPTIONAL_VERBS",
           "Refused", "SaConfig", "contract_violation"]


class IutError(EspSpecError):
    """An adapter could not be loaded, or an IUT misbehaved outside the contract."""


class IutHang(Exception):
    """A verb did not answer within its deadline (IUT-HANG)."""

    def __init__(self, verb: str, seconds: float, detail: str = "") -> None:
        super().__init__(f"{verb} did not answer within {seconds:g} s" +
                         (f" ({detail})" if detail else ""))
        self.verb, self.seconds = verb, seconds


class IutCrash(Exception):
    """The implementation's process or daemon died (IUT-CRASH)."""

    def __init__(self, verb: str, how: str) -> None:
        super().__init__(f"the IUT died during {verb}: {how}")
        self.verb, self.how = verb, how


class IutRaised(Exception):
    """A verb raised an exception in the IUT's own process; carries its type name."""

    def __init__(self, verb: str, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.verb, self.type_name, self.message = verb, type_name, message


@dataclass(frozen=True)
class SaConfig:
    """One direction of a child SA as espspec configures it."""
    profile: Profile
    spi: int                 # base SPI (sub-SA i uses spi | i when the ID is in the SPI)
    keymat: bytes            # as spec_model.keying reads it: key||salt, or a root key


@dataclass(frozen=True)
class Capabilities:
    """What an IUT can do. ``supports`` decides whether a profile can be tested at all."""
    framings: frozenset[str] = frozenset({"esp"})
    aeads: frozenset[str] = frozenset({"aes128gcm16"})
    seq: frozenset[str] = frozenset({"32", "esn"})
    subsa_locations: frozenset[str] = frozenset({"none"})
    nonce_schemes: frozenset[str] = frozenset({"explicit-counter"})
    modes: frozenset[str] = frozenset({"tunnel", "transport"})
    inner_families: frozenset[str] = frozenset({"ipv4", "ipv6"})   # inner packets one
    #                                    tunnel-mode SA carries (suites send only these)
    max_sub_sas: int = 1
    max_crypt_offset: int = 0
    replay_window: int | None = None   # fixed window of the IUT; None: takes the profile's
    max_window: int | None = None      # the largest window it can be configured with
    anti_replay: bool = True
    can_set_counters: bool = False
    reports_drop_reasons: bool = False
    reports_counters: bool = False
    enforces_limits: bool = False      # refuses to send past hard limits
    rekey: bool = False                # has the rekey verb: replaces both SAs in place
    rekey_overlap: bool = False        # after a rekey, still accepts the old inbound SA
    #                                    (the one just replaced, until the next rekey)
    mtu: int | None = None             # the largest payload protect() takes (the tunnel
    #                                    device's MTU); refusing a larger one is no finding
    negotiates_keys: bool = False      # install/rekey answer the (outbound, inbound) SAs
    #                                    the IUT really set up (its own SPIs and keys, as
    #                                    IKE negotiated them); the session judges those
    notes: tuple[str, ...] = field(default=())

    def inner_v6(self, p: Profile) -> tuple[bool, ...]:
        """The inner packets a scenario may send on ``p``, as ``make_payload``'s ``v6``
        flag: IPv4 and IPv6 in tunnel mode (those of ``inner_families``), just one kind
        (the flag is ignored) in transport mode; none when the profile is unsupported."""
        if p.mode.value != "tunnel":
            return (False,)
        return tuple(v6 for v6, family in ((False, "ipv4"), (True, "ipv6"))
                     if family in self.inner_families)

    def unsupported(self, p: Profile) -> str | None:
        """Why a profile cannot run on this IUT, or None."""
        checks = [
            (p.framing.value in self.framings, f"framing {p.framing.value}"),
            (p.aead in self.aeads, f"AEAD {p.aead}"),
            (p.seq.value in self.seq, f"sequence numbers {p.seq.value}"),
            (p.subsa.value in self.subsa_locations, f"sub-SA ID in {p.subsa.value}"),
            (p.nonce.value in self.nonce_schemes, f"nonce scheme {p.nonce.value}"),
            (p.mode.value in self.modes, f"{p.mode.value} mode"),
            (p.mode.value != "tunnel" or bool(self.inner_families), "inner packets"),
            (p.n_sub_sas <= self.max_sub_sas, f"{p.n_sub_sas} sub-SAs"),
            (p.max_crypt_offset <= self.max_crypt_offset, "crypt offset"),
            (self.replay_window in (None, p.window) or not p.replay_protected,
             f"window {p.window} (the IUT's is {self.replay_window})"),
            (self.max_window is None or p.window <= self.max_window
             or not p.replay_protected,
             f"window {p.window} (the IUT's largest is {self.max_window})"),
        ]
        missing = [what for ok, what in checks if not ok]
        return f"IUT lacks {', '.join(missing)}" if missing else None


class Refused(NamedTuple):
    """The IUT declined to protect a packet."""
    requirement: str     # the requirement ID it invokes, or "" when it cannot tell
    detail: str


@runtime_checkable
class Iut(Protocol):
    name: str

    def capabilities(self) -> Capabilities: ...
    def install(self, outbound: SaConfig, inbound: SaConfig) -> None: ...
    def protect(self, sub_sa: int, payload: bytes, next_header: int | None) -> bytes | Refused: ...
    def unprotect(self, wire: bytes) -> Delivered | Dropped: ...
    def set_counter(self, sub_sa: int, value: int) -> None: ...
    def counters(self) -> list[int]: ...
    def rekey_due(self) -> str | None: ...
    def rekey(self, outbound: SaConfig, inbound: SaConfig) -> None: ...
    def evidence(self) -> dict[str, bytes] | None: ...
    def close(self) -> None: ...


IutFactory = Callable[[], Iut]

# --- what each verb may answer -----------------------------------------------------------
UINT64 = (1 << 64) - 1


def _is_uint(v, top: int = UINT64) -> bool:
    return type(v) is int and 0 <= v <= top


def _nothing(v) -> str | None:
    return None                          # set_counter, close: ignored


def _installed(v) -> str | None:
    """install, rekey: nothing, or the (outbound, inbound) SAs the IUT negotiated."""
    if v is None:
        return None
    if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(c, SaConfig) for c in v)):
        return f"returned {_short(v)} where None or an (outbound, inbound) pair of SaConfig was due"
    if v[0].profile != v[1].profile:
        return "returned SAs of two different profiles"
    return None


def _protected(v) -> str | None:
    if isinstance(v, Refused):
        if not (isinstance(v.requirement, str) and isinstance(v.detail, str)):
            return f"returned {v!r}: a Refused takes two strings"
        return None
    if type(v) is not bytes:
        return f"returned {type(v).__name__} where bytes or Refused were due"
    return None if v else "returned empty bytes"


def _outcome(v) -> str | None:
    if isinstance(v, Delivered):
        bad = [name for name, ok in (
            ("sub_sa", v.sub_sa is None or _is_uint(v.sub_sa, 0xFFFF)),
            ("seq", v.seq is None or _is_uint(v.seq)),
            ("payload", type(v.payload) is bytes),
            ("next_header", v.next_header is None or _is_uint(v.next_header, 255)))
            if not ok]
        return (f"returned a Delivered with a bad {', '.join(bad)}: {_short(v)}"
                if bad else None)
    if isinstance(v, Dropped):
        bad = [name for name, ok in (
            ("reason", v.reason is None or isinstance(v.reason, DropReason)),
            ("requirement", isinstance(v.requirement, str)),
            ("detail", isinstance(v.detail, str))) if not ok]
        return f"returned a Dropped with a bad {', '.join(bad)}: {_short(v)}" if bad else None
    return f"returned {type(v).__name__} where Delivered or Dropped was due"


REQUIRED_VERBS = ("capabilities", "install", "protect", "unprotect", "close")


def _iut(v) -> str | None:
    missing = [verb for verb in REQUIRED_VERBS if not callable(getattr(v, verb, None))]
    return (f"built a {type(v).__name__} without the verbs {', '.join(missing)}"
            if missing else None)


def _capabilities(v) -> str | None:
    return None if isinstance(v, Capabilities) else \
        f"returned {type(v).__name__} where Capabilities was due"


def _counters(v) -> str | None:
    if not isinstance(v, (list, tuple)) or not all(_is_uint(c) for c in v):
        return f"returned {_short(v)} where a list of counters (0..2^64-1) was due"
    return None


def _requirement_or_none(v) -> str | None:
    return None if v is None or isinstance(v, str) else \
        f"returned {type(v).__name__} where a requirement ID or None was due"


MAX_EVIDENCE_NAME = 255                  # bytes of a file name (Linux NAME_MAX)


def _evidence(v) -> str | None:
    """evidence: None, or {plain file name: bytes}."""
    if v is None:
        return None
    if not isinstance(v, dict):
        return f"returned {_short(v)} where None or a dict of file name -> bytes was due"
    for name, content in v.items():
        if not (type(name) is str and name not in ("", ".", "..") and name.isprintable()
                and "/" not in name and "\\" not in name
                and len(name.encode("utf-8", "replace")) <= MAX_EVIDENCE_NAME):
            return f"returned a file name {_short(name)} that is not a plain file name"
        if type(content) is not bytes:
            return (f"returned {type(content).__name__} for the file {name!r} where "
                    f"bytes were due")
    return None


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "..."


ANSWERS: dict[str, Callable[[object], str | None]] = {
    "constructor": _iut, "capabilities": _capabilities, "install": _installed,
    "protect": _protected, "unprotect": _outcome, "set_counter": _nothing,
    "counters": _counters, "rekey_due": _requirement_or_none, "rekey": _installed,
    "close": _nothing, "evidence": _evidence,
}
OPTIONAL_VERBS = ("set_counter", "counters", "rekey_due", "rekey", "evidence")


def contract_violation(verb: str, value) -> str | None:
    """What is wrong with ``value`` as the answer of ``verb``, or None."""
    check = ANSWERS.get(verb)
    return check(value) if check is not None else None
