"""Seeded-bug mutants of the reference IUT: proof that the suites can tell a bug.

Theory of operation: a mutant is the reference IUT (``harness.adapters.reference``, the
model behind the IUT contract) with exactly one bug seeded into it. Each is a subclass of
``base.MutantIut`` (itself a ``ReferenceIut``) that points ``sender_class`` or
``receiver_class`` at a small subclass of ``spec_model.Sender`` / ``Receiver``; those in
turn override one method or swap one collaborator (keying, codec, body layout, replay
window) for a subclass that differs in one decision. Nothing else changes: the mutant
claims the reference's capabilities, so every suite runs against it, and a suite that
passes the reference but not the mutant has "killed" it.

Names are short kebab-case descriptions of the bug (``window-too-wide``); the IUT is
``mutant:<name>`` (``--iut mutant:window-too-wide``) and the class sets that as its
``name``. ``MUTANTS`` maps names to IUT classes (``harness.loader`` resolves ``mutant:NAME``
through the ``espspec.iut_family`` entry point ``mutant``, which is ``factory``); ``MUTANT_INFO`` holds one ``MutantInfo`` per mutant: its family (``nonce``,
``replay``, ``limits``, ``wire``; one module each), the bug in one line, the requirement
IDs (``spec_model.requirements``) whose checks should catch it, the named profiles on
which it is observable, and ``needs``, the profile settings that expose it beyond those
(the limits mutants need profiles with hard or soft limits). A requirement listed there
is the rule broken, not necessarily the one the judge names when it first notices: a
missing AAD byte may first show as an ICV failure.

Mutants sometimes break both ends (a wrong AAD built by the sender and expected by the
receiver), because a real implementation shares that code; each still has one bug.
``rekey_due()`` is an optional IUT verb (the reference has it; suites look for it with
``getattr(iut, "rekey_due", None)`` and compare it with the model's ``Sender.rekey_due``).
So is ``rekey(outbound, inbound)`` (``Capabilities.rekey``): the module ``rekey`` holds the
mutants whose rekey carries old state into the new SA, filed under ``limits`` and
``replay``.
``selfcheck.demonstrate(name)`` runs a hand-written scenario that shows each mutant
differing from the reference.
"""

from __future__ import annotations

# importing a family module registers its mutants, in this order
from . import nonce, replay, limits, wire, rekey  # noqa: F401, I001
from .base import FAMILIES, MUTANT_INFO, MUTANTS, MutantInfo, MutantIut

__all__ = ["FAMILIES", "MUTANTS", "MUTANT_INFO", "MutantInfo", "MutantIut", "factory"]


def factory(name: str) -> type[MutantIut]:
    """The IUT class of mutant ``name`` (the ``espspec.iut_family`` entry point)."""
    from ..contract import IutError
    if name not in MUTANTS:
        raise IutError(f"unknown mutant {name!r}; known: {', '.join(sorted(MUTANTS))}")
    return MUTANTS[name]
