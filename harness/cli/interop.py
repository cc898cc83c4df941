"""The ``interop`` subcommand of ``espspec``: two real implementations, ESP both ways,
every packet judged by the model (``suites.interop``).

Theory of operation: ``add_subcommand(sub)`` adds ``espspec interop strongswan|dpdk
reference-daemon [--packets N] [--aead NAME] [--report DIR]`` to espspec's argparse
subparsers. ``cmd_interop`` checks the input first (the pair it can run -- a pair that
shares no profile, such as strongswan and dpdk, says why --, the packet count, the AEAD,
a report folder it can write), so bad input costs no namespace and is one line on stderr
(exit 2); then it runs the case -- charon A, or ipsec-secgw, at end a, the reference
daemon at end b -- and prints one line per direction: the verdict,
the counts (written, on the wire, opened by the model, delivered) and, on FAIL, the
number of findings and the first. Exit 0 when both directions pass, 1 on a finding, 2
when the case could not run (a missing charon or vici, not root, a proposal charon
refuses: one line), 130 when interrupted (everything is torn down first).

With ``--report DIR``: ``DIR/interop.json`` (``InteropResult.to_json``: verdict per
direction, counts, findings, implementation versions, the profile), ``DIR/interop.pcap``
(every ESP packet the relay forwarded, as Ethernet frames in the order seen; classic
pcap through ``pcapcheck.pcapwriter``, whose timestamps are the run's start plus one
microsecond per packet) and ``DIR/esp_sa``, the Wireshark table of both SAs
(``pcapcheck.keys.esp_sa_lines``), so the capture opens decrypted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .errors import UsageError

__all__ = ["BadReportDir", "UnsupportedPair", "add_subcommand", "cmd_interop",
           "write_report"]

class UnsupportedPair(UsageError):
    """Two implementations the interop case cannot run against each other."""


class BadReportDir(UsageError):
    """A report folder that cannot be made or written."""


def _report_dir(path: str) -> str:
    if os.path.exists(path) and not os.path.isdir(path):
        raise BadReportDir(f"--report {path}: exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise BadReportDir(f"--report {path}: cannot make it: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise BadReportDir(f"--report {path}: not writable")
    return path


def write_report(result, folder: str) -> list[str]:
    """interop.json, interop.pcap and esp_sa in ``folder``; the paths written."""
    from .. import atomic_file
    from ..pcapcheck.keys import SaKey, esp_sa_lines
    from ..pcapcheck.pcapwriter import PcapWriter
    a, b = result.addresses["a"], result.addresses["b"]
    keys = [SaKey(result.out_spi, result.profile, result.out_keymat, "out", a, b),
            SaKey(result.in_spi, result.profile, result.in_keymat, "in", b, a)]
    paths = {name: os.path.join(folder, name) for name in
             ("interop.json", "interop.pcap", "esp_sa")}
    with PcapWriter(paths["interop.pcap"], start_s=int(time.time())) as pcap:
        for _, frame in result.frames:
            pcap.write(frame)
    table = ["# Wireshark esp_sa table written by espspec interop (a->b, then b->a)"]
    table += [line for sa in keys for line in esp_sa_lines(sa)]
    atomic_file.replace(paths["esp_sa"], ("\n".join(table) + "\n").encode())
    doc = result.to_json()
    doc["files"] = {"pcap": "interop.pcap", "esp_sa": "esp_sa"}
    atomic_file.replace(paths["interop.json"], (json.dumps(doc, indent=2) + "\n").encode())
    return list(paths.values())


def _line(d, aead: str) -> str:
    counts = (f"{d.written} written, {d.on_wire} on the wire, {d.opened} opened by the "
              f"model, {d.delivered} delivered; SPI {d.spi:#010x}, {aead}")
    head = f"{d.direction} {d.sender} -> {d.receiver}: {d.verdict}"
    if d.passed:
        return f"{head} ({counts})"
    first = d.findings[0]
    where = f"packet {first.packet}" if first.packet is not None else "traffic"
    return (f"{head}, {len(d.findings)} finding{'s' * (len(d.findings) != 1)} ({counts}); "
            f"first: {where}: {first.requirement}: {first.detail}")


def cmd_interop(args: argparse.Namespace) -> int:
    from suites.interop import NO_SHARED_PROFILE, PAIRS, InteropConfig, run
    pair = (args.a, args.b)
    if pair not in PAIRS:
        why = NO_SHARED_PROFILE.get(frozenset(pair))
        if why:
            raise UnsupportedPair(f"{args.a} and {args.b}: {why}")
        runs = " or ".join(f"{a} (end a) against {b} (end b)" for a, b in PAIRS)
        raise UnsupportedPair(f"interop runs {runs}, not {args.a} against {args.b}")
    cfg = InteropConfig(packets=args.packets, aead=args.aead)   # bad values raise here
    folder = _report_dir(args.report) if args.report else None
    try:
        result = run(cfg, pair)
    except KeyboardInterrupt:                # torn down by run() on the way out
        print("espspec: interop interrupted", file=sys.stderr)
        return 130
    for d in result.directions:
        print(_line(d, result.profile.aead))
    if folder is not None:
        print("report: " + ", ".join(write_report(result, folder)))
    return 0 if result.passed else 1


def add_subcommand(sub) -> None:
    p = sub.add_parser("interop", help="run two real implementations against each other "
                       "(ESP both ways), every packet judged by the model")
    p.add_argument("a", metavar="IMPL_A", help="the implementation at end a: strongswan or "
                   "dpdk")
    p.add_argument("b", metavar="IMPL_B", help="the one at end b: reference-daemon")
    p.add_argument("--packets", type=int, default=24, metavar="N",
                   help="inner packets per direction, IPv4 and IPv6 alternately (IPv4 "
                   "only with dpdk; default 24)")
    p.add_argument("--aead", default="aes128gcm16", metavar="NAME",
                   help="the ESP proposal charon negotiates, or the AEAD of the SAs "
                   "espspec writes for dpdk (default aes128gcm16)")
    p.add_argument("--report", metavar="DIR", help="write interop.json, interop.pcap and "
                   "esp_sa (Wireshark) into DIR")
    p.set_defaults(func=cmd_interop)
