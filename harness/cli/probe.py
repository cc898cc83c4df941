"""The ``probe`` subcommand: what an implementation really does (``harness.engine.probe``).

Theory of operation: ``espspec probe --iut IUT [--profile P] [--windows 32,64,...]
[--json FILE]`` runs the AEAD and window probes on one base profile through the same
isolation as ``espspec run`` and prints two tables: per AEAD whether it interoperates with
the model (both directions judged), and per configured window the window the IUT really
enforces; with ``--esn`` a third: per packet across a 2^32 wrap, what Appendix A's
receiver does and what the IUT did. Exit 0 (a probe has no verdict), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json

from .errors import UsageError

__all__ = ["add_subcommand", "cmd_probe"]


def cmd_probe(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from spec_model import named
    from spec_model.errors import EspSpecError
    from ..engine import probe
    from ..engine.isolation import Isolated, shutdown_all
    from ..loader import load_iut
    try:
        windows = [int(w) for w in args.windows.split(",") if w]
    except ValueError:
        raise UsageError(f"--windows {args.windows}: comma-separated integers") from None
    if any(w < 1 for w in windows):
        raise UsageError(f"--windows {args.windows}: every window is at least 1")
    try:
        base = named(args.profile)
    except EspSpecError as e:
        raise UsageError(str(e)) from None
    factory = load_iut(args.iut)
    run_factory = factory if args.in_process else Isolated(factory, args.timeout)
    try:
        found = probe.aeads(run_factory, base) if not args.no_aeads else []
        edges = probe.window_edge(run_factory, base, windows)
        esn = probe.esn_inference(run_factory, base) if args.esn else []
    finally:
        shutdown_all()
    print(f"espspec probe: {args.iut} on {base.name}")
    if found:
        print(f"{'AEAD':18} {'outcome':14} detail")
        for a in found:
            print(f"{a.aead:18} {a.outcome:14} {a.detail}")
    print(f"{'window asked':13} {'enforced':9} first packet dropped")
    for e in edges:
        enforced = (str(e.enforced) if e.enforced is not None
                    else (f"> {e.probed}" if e.probed else "-"))
        print(f"{e.configured:<13} {enforced:9} {e.first_drop or e.detail}")
    if esn:
        print(f"{'ESN case':9} {'SN':>12} {'top':>12} {'Appendix A':10} {'IUT':10} why")
        for e in esn:
            if not e.case:
                print(f"{'-':9} {e.detail}")
                continue
            print(f"{e.case:9} {e.seq:#12x} {e.top:#12x} {e.expected:10} {e.answer:10} "
                  f"{e.detail}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"iut": args.iut, "profile": base.name,
                       "aeads": [asdict(a) for a in found],
                       "windows": [asdict(e) for e in edges],
                       "esn": [asdict(e) for e in esn]}, f, indent=2)
            f.write("\n")
    return 0


def add_subcommand(sub, isolation_options) -> None:
    p = sub.add_parser("probe", help="measure what an IUT really does: which AEADs "
                       "interoperate, which replay window it enforces")
    p.add_argument("--iut", required=True)
    p.add_argument("--profile", default="esp", help="the base profile (default esp)")
    p.add_argument("--windows", default="32,64,128,256,1024",
                   help="window sizes to configure, comma-separated")
    p.add_argument("--no-aeads", action="store_true", help="skip the AEAD probe")
    p.add_argument("--esn", action="store_true", help="also probe how it infers the ESN "
                   "high half across a 2^32 wrap (RFC 4303 Appendix A, cases A and B)")
    p.add_argument("--json", metavar="FILE", help="also write the answers as JSON")
    isolation_options(p)
    p.set_defaults(func=cmd_probe)
