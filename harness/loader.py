"""Finding an implementation's adapter by the name a user gives (``--iut``).

Theory of operation: every adapter, built in or a vendor's, is found the same way, through
Python entry points, so this module imports none of them:

* ``NAME`` is an entry point in the group ``espspec.iut`` whose object is an IUT factory
  (a class works). espspec itself declares ``reference`` and ``scapy`` there.
* ``FAMILY:ARG`` is an entry point ``FAMILY`` in the group ``espspec.iut_family``: a
  callable that takes ``ARG`` and returns a factory. espspec declares ``mutant`` there
  (``mutant:window-too-wide``).
* ``module:factory`` is any importable callable (``examples.toy_iut:ToyEsp``); the current
  directory is searched too, as ``python -m`` does, so a checkout's own modules load.

Entry points are read from installed package metadata: ``pip install -e .`` registers
espspec's own.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

from .contract import IutError, IutFactory

GROUP = "espspec.iut"
FAMILY_GROUP = "espspec.iut_family"


def names() -> list[str]:
    """The IUT names the entry points offer (families as ``FAMILY:...``)."""
    return sorted([ep.name for ep in entry_points(group=GROUP)]
                  + [f"{ep.name}:..." for ep in entry_points(group=FAMILY_GROUP)])


def _entry(group: str, name: str):
    for ep in entry_points(group=group):
        if ep.name == name:
            try:
                return ep.load()
            except Exception as e:
                raise IutError(f"cannot load IUT {name!r} ({ep.value}): "
                               f"{type(e).__name__}: {e}") from None
    return None


def load_iut(spec: str) -> IutFactory:
    """A factory for ``NAME``, ``FAMILY:ARG`` or ``module:factory``; ``IutError`` names
    what is wrong."""
    if not spec:
        raise IutError("no IUT named")
    found = _entry(GROUP, spec)
    if found is not None:
        return found
    prefix, colon, rest = spec.partition(":")
    if colon:
        family = _entry(FAMILY_GROUP, prefix)
        if family is not None:
            return family(rest)
        return _import(prefix, rest, spec)
    known = ", ".join(names()) or "none (is espspec installed? pip install -e .)"
    raise IutError(f"unknown IUT {spec!r}: use a name ({known}) or module:factory")


def _import(module: str, attr: str, spec: str) -> IutFactory:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as e:
        raise IutError(f"cannot load IUT {spec!r}: {type(e).__name__}: {e}") from None
    if not callable(obj):
        raise IutError(f"cannot load IUT {spec!r}: {attr} is not callable")
    return obj
