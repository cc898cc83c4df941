"""Fuzz targets: exec/s under atheris next to the plain call, coverage features after a
fixed number of runs, lines of spec_model the shipped corpus reaches, and the time the
structure-aware target needs to rediscover each receiver-side mutant.

Figures, not assertions. ``espspec fuzz --stats`` prints the same (this file is that
command with the benchmark defaults: 50 000 runs per target, 60 s per mutant).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from harness.fuzz.stats import print_stats  # noqa: E402


if __name__ == "__main__":
    sys.exit(print_stats(sys.argv[1:], runs=50000, give_up=60.0))
