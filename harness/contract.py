"""The implementation-under-test (IUT) contract.

Theory of operation: espspec drives an implementation through five verbs and judges every
answer against the model. An adapter wraps one implementation (an in-process library, a
daemon, a capture) behind ``Iut``:

* ``capabilities()`` says what it can do; a case it rules out is UNSUPPORTED, never PASS.
* ``install(outbound, inbound)`` sets up one child SA per direction from ``SaConfig``s:
  the profile (with its N sub-SAs, window and limits), the base SPI and the key material.
* ``protect(sub_sa, payload, next_header)`` returns the packet bytes from the first
  (E)ESP/PSP header byte to the ICV, or a ``Refused`` (limit reached, counter exhausted,
  sub-SA out of range) — never an exception for a refusal.
* ``unprotect(wire)`` returns ``Delivered`` (payload, next header; sub-SA and SN when the
  IUT knows them) or ``Dropped`` (reason when the IUT can tell, else ``None``).
* optional ``set_counter(sub_sa, value)`` and ``counters()``; ``close()`` always.

Adapters plug in through ``harness.loader``; nothing here knows any particular
implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Protocol, runtime_checkable

from spec_model import Delivered, DropReason, Dropped, Profile
from spec_model.errors import EspSpecError

__all__ = ["Capabilities", "Delivered", "DropReason", "Dropped", "Iut", "IutError",
           "IutFactory", "Refused", "SaConfig"]


class IutError(EspSpecError):
    """An adapter could not be loaded, or an IUT misbehaved outside the contract."""


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
    max_sub_sas: int = 1
    max_crypt_offset: int = 0
    replay_window: int | None = None   # fixed window of the IUT; None: takes the profile's
    anti_replay: bool = True
    can_set_counters: bool = False
    reports_drop_reasons: bool = False
    reports_counters: bool = False
    enforces_limits: bool = False      # refuses to send past hard limits
    notes: tuple[str, ...] = field(default=())

    def unsupported(self, p: Profile) -> str | None:
        """Why a profile cannot run on this IUT, or None."""
        checks = [
            (p.framing.value in self.framings, f"framing {p.framing.value}"),
            (p.aead in self.aeads, f"AEAD {p.aead}"),
            (p.seq.value in self.seq, f"sequence numbers {p.seq.value}"),
            (p.subsa.value in self.subsa_locations, f"sub-SA ID in {p.subsa.value}"),
            (p.nonce.value in self.nonce_schemes, f"nonce scheme {p.nonce.value}"),
            (p.mode.value in self.modes, f"{p.mode.value} mode"),
            (p.n_sub_sas <= self.max_sub_sas, f"{p.n_sub_sas} sub-SAs"),
            (p.max_crypt_offset <= self.max_crypt_offset, "crypt offset"),
            (self.replay_window in (None, p.window) or not p.replay_protected,
             f"window {p.window} (the IUT's is {self.replay_window})"),
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
    def close(self) -> None: ...


IutFactory = Callable[[], Iut]
