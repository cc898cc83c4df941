"""Shared fixtures: where the read-only shared vectors live, Hypothesis settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ESPSPEC_SHARED", ROOT.parent / "shared"))
VECTORS = SHARED / "vectors"

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("certify", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def load_vectors(relpath: str) -> dict:
    path = VECTORS / relpath
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared vectors folder is not beside this "
                    f"checkout (set ESPSPEC_SHARED to its location)", allow_module_level=True)
    return json.loads(path.read_text())
