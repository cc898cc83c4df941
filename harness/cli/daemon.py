"""The ``daemon`` subcommand of ``espspec``: the reference daemon (``harness.daemon``).

Theory of operation: ``add_subcommand(sub)`` adds ``espspec daemon --sa FILE [--sub-sa
K] [--control] [--mutant NAME]`` to espspec's argparse subparsers (a mutant is loaded
through ``harness.loader`` as ``mutant:NAME``, so the daemon never imports mutants); ``cmd_daemon`` runs the daemon until SIGTERM or
SIGINT and returns its exit status: 0 after a clean stop, 1 when the TUN device or the
socket cannot be set up, 2 for an SA file that cannot configure it (one line on stderr).
"""

from __future__ import annotations

import argparse

__all__ = ["add_subcommand", "cmd_daemon"]


def cmd_daemon(args: argparse.Namespace) -> int:
    from ..daemon.reference import Receiver, Sender, main
    sender, receiver = Sender, Receiver
    if args.mutant:
        from ..loader import load_iut
        from .errors import UsageError
        try:
            cls = load_iut(f"mutant:{args.mutant}")
        except Exception as e:                      # noqa: BLE001 -- one line, exit 2
            raise UsageError(f"--mutant {args.mutant}: {str(e).splitlines()[0]}") from None
        sender = getattr(cls, "sender_class", Sender)
        receiver = getattr(cls, "receiver_class", Receiver)
    return main(args.sa, sub_sa=args.sub_sa, control=args.control,
                sender_class=sender, receiver_class=receiver)


def add_subcommand(sub) -> None:
    d = sub.add_parser("daemon", help="run the reference daemon: the model behind a TUN "
                       "device, configured by an SA file (docs/daemon.md)")
    d.add_argument("--sa", required=True, metavar="FILE", help="the SA file "
                   "(schema espspec-sa/1); SIGHUP re-reads it (a rekey)")
    d.add_argument("--sub-sa", type=int, metavar="K", help="send every packet on sub-SA K "
                   "(default: a hash of the inner flow)")
    d.add_argument("--control", action="store_true", help="read control lines on stdin "
                   "(SUB-SA K, SET-COUNTER K V, COUNTERS), each answered on stdout")
    d.add_argument("--mutant", metavar="NAME", help="run the mutant NAME (espspec mutants) "
                   "instead of the model: a daemon that is wrong on purpose")
    d.set_defaults(func=cmd_daemon)
