"""What a results document may contain, checked before anything in it is used.

Theory of operation: a results file is input from outside. It may be truncated, damaged
or written to hurt whoever replays it, so ``read_document`` treats it as hostile:

1. At most ``MAX_FILE_BYTES`` are read, and before parsing the bytes that open a JSON
   value (``,``, ``[``, ``{``) are counted: at most ``MAX_VALUES``, so that the parser's
   allocations stay proportional to a legitimate report, not to what a file can pack
   into 256 MiB. Deep nesting, NaN, and integers too long to convert are parse errors.
2. ``validate_document`` checks the top level for the schema versions this module reads
   (``espspec-results/1`` and ``/2``), then every case entry, and in every entry every
   step against ``STEP_ARGS``: per step verb of the engine (``Session`` methods, the
   names in ``harness.engine.session.VERBS``), the argument names, their JSON types and
   their bounds. A step's arguments become keyword arguments of a ``Session`` method,
   so nothing that is not in the table gets through. ``ran_profile`` is checked axis by
   axis against ``Profile``'s fields before a ``Profile`` is built from it. An entry's
   optional ``evidence`` is a folder of the report, relative to it, of the form
   ``evidence/<profile>/<case>`` (``EVIDENCE_PATH``): never absolute, never ``..``, so
   a reader that opens it stays inside the report folder.
3. ``check_steps_fit`` checks what only the profile the steps run on can tell: a counter
   jump names an existing sub-SA, a step that takes an in-flight packet has one (an
   upper bound: every ``peer_send`` counted as sent), and the packets ``hold_past_window``
   makes stay within ``MAX_WORK``. ``check_profile_fits`` bounds the replay windows'
   bitmaps (``MAX_WINDOW_BYTES``).

Every refusal is one exception class per way the file is wrong, each an ``EspSpecError``
whose message is one line and quotes at most ``SHOWN`` characters of what it found, so
the command line prints it as ``espspec: ...`` with exit status 2. Nothing here imports
an IUT, runs a step or prints.
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
import typing
from dataclasses import dataclass, fields
from pathlib import Path

from spec_model import Profile
from spec_model.errors import EspSpecError

from ..engine.judge import Verdict

SCHEMA_V1 = "espspec-results/1"
SCHEMA_V2 = "espspec-results/2"
READABLE = (SCHEMA_V1, SCHEMA_V2)

MAX_FILE_BYTES = 256 << 20          # bytes read from a results file
MAX_VALUES = 4_000_000              # JSON values (upper bound: count of , [ {) in a file
MAX_CASES = 100_000
MAX_STEPS = 100_000                 # per case
MAX_FINDINGS = 100_000              # per case
MAX_LIST = 10_000                   # requirements, profiles, argv, ... lists
MAX_WORK = 1 << 22                  # packets the steps of one case may make the engine seal
MAX_WINDOW_BYTES = 1 << 26          # replay-window bitmaps: (W / 8 + 1) bytes per sub-SA
U16 = 65535
U32 = 1 << 32
U64 = 1 << 64
MAX_HEX = 2 * U16                   # hex digits of a hand-built packet (65535 bytes)
MAX_IDENT = 200                     # case IDs, profile names, requirement IDs, session label
MAX_LABEL = 4096                    # labels of hand-built packets
MAX_TEXT = 1 << 16                  # messages, the IUT spec, other free text
SHOWN = 60                          # characters of a bad value quoted in a message

VERDICTS = frozenset(v.value for v in Verdict)
#: a case's evidence folder, relative to the report folder (``document.evidence_path``)
EVIDENCE_PATH = re.compile(r"evidence(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,119}){2}")
#: the ways ``Session.change`` alters an in-flight packet (``deliver_changed`` ``how``)
CHANGES = frozenset({"flip", "forge-seq", "relabel"})


# --- refusals -------------------------------------------------------------------------------

class ResultsFileError(EspSpecError):
    """Base class: the results file cannot be used."""


class ResultsTooLarge(ResultsFileError):
    """More bytes, or more JSON values, than any results document espspec writes."""


class NotJson(ResultsFileError):
    """The file is not (complete, UTF-8, finite, not absurdly nested) JSON."""


class WrongSchema(ResultsFileError):
    """The JSON is not an object with a ``schema`` this version of espspec reads."""


class BadDocument(ResultsFileError):
    """A top-level field (iut, seed, strict, cases, record, ...) is missing or wrong."""


class BadCase(ResultsFileError):
    """A case entry (identity, verdict, findings, ran_profile, session, evidence) is
    wrong."""


class BadStep(ResultsFileError):
    """A step has an unknown verb, unknown or missing arguments, or a value out of bounds,
    or it cannot run on the profile of its case."""


def show(value: object) -> str:
    """A value for an error message: one line, at most ``SHOWN`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, (list, dict)):
        return f"a JSON {'array' if isinstance(value, list) else 'object'} of {len(value)} items"
    if isinstance(value, str) and len(value) > SHOWN:
        return f"a string of {len(value)} characters starting {value[:SHOWN - 20]!r}"
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def _kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


# --- the step table ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Arg:
    """One argument of a step: its JSON kind and bounds.

    ``kind`` is ``int`` (``lo`` <= value <= ``hi``), ``bool``, ``hex`` (an even number of
    hex digits, at most ``hi``), ``label`` (printable text of at most ``hi`` characters) or
    ``choice`` (one of ``choices``). ``existing`` (``int`` only): a sub-SA index that must
    be below the profile's number of sub-SAs, because the engine indexes per-sub-SA state
    with it. ``required`` False: the ``Session`` method has a default."""
    kind: str
    lo: int = 0
    hi: int = 0
    required: bool = True
    choices: frozenset[str] = frozenset()
    existing: bool = False


SUB_SA = Arg("int", 0, U16)
SUB_SA_STATE = Arg("int", 0, U16, existing=True)
SIZE = Arg("int", 0, U16)
INDEX = Arg("int", -U32, U32)           # Python indexing: -1 is the newest packet in flight
V6 = Arg("bool", required=False)

#: per step verb (``Session`` method), its arguments
STEP_ARGS: dict[str, dict[str, Arg]] = {
    "iut_send": {"sub_sa": SUB_SA, "size": SIZE, "v6": V6},
    "peer_send": {"sub_sa": SUB_SA, "size": SIZE, "v6": V6},
    "deliver": {"index": INDEX},
    "deliver_bytes": {"wire": Arg("hex", hi=MAX_HEX),
                      "label": Arg("label", hi=MAX_LABEL, required=False)},
    "duplicate": {"index": INDEX},
    "drop": {"index": INDEX},
    "deliver_changed": {"index": INDEX, "how": Arg("choice", choices=CHANGES),
                        "value": Arg("int", 0, U64)},
    "hold_past_window": {"sub_sa": SUB_SA, "extra": Arg("int", -U16, U16)},
    "jump_iut": {"sub_sa": SUB_SA_STATE, "value": Arg("int", 0, U64)},
    "jump_peer": {"sub_sa": SUB_SA_STATE, "delta": Arg("int", 0, U64)},
    "rekey": {},
}
#: steps that take a packet from the in-flight list (and need one there)
TAKES_IN_FLIGHT = frozenset({"deliver", "duplicate", "drop", "deliver_changed"})

_HEX = re.compile(r"[0-9a-fA-F]*")


def _check_arg(verb: str, name: str, spec: Arg, value: object) -> None:
    def bad(why: str) -> BadStep:
        return BadStep(f"{verb} {name} {why}")
    if spec.kind == "int":
        if type(value) is not int:
            raise bad(f"must be an integer, not {_kind(value)} {show(value)}")
        if not spec.lo <= value <= spec.hi:
            raise bad(f"{show(value)} is outside {spec.lo}..{spec.hi}")
    elif spec.kind == "bool":
        if type(value) is not bool:
            raise bad(f"must be true or false, not {_kind(value)} {show(value)}")
    elif spec.kind == "hex":
        if type(value) is not str:
            raise bad(f"must be a hex string, not {_kind(value)} {show(value)}")
        if len(value) > spec.hi:
            raise bad(f"has {len(value)} hex digits, more than {spec.hi}")
        if len(value) % 2 or not _HEX.fullmatch(value):
            raise bad(f"is not an even number of hex digits: {show(value)}")
    elif spec.kind == "label":
        if type(value) is not str:
            raise bad(f"must be a string, not {_kind(value)} {show(value)}")
        if len(value) > spec.hi:
            raise bad(f"has {len(value)} characters, more than {spec.hi}")
        if not value.isprintable():
            raise bad(f"has unprintable characters: {show(value)}")
    elif spec.kind == "choice":
        if type(value) is not str or value not in spec.choices:
            raise bad(f"{show(value)} is not one of {', '.join(sorted(spec.choices))}")
    else:  # pragma: no cover - a table entry this function does not know
        raise AssertionError(f"unknown argument kind {spec.kind!r}")


def validate_step(step: object) -> tuple[str, dict]:
    """One step entry (``{"step": VERB, ARG: VALUE, ...}``) as ``(verb, kwargs)``."""
    if type(step) is not dict:
        raise BadStep(f"a step must be an object, not {_kind(step)} {show(step)}")
    verb = step.get("step")
    if type(verb) is not str or verb not in STEP_ARGS:
        raise BadStep(f"unknown step {show(verb)}; known: {', '.join(sorted(STEP_ARGS))}")
    table = STEP_ARGS[verb]
    kwargs = {k: v for k, v in step.items() if k != "step"}
    unknown = [k for k in kwargs if k not in table]
    if unknown:
        raise BadStep(f"{verb} has no argument {show(unknown[0])}")
    missing = [k for k, spec in table.items() if spec.required and k not in kwargs]
    if missing:
        raise BadStep(f"{verb} lacks argument {missing[0]}")
    for name, value in kwargs.items():
        _check_arg(verb, name, table[name], value)
    return verb, kwargs


def validate_steps(steps: object) -> tuple[tuple[str, dict], ...]:
    if type(steps) is not list:
        raise BadStep(f"steps must be an array, not {_kind(steps)}")
    if len(steps) > MAX_STEPS:
        raise BadStep(f"{len(steps)} steps, more than {MAX_STEPS}")
    out = []
    for i, step in enumerate(steps):
        try:
            out.append(validate_step(step))
        except BadStep as e:
            raise BadStep(f"step {i}: {e}") from None
    return tuple(out)


def check_steps_fit(steps: tuple[tuple[str, dict], ...] | list, profile: Profile) -> None:
    """What the profile the steps run on decides: existing sub-SAs, a packet in flight for
    the steps that take one, and the work ``hold_past_window`` makes (``MAX_WORK``)."""
    in_flight = 0            # at most this many packets are in flight
    work = 0
    for i, (verb, kwargs) in enumerate(steps):
        for name, spec in STEP_ARGS[verb].items():
            if spec.existing and kwargs.get(name, 0) >= profile.n_sub_sas:
                raise BadStep(f"step {i}: {verb} {name} {kwargs[name]} names no sub-SA of "
                              f"profile {profile.name} ({profile.n_sub_sas} sub-SAs)")
        if verb in TAKES_IN_FLIGHT and in_flight == 0:
            raise BadStep(f"step {i}: {verb} with no packet in flight")
        if verb == "peer_send" or verb == "duplicate":
            in_flight += 1
        elif verb in ("deliver", "drop"):
            in_flight -= 1
        work += 1
        if verb == "hold_past_window":
            work += max(0, profile.window + kwargs["extra"]) + 1
        if work > MAX_WORK:
            raise BadStep(f"step {i}: the steps would seal more than {MAX_WORK} packets")


# --- profiles ----------------------------------------------------------------------------------

def _axis_check(hint: object):
    """A checker for one ``Profile`` field, from its type hint (None: not supported)."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = frozenset(m.value for m in hint)
        return lambda v: type(v) is str and v in values
    if hint is bool:
        return lambda v: type(v) is bool
    if hint is int:
        return lambda v: type(v) is int and 0 <= v <= U64
    if hint == (int | None):
        return lambda v: v is None or (type(v) is int and 0 <= v <= U64)
    if hint is str:
        return lambda v: type(v) is str and len(v) <= MAX_IDENT and v.isprintable()
    return None


AXES = {f.name: _axis_check(typing.get_type_hints(Profile)[f.name]) for f in fields(Profile)}


def check_profile_fits(profile: Profile) -> None:
    """Replay windows are bitmaps of W/8 + 1 bytes per sub-SA: at most MAX_WINDOW_BYTES."""
    need = (profile.window // 8 + 1) * profile.n_sub_sas if profile.replay_protected else 0
    if need > MAX_WINDOW_BYTES:
        raise BadCase(f"ran_profile: window {profile.window} on {profile.n_sub_sas} sub-SAs "
                      f"needs {need} bytes of window bitmaps, more than {MAX_WINDOW_BYTES}")


def profile_from_axes(axes: object) -> Profile:
    """A ``ran_profile`` object as a ``Profile``, each axis checked before it is built."""
    from spec_model.aead import AEADS
    if type(axes) is not dict:
        raise BadCase(f"ran_profile must be an object, not {_kind(axes)}")
    for name, value in axes.items():
        check = AXES.get(name)
        if check is None:
            raise BadCase(f"ran_profile has no axis {show(name)}")
        if not check(value):
            raise BadCase(f"ran_profile {name} {show(value)} is not a valid value")
    if "aead" in axes and axes["aead"] not in AEADS:
        raise BadCase(f"ran_profile aead {show(axes['aead'])} is not a known AEAD")
    try:
        profile = Profile.from_axes(axes)
    except EspSpecError as e:
        raise BadCase(f"ran_profile is not a valid profile: {e}") from None
    except (ArithmeticError, LookupError, TypeError, ValueError) as e:
        # every axis has a valid type and range, so this is a validation rule of the model
        # that did not expect the value; the file is still refused, in one line
        raise BadCase(f"ran_profile is not a valid profile: {type(e).__name__}: "
                      f"{show(str(e))}") from None
    check_profile_fits(profile)
    return profile


# --- case entries and the document -----------------------------------------------------------

def _text(where: str, value: object, limit: int, error: type[ResultsFileError], *,
          printable: bool = False, ascii_only: bool = False) -> str:
    if type(value) is not str:
        raise error(f"{where} must be a string, not {_kind(value)} {show(value)}")
    if len(value) > limit:
        raise error(f"{where} has {len(value)} characters, more than {limit}")
    if ascii_only and not all(" " <= c <= "~" for c in value):
        raise error(f"{where} is not printable ASCII: {show(value)}")
    if printable and not value.isprintable():
        raise error(f"{where} has unprintable characters: {show(value)}")
    return value


def _list(where: str, value: object, limit: int, error: type[ResultsFileError]) -> list:
    if type(value) is not list:
        raise error(f"{where} must be an array, not {_kind(value)}")
    if len(value) > limit:
        raise error(f"{where} has {len(value)} items, more than {limit}")
    return value


def _number(where: str, value: object, error: type[ResultsFileError]) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise error(f"{where} must be a number >= 0, not {show(value)}")
    return value


def validate_session(value: object) -> str:
    """A session label: printable ASCII, at most ``MAX_IDENT`` characters."""
    return _text("session", value, MAX_IDENT, BadCase, ascii_only=True)


def validate_evidence(value: object) -> str:
    """A case's evidence folder: ``evidence/<profile>/<case>``, relative, no ``..``."""
    _text("evidence", value, MAX_TEXT, BadCase, ascii_only=True)
    if not EVIDENCE_PATH.fullmatch(value):
        raise BadCase(f"evidence {show(value)} is not a folder evidence/<profile>/<case> "
                      f"of the report")
    return value


def validate_case(entry: object) -> dict:
    """One case entry; its steps are checked too (``validate_steps``)."""
    if type(entry) is not dict:
        raise BadCase(f"must be an object, not {_kind(entry)} {show(entry)}")
    for key in ("case", "profile", "verdict"):
        if key not in entry:
            raise BadCase(f"lacks {key!r}")
    for key in ("case", "profile", "family"):
        if key in entry:
            _text(key, entry[key], MAX_IDENT, BadCase, printable=True)
    if entry["verdict"] not in VERDICTS:
        raise BadCase(f"verdict {show(entry['verdict'])} is not one of "
                      f"{', '.join(sorted(VERDICTS))}")
    if "requirements" in entry:
        for r in _list("requirements", entry["requirements"], MAX_LIST, BadCase):
            _text("a requirement", r, MAX_IDENT, BadCase, printable=True)
    for key in ("message", "replay"):
        if key in entry:
            _text(key, entry[key], MAX_TEXT, BadCase)
    if "seconds" in entry:
        _number("seconds", entry["seconds"], BadCase)
    if "findings" in entry:
        for f in _list("findings", entry["findings"], MAX_FINDINGS, BadCase):
            if type(f) is not dict:
                raise BadCase(f"a finding must be an object, not {_kind(f)}")
            _text("a finding's requirement", f.get("requirement"), MAX_IDENT, BadCase,
                  printable=True)
            if f.get("verdict") not in VERDICTS:
                raise BadCase(f"a finding's verdict {show(f.get('verdict'))} is unknown")
            _text("a finding's message", f.get("message"), MAX_TEXT, BadCase)
    if "session" in entry:
        validate_session(entry["session"])
    if "evidence" in entry:
        validate_evidence(entry["evidence"])
    if "ran_profile" in entry:
        profile_from_axes(entry["ran_profile"])
    if "steps" in entry:
        validate_steps(entry["steps"])
    return entry


#: the ``record`` object's fields (``harness.results.record.RunRecord.to_json``) and kinds
RECORD_FIELDS = {
    "espspec_version": "text?", "espspec_commit": "text?", "espspec_modified": "bool?",
    "python": "text", "python_implementation": "text", "libraries": "versions",
    "platform": "text", "iut": "text", "iut_name": "text?", "iut_version": "text?",
    "capabilities": "object?", "argv": "texts", "started": "text", "duration": "number",
    "seed": "int", "strict": "bool", "depth": "text", "profiles": "texts",
    "timeout": "number?", "isolation": "text",
}


def validate_record(record: object) -> None:
    """The ``record`` object: null, or every field of ``RECORD_FIELDS`` with its kind."""
    if record is None:
        return
    if type(record) is not dict:
        raise BadDocument(f"record must be an object or null, not {_kind(record)}")
    for name, kind in RECORD_FIELDS.items():
        if name not in record:
            raise BadDocument(f"record lacks {name!r}")
        value, where = record[name], f"record {name}"
        if kind.endswith("?"):
            if value is None:
                continue
            kind = kind[:-1]
        if kind == "text":
            _text(where, value, MAX_TEXT, BadDocument)
        elif kind == "bool" and type(value) is not bool:
            raise BadDocument(f"{where} must be true or false, not {show(value)}")
        elif kind == "int" and type(value) is not int:
            raise BadDocument(f"{where} must be an integer, not {show(value)}")
        elif kind == "number":
            _number(where, value, BadDocument)
        elif kind == "texts":
            for v in _list(where, value, MAX_LIST, BadDocument):
                _text(f"an item of {where}", v, MAX_TEXT, BadDocument)
        elif kind == "versions":
            if type(value) is not dict or len(value) > MAX_LIST:
                raise BadDocument(f"{where} must be an object of versions")
            for k, v in value.items():
                _text(f"{where} key", k, MAX_IDENT, BadDocument)
                if v is not None:
                    _text(f"{where} {k}", v, MAX_IDENT, BadDocument)
        elif kind == "object" and type(value) is not dict:
            raise BadDocument(f"{where} must be an object, not {_kind(value)}")


def _entry_label(entry: object) -> str:
    """`` (CASE on PROFILE)`` when both are short printable strings, else nothing."""
    if type(entry) is not dict:
        return ""
    case, profile = entry.get("case"), entry.get("profile")
    if all(type(v) is str and len(v) <= MAX_IDENT and v.isprintable() for v in (case, profile)):
        return f" ({case} on {profile})"
    return ""


def validate_document(doc: object) -> dict:
    """The whole document, every case entry and step included; returns it unchanged."""
    if type(doc) is not dict:
        raise WrongSchema(f"not a results document: the JSON is {_kind(doc)}, not an object")
    schema = doc.get("schema")
    if schema not in READABLE:
        raise WrongSchema(f"schema {show(schema)} is not one of {', '.join(READABLE)}")
    for key in ("iut", "seed", "strict", "cases"):
        if key not in doc:
            raise BadDocument(f"lacks {key!r}")
    _text("iut", doc["iut"], MAX_TEXT, BadDocument, printable=True)
    if type(doc["seed"]) is not int:      # the parser bounds its digits (4300)
        raise BadDocument(f"seed must be an integer, not {show(doc['seed'])}")
    if type(doc["strict"]) is not bool:
        raise BadDocument(f"strict must be true or false, not {show(doc['strict'])}")
    for key in ("depth", "finished"):
        if key in doc:
            _text(key, doc[key], MAX_IDENT, BadDocument, printable=True)
    if "profiles" in doc:
        for p in _list("profiles", doc["profiles"], MAX_LIST * 10, BadDocument):
            _text("a profile", p, MAX_IDENT, BadDocument, printable=True)
    if "summary" in doc:
        summary = doc["summary"]
        if type(summary) is not dict or not all(
                k in VERDICTS and type(v) is int and v >= 0 for k, v in summary.items()):
            raise BadDocument("summary must map verdicts to counts")
    if schema == SCHEMA_V2:
        if type(doc.get("complete")) is not bool:
            raise BadDocument(f"complete must be true or false, not {show(doc.get('complete'))}")
        if "incomplete_reason" in doc:
            _text("incomplete_reason", doc["incomplete_reason"], MAX_TEXT, BadDocument)
        if "record" not in doc:
            raise BadDocument("lacks 'record'")
        validate_record(doc["record"])
    cases = _list("cases", doc["cases"], MAX_CASES, BadDocument)
    for i, entry in enumerate(cases):
        try:
            validate_case(entry)
        except (BadCase, BadStep) as e:
            raise type(e)(f"case {i}{_entry_label(entry)}: {e}") from None
    return doc


# --- reading --------------------------------------------------------------------------------

def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_document(data: bytes) -> dict:
    """Bytes of a results file as a validated document."""
    if len(data) > MAX_FILE_BYTES:
        raise ResultsTooLarge(f"more than {MAX_FILE_BYTES} bytes")
    values = data.count(b",") + data.count(b"[") + data.count(b"{")
    if values > MAX_VALUES:
        raise ResultsTooLarge(f"about {values} JSON values, more than {MAX_VALUES}")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise NotJson("not JSON: nested too deeply") from None
    except ValueError as e:   # JSONDecodeError, UnicodeDecodeError, too many digits
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NotJson(f"not JSON: {first[:200]}") from None
    return validate_document(doc)


def read_document(path: str | os.PathLike) -> dict:
    """A results file, read (at most ``MAX_FILE_BYTES`` + 1 bytes), parsed and validated.
    ``OSError`` when it cannot be read; a ``ResultsFileError`` naming the file otherwise."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    try:
        return parse_document(data)
    except ResultsFileError as e:
        raise type(e)(f"{Path(path).name}: {e}") from None
