"""The results document: one run as ``results.json``, written and read back.

Theory of operation: ``write_json`` stores one run (IUT, profiles, seed, settings, and per
case the requirement IDs, verdict, findings and minimal failing steps with a command that
replays them) as ``results.json`` in the report folder; ``load_steps`` reads one case's
steps back for ``espspec replay``. Nothing here judges anything, and nothing prints.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

from ..engine.runner import CaseResult

SCHEMA = "espspec-results/1"


def result_dict(r: CaseResult, iut: str, seed: int) -> dict:
    out = {"case": r.case, "family": r.family, "profile": r.profile,
           "requirements": list(r.requirements), "verdict": r.verdict.value,
           "message": r.message, "seconds": round(r.seconds, 3),
           "findings": [{"requirement": f.requirement, "verdict": f.verdict.value,
                         "message": f.message} for f in r.findings]}
    if r.steps:
        out["steps"] = [{"step": verb, **kwargs} for verb, kwargs in r.steps]
        from spec_model import NAMED
        if r.ran_profile is not None and (r.ran_profile.name != r.profile
                                          or r.profile not in NAMED):
            out["ran_profile"] = r.ran_profile.axes()
        out["replay"] = (f"espspec replay RESULTS.json --case {r.case} --profile {r.profile}"
                         f"  # IUT {iut}, seed {seed}")
    return out


def write_json(folder: str | os.PathLike, results: list[CaseResult], *, iut: str, seed: int,
               strict: bool, depth: str, profiles: list[str]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = Counter(r.verdict.value for r in results)
    doc = {"schema": SCHEMA, "iut": iut, "seed": seed, "strict": strict, "depth": depth,
           "profiles": profiles, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "summary": dict(counts),
           "cases": [result_dict(r, iut, seed) for r in results]}
    path = folder / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return path


def load_steps(path: str | os.PathLike, case: str, profile: str):
    """(results document, the profile the steps ran on, the steps) of one case."""
    from spec_model import Profile, named
    doc = json.loads(Path(path).read_text())
    for c in doc.get("cases", []):
        if c["case"] == case and c["profile"] == profile:
            steps = [(s["step"], {k: v for k, v in s.items() if k != "step"})
                     for s in c.get("steps", [])]
            ran = (Profile.from_axes(c["ran_profile"]) if "ran_profile" in c
                   else named(profile))
            return doc, ran, steps
    raise KeyError(f"no case {case} for profile {profile} in {path}")
