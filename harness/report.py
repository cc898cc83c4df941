"""Results on disk and on the terminal: the results JSON, the summary table, replay.

Theory of operation: ``write_json`` stores one run (IUT, profiles, seed, settings, and per
case the requirement IDs, verdict, findings and minimal failing steps with a command that
replays them) as ``results.json`` in the report folder; ``summary`` renders the
profile x family table of verdict counts; ``load_steps`` reads one case's steps back for
``espspec replay``. Nothing here judges anything.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

from .judge import Verdict
from .runner import CaseResult
from .tables import render

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


def summary(results: list[CaseResult]) -> str:
    families = sorted({r.family for r in results})
    profiles = list(dict.fromkeys(r.profile for r in results))
    rows = []
    for p in profiles:
        row = [p]
        for fam in families:
            c = Counter(r.verdict for r in results if r.profile == p and r.family == fam)
            row.append(" ".join(f"{n}{v.value[0] if v is not Verdict.NON_STRICT else 'N'}"
                                for v, n in sorted(c.items(), key=lambda kv: kv[0].value)) or "-")
        rows.append(row)
    legend = "P pass, F fail, N non-strict, U unsupported, I info"
    return render(["profile"] + families, rows) + f"\n({legend})"


def format_steps(steps: list[tuple[str, dict]], indent: str = "    ") -> str:
    """Steps as calls, one a line, runs of identical steps folded into ``x N``."""
    lines: list[list] = []
    for verb, kwargs in steps:
        call = f"{verb}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        if lines and lines[-1][0] == call:
            lines[-1][1] += 1
        else:
            lines.append([call, 1])
    return "\n".join(f"{indent}{call}" + (f"  x {n}" if n > 1 else "") for call, n in lines)


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
