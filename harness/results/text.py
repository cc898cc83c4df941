"""Results on the terminal: the profile x family summary and the step listings.

Theory of operation: pure functions from ``CaseResult``s and step lists to text; the CLI
and the pytest plugin print what they return.
"""

from __future__ import annotations

from collections import Counter

from ..engine.judge import Verdict
from ..engine.runner import CaseResult
from ..tables import render


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
