"""The results document: one run as ``results.json``, written and read back.

Theory of operation: ``write_json`` stores one run (IUT, profiles, seed, settings, per
case the requirement IDs, verdict, findings and minimal failing steps with a command that
replays them, the session label they ran under, and the certification record of
``record.py``) as ``results.json`` in the report folder, schema ``SCHEMA``. It writes a
temporary file unique to the process beside it and renames it over ``results.json``, so
a reader sees the old document or the new one, never half of one, and the temporary file
is removed when anything fails. ``load_steps`` reads one case back for ``espspec
replay``: the file goes through ``schema.read_document`` (size, JSON, every field and step
checked) and the case's steps through ``schema.check_steps_fit`` on the profile they ran
on before anything in it is used. Version-1 documents (no record, no ``complete``, no
sessions) are read the same way. docs/results.md describes every field. Nothing here
judges anything, and nothing prints.

A failing case whose IUT gave evidence of the failing session (``CaseResult.evidence``:
files such as ``packets.pcap``, ``esp_sa``, ``README.txt``) has it written by
``write_evidence`` to ``evidence/<profile>/<case>/`` in the report folder (``/`` and
anything but letters, digits, ``.``, ``_`` and ``-`` in the names made ``_``:
``evidence_path``), and its entry in ``results.json`` names that folder, relative to the
report folder, as ``"evidence"``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from spec_model import Profile
from spec_model.errors import EspSpecError

from .. import atomic_file
from ..engine.runner import CaseResult
from . import schema
from .record import RunRecord
from .text import format_steps  # noqa: F401  (harness.pytest_plugin imports it from here)

SCHEMA = schema.SCHEMA_V2
READABLE = schema.READABLE


class UnknownCase(EspSpecError):
    """The results document has no entry for the case and profile asked for."""


EVIDENCE = "evidence"           # the report folder's subfolder of evidence
MAX_SEGMENT = 120               # characters of one folder name of an evidence path


def _segment(name: str) -> str:
    """One folder name of an evidence path: nothing that could leave the folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return safe[:MAX_SEGMENT] or "_"


def evidence_path(r: CaseResult) -> str:
    """Where the evidence of a case goes, relative to the report folder."""
    return f"{EVIDENCE}/{_segment(r.profile)}/{_segment(r.case)}"


def write_evidence(folder: str | os.PathLike, r: CaseResult) -> Path | None:
    """Write the case's evidence files (each atomically) to ``evidence_path`` in the
    report folder; the folder written, or None when the case has no evidence. A file
    name that is not a plain name (the contract's check) is skipped."""
    if not r.evidence:
        return None
    target = Path(folder) / evidence_path(r)
    target.mkdir(parents=True, exist_ok=True)
    for name, data in r.evidence.items():
        if type(name) is str and name not in ("", ".", "..") and Path(name).name == name \
                and "\\" not in name and type(data) is bytes:
            atomic_file.replace(target / name, data)
    return target


def clear_evidence(folder: str | os.PathLike) -> None:
    """Remove the evidence of an earlier run from the report folder (it belongs to the
    results document about to be replaced)."""
    import shutil
    path = Path(folder) / EVIDENCE
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def result_dict(r: CaseResult, iut: str, seed: int) -> dict:
    out = {"case": r.case, "family": r.family, "profile": r.profile,
           "requirements": list(r.requirements), "verdict": r.verdict.value,
           "message": r.message, "seconds": round(r.seconds, 3),
           "findings": [{"requirement": f.requirement, "verdict": f.verdict.value,
                         "message": f.message} for f in r.findings]}
    session = getattr(r, "session", "")
    if session:
        out["session"] = session
    if getattr(r, "evidence", None):
        out["evidence"] = evidence_path(r)
    if r.steps or session:      # a failure before any step (a crash in install) replays too
        out["steps"] = [{"step": verb, **kwargs} for verb, kwargs in r.steps]
        from spec_model import NAMED
        if r.ran_profile is not None and (r.ran_profile.name != r.profile
                                          or r.profile not in NAMED):
            out["ran_profile"] = r.ran_profile.axes()
        out["replay"] = (f"espspec replay RESULTS.json --case {shlex.quote(r.case)} "
                         f"--profile {shlex.quote(r.profile)} --iut {shlex.quote(iut)}"
                         f"  # seed {seed}")
    return out


def write_json(folder: str | os.PathLike, results: list[CaseResult], *, iut: str, seed: int,
               strict: bool, depth: str, profiles: list[str], record: RunRecord | None = None,
               complete: bool = True, incomplete_reason: str | None = None) -> Path:
    """Write ``FOLDER/results.json`` atomically and return its path.

    ``record``: the run's certification record (``null`` in the file when None); its
    seed, strict, depth and profiles must be the ones given here (profiles None: these). ``complete`` False: the
    run stopped before every planned case ran; ``incomplete_reason`` says why (e.g.
    "interrupted by SIGINT")."""
    if record is not None:
        if record.profiles is None:
            record = dataclasses.replace(record, profiles=tuple(profiles))
        if (record.seed, record.strict, record.depth, record.profiles) != (
                seed, strict, depth, tuple(profiles)):
            raise ValueError("the run record's seed, strict, depth or profiles differ from "
                             "the ones written beside it")
    if incomplete_reason is not None and complete:
        raise ValueError("incomplete_reason given for a complete run")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = Counter(r.verdict.value for r in results)
    doc = {"schema": SCHEMA, "iut": iut, "seed": seed, "strict": strict, "depth": depth,
           "profiles": list(profiles),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "complete": complete}
    if incomplete_reason is not None:
        doc["incomplete_reason"] = incomplete_reason
    doc["record"] = record.to_json() if record is not None else None
    doc["summary"] = dict(counts)
    doc["cases"] = [result_dict(r, iut, seed) for r in results]
    data = json.dumps(doc, indent=1, allow_nan=False).encode()
    path = folder / "results.json"
    return atomic_file.replace(path, data)


@dataclass(frozen=True)
class LoadedCase:
    """One case of a results document, checked and ready to replay."""
    doc: dict                          # the whole (validated) document
    profile: Profile                   # the profile the steps ran on (a variant?)
    steps: tuple[tuple[str, dict], ...]
    session: str                       # the session label the steps ran under, "" if none

    @property
    def iut(self) -> str:
        return self.doc["iut"]

    @property
    def seed(self) -> int:
        return self.doc["seed"]

    @property
    def strict(self) -> bool:
        return self.doc["strict"]


def load_steps(path: str | os.PathLike, case: str, profile: str) -> LoadedCase:
    """The case ``case`` on profile ``profile`` of the results file at ``path``.

    ``OSError`` when the file cannot be read, a ``schema.ResultsFileError`` when it is
    not a usable results document, ``UnknownCase`` when it has no such entry."""
    from spec_model import named
    doc = schema.read_document(path)
    for c in doc["cases"]:
        if c["case"] == case and c["profile"] == profile:
            steps = schema.validate_steps(c.get("steps", []))
            ran = (schema.profile_from_axes(c["ran_profile"]) if "ran_profile" in c
                   else named(profile))
            try:
                schema.check_steps_fit(steps, ran)
            except schema.BadStep as e:
                raise schema.BadStep(f"{Path(path).name}: case {case} on {profile}: {e}"
                                     ) from None
            return LoadedCase(doc, ran, steps, c.get("session", ""))
    raise UnknownCase(f"no case {case} for profile {profile} in {path}")
