"""What every mutant is built from: the mutant IUT base class, the registry, and the
mixin that swaps one collaborator of the model's Sender or Receiver.

Theory of operation: a mutant is the reference IUT with one piece replaced. The pieces a
``spec_model.Sender`` / ``Receiver`` is made of are set in their ``__init__``: the keying
(which key and salt a sub-SA uses), the header codec (encoding, decoding, AAD) and the body
layout (trailer, Payload Info Header, padding). ``Pieces`` lets a subclass name a
replacement for any of them as a class attribute, so most mutants are a few lines: a small
subclass of one collaborator, and a Sender or Receiver subclass that points at it. Bugs
that live in the Sender's or Receiver's own logic override one method instead.

``register`` records a mutant class under the name it sets (``name = "mutant:NAME"``) with
its ``MutantInfo``: family, the bug in one line, the requirement IDs that should catch it
and the named profiles on which it is observable. It refuses unknown requirement IDs and
profile names, so the table cannot drift from the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from spec_model import CATALOGUE, NAMED, Framing, Profile
from spec_model.keying import Keying

from ..adapters.reference import ReferenceIut

FAMILIES = ("nonce", "replay", "limits", "wire")


@dataclass(frozen=True)
class MutantInfo:
    name: str                      # kebab-case; the IUT is ``mutant:<name>``
    family: str                    # one of FAMILIES
    bug: str                       # the seeded bug, one line
    requirements: tuple[str, ...]  # requirement IDs whose checks should catch it
    profiles: tuple[str, ...]      # named profiles on which the bug is observable
    needs: str = ""                # profile settings beyond the named ones that expose it


MUTANTS: dict[str, type] = {}
MUTANT_INFO: dict[str, MutantInfo] = {}


def register(*, family: str, bug: str, requirements: tuple[str, ...],
             profiles: tuple[str, ...], needs: str = ""):
    """Class decorator: file a mutant IUT class under the name it sets."""
    def file(cls: type) -> type:
        full = cls.__dict__.get("name", "")
        if not full.startswith("mutant:"):
            raise TypeError(f"{cls.__name__} must set name = 'mutant:<name>'")
        name = full.removeprefix("mutant:")
        problems = ([f"family {family!r}"] if family not in FAMILIES else []) + \
            [f"requirement {r!r}" for r in requirements if r not in CATALOGUE] + \
            [f"profile {p!r}" for p in profiles if p not in NAMED] + \
            ([f"duplicate name {name!r}"] if name in MUTANTS else [])
        if problems or not requirements:
            raise ValueError(f"mutant {name}: {', '.join(problems) or 'no requirements'}")
        MUTANTS[name] = cls
        MUTANT_INFO[name] = MutantInfo(name, family, bug, tuple(requirements),
                                       tuple(profiles), needs)
        return cls
    return file


class MutantIut(ReferenceIut):
    """The reference IUT (with its optional verbs ``rekey_due`` and ``rekey``). Every
    mutant derives from this class."""

    name = "mutant"


class Pieces:
    """Mixin for ``spec_model.Sender`` and ``Receiver``: replace collaborators after the
    model's ``__init__``. Whatever is left at its default keeps the model's piece.

    * ``keying_class`` — a ``Keying`` subclass, built as ``Keying(profile, keymat, spi)``;
    * ``codec_class`` — a class built as ``codec_class(profile)``;
    * ``layouts`` — body layout per framing (framings not listed keep the model's).
    """

    keying_class: type[Keying] | None = None
    codec_class = None
    layouts: Mapping[Framing, type] = {}

    def __init__(self, profile: Profile, keymat: bytes, spi: int) -> None:
        super().__init__(profile, keymat, spi)
        if self.keying_class is not None:
            self.keying = self.keying_class(profile, keymat, spi)
        if self.codec_class is not None:
            self.codec = self.codec_class(profile)
        self.layout = self.layouts.get(profile.framing, self.layout)


class CipherWrappingKeying(Keying):
    """Keying whose ciphers are wrapped by ``wrap`` (one wrapper per cipher object)."""

    def __init__(self, profile: Profile, keymat: bytes, base_spi: int) -> None:
        super().__init__(profile, keymat, base_spi)
        self._wrapped: dict[int, object] = {}

    def wrap(self, cipher):
        return cipher

    def get(self, sub_sa: int):
        cipher, salt, key_id = super().get(sub_sa)
        wrapped = self._wrapped.get(id(cipher))
        if wrapped is None:
            wrapped = self._wrapped[id(cipher)] = self.wrap(cipher)
        return wrapped, salt, key_id
