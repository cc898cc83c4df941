"""The ``check-pcap`` and ``gen-pcap`` subcommands of ``espspec``.

Theory of operation: ``add_subcommands(sub)`` adds both parsers to espspec's argparse
subparsers; each sets ``func`` to a function that returns the exit code: 0 when no finding
FAILs (or ERRORs), 1 when one does, 2 for bad usage, an unusable key file or a capture
that cannot be opened. Expected errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from spec_model import NAMED, named
from spec_model.errors import EspSpecError

from ..capture import DissectConfig
from ..cli.errors import UsageError
from .checker import check_capture
from .config import EESP_UDP_PORT, CheckConfig
from .generate import FAULTS, MAX_PACKETS, GenConfig, generate_capture
from .keys import apply_overrides, load_keys, validate

__all__ = ["add_subcommands", "cmd_check_pcap", "cmd_gen_pcap"]


def _fail(msg: str) -> int:
    print(f"espspec: {str(msg).splitlines()[0] if str(msg) else msg}", file=sys.stderr)
    return 2


def _overrides(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected AXIS=VALUE")
        v = value.strip()
        out[key.strip()] = True if v.lower() == "true" else False if v.lower() == "false" \
            else None if v.lower() in ("none", "null") else v
    return out


def _profile(name: str | None, sets: list[str] | None):
    if name is None:
        if sets:
            raise ValueError("--set needs --profile")
        return None
    p = named(name)
    return apply_overrides(p, _overrides(sets), "--set")


def cmd_check_pcap(args: argparse.Namespace) -> int:
    try:
        if args.jobs < 1:
            raise UsageError(f"--jobs must be at least 1 (worker processes), not {args.jobs}")
        profile = named(args.profile) if args.profile else None
        sas = load_keys(args.keys, profile)
        if args.set:        # applied to every SA, whichever file named its profile
            over = _overrides(args.set)
            sas = [validate(replace(sa, profile=apply_overrides(sa.profile, over, "--set")))
                   for sa in sas]
        dissect = DissectConfig(esp_udp_ports=tuple(args.esp_udp_port or (4500,)),
                                eesp_udp_port=args.eesp_port, psp_udp_port=args.psp_port)
        config = CheckConfig(max_per_requirement=args.max_findings, strict=args.strict)
        report = check_capture(args.capture, sas, profile, receiver=args.receiver,
                               jobs=args.jobs, dissect=dissect, config=config)
    except (EspSpecError, UsageError, OSError, ValueError) as e:
        if isinstance(e, OSError) and e.filename is not None:
            return _fail(f"{e.filename}: {e.strerror}")
        return _fail(e)
    print(report.render(verbose=args.verbose))
    if args.report:
        try:
            with open(args.report, "w") as f:
                json.dump(report.to_dict(), f, indent=1, default=str)
        except OSError as e:
            return _fail(f"{args.report}: {e.strerror}")
    return report.exit_code


def cmd_gen_pcap(args: argparse.Namespace) -> int:
    try:
        profile = _profile(args.profile, args.set)
        out = args.out or f"espspec-{args.profile}.pcap"
        cfg = GenConfig(profile=profile, packets=args.packets, out=out, sas=args.sas,
                        payload_size=args.payload_size, udp=args.udp, ipv6=args.ipv6,
                        eesp_port=args.eesp_port, faults=tuple(args.fault or ()),
                        fault_at=args.fault_at, seed=args.seed, iut=args.iut,
                        iut_role=args.iut_role, receiver_out=args.receiver_out,
                        start_counter=args.start_counter)
        res = generate_capture(cfg)
    except (EspSpecError, OSError, ValueError) as e:
        if isinstance(e, OSError) and e.filename is not None:
            return _fail(f"{e.filename}: {e.strerror}")
        return _fail(e)
    print(f"wrote {res.records} records to {res.capture} ({res.profile.name}, "
          f"{len(res.sas)} SA(s), {res.refused} refused by the sender)")
    print(f"keys: {res.keys} (espspec), {res.esp_sa} (Wireshark esp_sa)")
    if res.receiver:
        print(f"receiver: {res.receiver} ({res.delivered} delivered inner packets)")
    for fault, packets in res.fault_packets.items():
        shown = ", ".join(map(str, packets[:10])) + (", ..." if len(packets) > 10 else "")
        print(f"fault {fault}: packet(s) {shown or '-'}; "
              f"check-pcap must report {res.expect.get(fault, '?')}")
    return 0


def add_subcommands(sub) -> None:
    """Add ``check-pcap`` and ``gen-pcap`` to espspec's argparse subparsers."""
    profiles = ", ".join(NAMED)
    c = sub.add_parser("check-pcap", help="certify a sender (and a receiver) from captures",
                       description="Check every ESP/EESP/PSP packet of a capture against the "
                       "model: wire format, ICV and padding, sequence numbers, nonce "
                       "uniqueness, limits. Exit 0: no FAIL; 1: a FAIL or an unreadable "
                       "capture; 2: bad usage or key file.")
    c.add_argument("capture", help="pcap or pcapng of what the sender sent")
    c.add_argument("--keys", required=True, help="espspec key file (JSON) or Wireshark "
                   "esp_sa table")
    c.add_argument("--profile", choices=list(NAMED), metavar="P",
                   help=f"profile of an esp_sa table's SAs, default of JSON entries "
                        f"without one ({profiles})")
    c.add_argument("--set", action="append", metavar="AXIS=VALUE",
                   help="override a profile axis of every SA (hard_packets, window, ...)")
    c.add_argument("--receiver", metavar="CAPTURE2", help="capture of the inner packets "
                   "the receiver delivered; its decisions are judged against the model")
    c.add_argument("--jobs", type=int, default=1, help="worker processes, 1 or more (the "
                   "work is split by SA and sub-SA; default 1)")
    c.add_argument("--eesp-port", type=int, default=EESP_UDP_PORT,
                   help=f"UDP port of EESP (default {EESP_UDP_PORT}; not IANA-assigned)")
    c.add_argument("--psp-port", type=int, default=1000, help="UDP port of PSP")
    c.add_argument("--esp-udp-port", type=int, action="append",
                   help="UDP port of ESP-in-UDP (repeatable; default 4500)")
    c.add_argument("--strict", action="store_true", help="NON-STRICT findings fail too")
    c.add_argument("--max-findings", type=int, default=10,
                   help="findings shown per requirement (the rest are counted)")
    c.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    c.add_argument("-v", "--verbose", action="store_true")
    c.set_defaults(func=cmd_check_pcap)

    g = sub.add_parser("gen-pcap", help="write a capture of any profile (optionally with "
                       "a seeded fault) and its key files")
    g.add_argument("--profile", required=True, choices=list(NAMED), metavar="P",
                   help=profiles)
    g.add_argument("--packets", type=int, required=True,
                   help=f"packets to write, 1..{MAX_PACKETS} (10^8); nothing is written when "
                        f"the output folder lacks the free space for the capture and "
                        f"key files")
    g.add_argument("-o", "--out", help="capture file (default espspec-P.pcap); the key "
                   "files go next to it, a .pcap suffix replaced: X.pcap -> X.keys.json "
                   "(espspec) and X.esp_sa (Wireshark)")
    g.add_argument("--set", action="append", metavar="AXIS=VALUE",
                   help="override a profile axis (hard_packets, window, ...)")
    g.add_argument("--sas", type=int, default=1, help="child SAs (packets round robin)")
    g.add_argument("--payload-size", type=int, default=64, help="inner packet bytes")
    g.add_argument("--udp", action="store_true", help="ESP in UDP 4500 (RFC 3948)")
    g.add_argument("--ipv6", action="store_true", help="outer IPv6")
    g.add_argument("--eesp-port", type=int, default=EESP_UDP_PORT,
                   help=f"UDP port for EESP (default {EESP_UDP_PORT}, NOT IANA-assigned)")
    g.add_argument("--fault", action="append", choices=list(FAULTS),
                   help="seed a fault: " + "; ".join(f"{f.name}: {f.what}"
                                                     for f in FAULTS.values()))
    g.add_argument("--fault-at", type=int, help="0-based packet index of the fault "
                   "(default N/2)")
    g.add_argument("--seed", type=int, default=1, help="key material seed")
    g.add_argument("--iut", help="protect with an implementation instead of the model "
                   "(reference, scapy, mutant:NAME, module:factory)")
    g.add_argument("--iut-role", choices=["sender", "receiver", "both"], default="both",
                   help="where the IUT is used (default both)")
    g.add_argument("--receiver-out", metavar="FILE", help="also write the inner packets "
                   "the receiver (model, or the IUT) delivers")
    g.add_argument("--start-counter", type=int, default=0,
                   help="every sub-SA starts as if it had sent this many packets")
    g.set_defaults(func=cmd_gen_pcap)
