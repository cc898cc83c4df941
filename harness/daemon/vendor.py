"""The daemon description: how a vendor names a daemon to espspec (``espspec-daemon/1``).

Theory of operation: a vendor plugs a daemon in with one JSON file and no Python
(``--iut daemon:FILE``). The file says how to start the daemon, what it prints, what it
can do; ``read`` checks it and returns a ``DaemonSpec``, raising exactly one
``DaemonSpecError`` subclass per way the file can be wrong, with a one-line message that
names the file and the field. Fields (docs/adapters.md, "A daemon"):

* ``schema`` -- the literal ``espspec-daemon/1``.
* ``name``, ``version`` -- what was tested, as the results will say it.
* ``command`` -- argv; the word ``{sa_file}`` becomes the SA file's absolute path
  (``safile``). Run inside the namespace of end a, in the run's working folder.
* ``encapsulation`` -- ``udp`` (default: ESP in UDP, EESP and PSP over UDP) or ``esp``
  (raw IP protocol 50; classic ESP only).
* ``rekey`` -- ``sighup`` (rewrite the SA file, SIGHUP, wait for ``READY generation=N``)
  or ``restart`` (stop the daemon, start it on the new file).
* ``event_lines`` -- true when the daemon prints the reporting lines of docs/daemon.md
  (then a drop is known at once); false: a bounded wait decides (``drop_wait``).
* ``control`` -- true when it answers the control lines on stdin (``SUB-SA K``,
  ``SET-COUNTER K V``, ``COUNTERS``); without them a daemon cannot be steered to a
  sub-SA, so ``max_sub_sas`` must be 1.
* ``ready_timeout``, ``drop_wait``, ``send_wait`` -- seconds: for ``READY``; for a
  packet to come out of the TUN device before it counts as dropped; for a protected
  packet to reach the relay before it counts as refused.
* ``capabilities`` -- the fields of ``harness.contract.Capabilities`` (sets as arrays).

The reference daemon's own description is built by the adapter
(``harness.adapters.tun_daemon.reference_spec``). Nothing here starts a process.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields

from spec_model.errors import EspSpecError

from ..contract import Capabilities

__all__ = ["BadCapability", "BadCommand", "BadValue", "DaemonSpec", "DaemonSpecError",
           "MissingField", "NotJson", "SCHEMA", "UnknownField", "Unreadable",
           "WrongSchema", "WrongType", "parse", "read"]

SCHEMA = "espspec-daemon/1"
REKEYS = ("sighup", "restart")


class DaemonSpecError(EspSpecError):
    """A daemon description that cannot start a daemon."""


class Unreadable(DaemonSpecError):
    """The file cannot be read, or is not UTF-8."""


class NotJson(DaemonSpecError):
    """Not one JSON object."""


class WrongSchema(DaemonSpecError):
    """``schema`` is missing or is not ``espspec-daemon/1``."""


class MissingField(DaemonSpecError):
    """A required field is absent."""


class UnknownField(DaemonSpecError):
    """A field the schema does not have."""


class WrongType(DaemonSpecError):
    """A field of the wrong JSON type."""


class BadCommand(DaemonSpecError):
    """An empty command, or one without ``{sa_file}``."""


class BadCapability(DaemonSpecError):
    """A capability that is not a ``Capabilities`` field, or not of its type, or one
    the daemon cannot offer (sub-SAs without ``control``)."""


class BadValue(DaemonSpecError):
    """An unknown rekey method or encapsulation, or a wait that is not a positive
    number."""


@dataclass(frozen=True)
class DaemonSpec:
    name: str
    version: str
    command: tuple[str, ...]
    rekey: str = "sighup"
    encapsulation: str = "udp"
    event_lines: bool = False
    control: bool = False
    ready_timeout: float = 10.0
    drop_wait: float = 0.25
    send_wait: float = 1.0
    capabilities: Capabilities = Capabilities()

    def argv(self, sa_file: str) -> list[str]:
        return [w.replace("{sa_file}", sa_file) for w in self.command]


_REQUIRED = ("schema", "name", "version", "command", "capabilities")
_OPTIONAL = {"rekey": str, "encapsulation": str, "event_lines": bool, "control": bool, "ready_timeout": float,
             "drop_wait": float, "send_wait": float}
_SET_FIELDS = {f.name for f in fields(Capabilities) if f.type.startswith("frozenset")}


def read(path: str | os.PathLike) -> DaemonSpec:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as e:
        raise Unreadable(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise Unreadable(f"{path}: not UTF-8 (byte {e.start})") from None
    return parse(text, path)


def _kind(v) -> str:
    return {type(None): "null", bool: "a boolean", int: "an integer", float: "a number",
            str: "a string", list: "an array", dict: "an object"}.get(type(v), "a value")


def parse(text: str, where: str = "<daemon description>") -> DaemonSpec:
    def fail(cls, field, why):
        return cls(f"{where}: {field}: {why}" if field else f"{where}: {why}")

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise fail(NotJson, "", f"not JSON: {e.msg} at line {e.lineno} column {e.colno}"
                   ) from None
    if type(doc) is not dict:
        raise fail(NotJson, "", f"expected one JSON object, got {_kind(doc)}")
    if doc.get("schema") != SCHEMA:
        raise fail(WrongSchema, "schema", f"expected {SCHEMA!r}, got {doc.get('schema')!r}")
    for k in _REQUIRED:
        if k not in doc:
            raise fail(MissingField, k, "missing")
    extra = sorted(set(doc) - set(_REQUIRED) - set(_OPTIONAL))
    if extra:
        raise fail(UnknownField, extra[0], f"not in {SCHEMA}")
    for k in ("name", "version"):
        if type(doc[k]) is not str or not doc[k]:
            raise fail(WrongType, k, f"expected a non-empty string, got {_kind(doc[k])}")
    cmd = doc["command"]
    if type(cmd) is not list or not all(type(w) is str for w in cmd):
        raise fail(WrongType, "command", f"expected an array of strings, got {_kind(cmd)}")
    if not cmd or not cmd[0]:
        raise fail(BadCommand, "command", "empty")
    if not any("{sa_file}" in w for w in cmd):
        raise fail(BadCommand, "command", "no {sa_file}: the daemon would not know its SAs")
    options = {}
    for k, kind in _OPTIONAL.items():
        if k not in doc:
            continue
        v = doc[k]
        ok = (type(v) in (int, float) and not isinstance(v, bool)) if kind is float \
            else type(v) is kind
        if not ok:
            raise fail(WrongType, k, f"expected {'a number' if kind is float else _kind(kind())}"
                       f", got {_kind(v)}")
        if kind is float and not v > 0:
            raise fail(BadValue, k, f"{v}: must be a positive number of seconds")
        options[k] = float(v) if kind is float else v
    if options.get("rekey", "sighup") not in REKEYS:
        raise fail(BadValue, "rekey", f"{options['rekey']!r}: expected one of "
                   f"{', '.join(REKEYS)}")
    if options.get("encapsulation", "udp") not in ("udp", "esp"):
        raise fail(BadValue, "encapsulation", f"{options['encapsulation']!r}: expected "
                   f"udp or esp")
    caps = _capabilities(doc["capabilities"], fail)
    if options.get("encapsulation") == "esp" and caps.framings - {"esp"}:
        raise fail(BadCapability, "capabilities.framings", "raw protocol 50 carries "
                   "classic ESP only")
    if caps.max_sub_sas > 1 and not options.get("control", False):
        raise fail(BadCapability, "capabilities.max_sub_sas", f"{caps.max_sub_sas} sub-SAs "
                   f"need control (SUB-SA K) to steer a packet to one")
    if caps.can_set_counters and not options.get("control", False):
        raise fail(BadCapability, "capabilities.can_set_counters", "needs control "
                   "(SET-COUNTER K V)")
    return DaemonSpec(name=doc["name"], version=doc["version"], command=tuple(cmd),
                      capabilities=caps, **options)


def _capabilities(doc, fail) -> Capabilities:
    if type(doc) is not dict:
        raise fail(WrongType, "capabilities", f"expected an object, got {_kind(doc)}")
    by_name = {f.name: f for f in fields(Capabilities)}
    values = {}
    for k, v in doc.items():
        where = f"capabilities.{k}"
        if k not in by_name:
            raise fail(BadCapability, where, f"not a capability (known: "
                       f"{', '.join(sorted(by_name))})")
        if k in _SET_FIELDS or k == "notes":
            if type(v) is not list or not all(type(x) is str for x in v):
                raise fail(BadCapability, where, f"expected an array of strings, got {_kind(v)}")
            values[k] = frozenset(v) if k in _SET_FIELDS else tuple(v)
        elif by_name[k].type == "bool":
            if type(v) is not bool:
                raise fail(BadCapability, where, f"expected a boolean, got {_kind(v)}")
            values[k] = v
        else:                                  # int, or int | None (replay_window)
            nullable = "None" in by_name[k].type
            if not ((v is None and nullable) or (type(v) is int and v >= 0)):
                raise fail(BadCapability, where, f"expected an integer >= 0"
                           f"{' or null' if nullable else ''}, got {_kind(v)}")
            values[k] = v
    return Capabilities(**values)

