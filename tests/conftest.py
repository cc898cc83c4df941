"""Shared fixtures: where the published vectors live, Hypothesis settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
# The published vectors ship with the project (corpora/vectors/README.md says where each
# file comes from and under which licence); ESPSPEC_VECTORS may point at another copy.
SHIPPED_VECTORS = ROOT / "corpora" / "vectors"
VECTORS = Path(os.environ.get("ESPSPEC_VECTORS") or SHIPPED_VECTORS)

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("certify", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def load_vectors(relpath: str) -> dict:
    """The parsed JSON vector file VECTORS/relpath.

    A file that is missing, unreadable or not JSON fails the run (an error collecting the
    module that asked for it): it never turns into a skip."""
    path = VECTORS / relpath
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        pytest.fail(f"cannot load the published vectors {path}: {exc} (they ship in "
                    f"corpora/vectors/; ESPSPEC_VECTORS overrides the folder)", pytrace=False)


# --- the mutant kill matrix, printed once at the end (also under pytest-xdist) -------------

_KILL_ROWS: list = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        for key, value in getattr(report, "user_properties", []):
            if key == "kill_row":
                _KILL_ROWS.append(value)


def pytest_terminal_summary(terminalreporter):
    if not _KILL_ROWS:
        return
    from harness.tables import render
    families = ["nonce", "replay", "limits", "wire"]
    rows = [[name, fam] + [n or "-" for n in (counts[f] for f in families)]
            for name, fam, counts in sorted(_KILL_ROWS, key=lambda r: (r[1], r[0]))]
    terminalreporter.write_sep("=", "mutant kill matrix (cases that killed each mutant, "
                                    "per suite family)")
    terminalreporter.write_line(render(["mutant", "bug family"] + families, rows))
    survivors = [r[0] for r in _KILL_ROWS if not any(r[2].values())]
    terminalreporter.write_line(f"{len(_KILL_ROWS) - len(survivors)} of {len(_KILL_ROWS)} "
                                f"mutants killed" + (f"; survivors: {survivors}" if survivors
                                                     else ""))
