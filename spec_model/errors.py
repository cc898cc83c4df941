"""Exception classes of the model, one per way input can be wrong.

Theory of operation: the model never lets IndexError or struct.error escape. Every
refusal is one of the classes below, and every class names the requirement ID (see
``requirements.py``) of the rule the input broke, so that a caller can turn an exception
into a finding without parsing its message. Nothing here does any I/O.
"""

from __future__ import annotations


class EspSpecError(Exception):
    """Base class of everything the model raises on purpose."""

    #: requirement ID the refusal enforces (overridden per class or per instance)
    requirement: str = ""

    def __init__(self, message: str, *, requirement: str | None = None) -> None:
        super().__init__(message)
        if requirement is not None:
            self.requirement = requirement


# --- profiles and configuration ---------------------------------------------------------


class ProfileError(EspSpecError):
    """A profile that cannot be used. ``rule`` names the validation rule it broke."""

    def __init__(self, rule: str, message: str, *, requirement: str) -> None:
        super().__init__(f"{rule}: {message}", requirement=requirement)
        self.rule = rule


class InsecureProfile(ProfileError):
    """A combination that works on the wire but breaks confidentiality or integrity."""


class ImpossibleProfile(ProfileError):
    """A combination that cannot be encoded, or that no conforming peer could accept."""


class UnknownProfile(EspSpecError):
    """A profile name that is not in the table of named profiles."""


class ConfigError(EspSpecError):
    """SA configuration that does not fit its profile (key length, SPI alignment, ...)."""


# --- decoding ----------------------------------------------------------------------------


class DecodeError(EspSpecError):
    """Malformed bytes. ``offset`` is the byte offset in the packet where it was noticed."""

    reason: str = "malformed"

    def __init__(self, message: str, *, offset: int | None = None,
                 requirement: str | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{self.reason}{where}: {message}", requirement=requirement)
        self.offset = offset


class Truncated(DecodeError):
    reason = "truncated"
    requirement = "WIRE-TRUNCATED"


class BadFixedBit(DecodeError):
    reason = "fixed bit"
    requirement = "WIRE-EESP-BASE"


class BadVersion(DecodeError):
    reason = "bad version"
    requirement = "WIRE-VERSION"


class ReservedBitsSet(DecodeError):
    reason = "reserved bits set"
    requirement = "WIRE-RESERVED-ZERO"


class OptionOverrun(DecodeError):
    reason = "option overrun"
    requirement = "WIRE-EESP-OPTIONS"


class BadOption(DecodeError):
    reason = "bad option"
    requirement = "WIRE-EESP-OPTIONS"


class PayloadOffsetMismatch(DecodeError):
    reason = "payload offset mismatch"
    requirement = "WIRE-EESP-OPTIONS"


class CryptOffsetBeyondPayload(DecodeError):
    reason = "crypt offset beyond payload"
    requirement = "CRYPTOFF-WITHIN-PAYLOAD"


class CryptOffsetAboveMaximum(DecodeError):
    reason = "crypt offset above maximum"
    requirement = "CRYPTOFF-MAX"


class PadLengthTooLong(DecodeError):
    reason = "pad length too long"
    requirement = "WIRE-PAD-LENGTH"


class BadPadding(DecodeError):
    reason = "wrong padding content"
    requirement = "PAD-CONTENT-CHECK"


class Misaligned(DecodeError):
    reason = "misaligned"
    requirement = "WIRE-ALIGN"


class BadInnerPacket(DecodeError):
    reason = "bad inner packet"
    requirement = "WIRE-EESP-OPTIMIZED"


class UnknownSpi(DecodeError):
    reason = "unknown SPI"
    requirement = "SPI-UNKNOWN-DROP"


# --- cryptography ------------------------------------------------------------------------


class IcvMismatch(EspSpecError):
    """The AEAD rejected the ICV: wrong key, nonce, AAD, ciphertext or ICV."""

    requirement = "ICV-VERIFY"


# --- sending -----------------------------------------------------------------------------


class SendRefused(EspSpecError):
    """The sender refuses to protect a packet; the message says which limit."""


class SubSaOutOfRange(SendRefused):
    requirement = "SUBSA-ID-RANGE"


class CounterExhausted(SendRefused):
    requirement = "SEQ-NO-WRAP"


class HardLimitReached(SendRefused):
    requirement = "LIMIT-HARD-PER-SUBSA"
