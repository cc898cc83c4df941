"""Fuzz targets: never raise on seeds, on Hypothesis-mutated seeds, and under atheris."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from harness.fuzz import CORPORA, TARGETS


def _seeds(target: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPORA / target).iterdir())]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_exist_and_pass(target):
    seeds = _seeds(target)
    assert seeds
    for seed in seeds:
        TARGETS[target](seed)


@pytest.mark.parametrize("target", sorted(TARGETS))
@given(data=st.data())
def test_mutated_seeds_never_raise(target, data):
    seed = bytearray(data.draw(st.sampled_from(_seeds(target))))
    for _ in range(data.draw(st.integers(1, 8))):
        if not seed:
            break
        i = data.draw(st.integers(0, len(seed) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            seed[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del seed[i:]
        else:
            seed[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    TARGETS[target](bytes(seed))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_atheris_run(target, tmp_path):
    pytest.importorskip("atheris", reason="atheris is installed by .ci/run ('.[fuzz]')")
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPORA / target, corpus)
    run = subprocess.run([sys.executable, "-m", "harness.fuzz", target, "-runs=3000",
                          "-max_len=512", str(corpus)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Done 3000 runs" in run.stderr
