"""``espspec replay``: one failing case's steps from a results document, run again.

Theory of operation: ``cmd_replay`` reads one case's steps from a results document, runs
them against the IUT through the engine's ``replay`` and says whether the failure
reproduced (exit 1) or not (exit 0).
"""

from __future__ import annotations

import argparse


def cmd_replay(args: argparse.Namespace) -> int:
    from ..loader import load_iut
    from ..results.document import load_steps
    from ..results.text import format_steps
    from ..engine.session import replay
    doc, profile, steps = load_steps(args.results, args.case, args.profile)
    iut = args.iut or doc["iut"]
    findings = replay(load_iut(iut), profile, steps, seed=doc.get("seed", 0),
                      strict=doc.get("strict", False))
    print(format_steps(steps, indent=""))
    failing = [f for f in findings if f.verdict.value == "FAIL"]
    for f in findings:
        print(f)
    print(f"{len(steps)} steps replayed against {iut}: "
          f"{'reproduced' if failing else 'no failure'}")
    return 1 if failing else 0
