"""The ``daemon`` subcommand of ``espspec``: the reference daemon (``harness.daemon``).

Theory of operation: ``add_subcommand(sub)`` adds ``espspec daemon --sa FILE [--sub-sa
K]`` to espspec's argparse subparsers; ``cmd_daemon`` runs the daemon until SIGTERM or
SIGINT and returns its exit status: 0 after a clean stop, 1 when the TUN device or the
socket cannot be set up, 2 for an SA file that cannot configure it (one line on stderr).
"""

from __future__ import annotations

import argparse

__all__ = ["add_subcommand", "cmd_daemon"]


def cmd_daemon(args: argparse.Namespace) -> int:
    from ..daemon.reference import main
    return main(args.sa, sub_sa=args.sub_sa)


def add_subcommand(sub) -> None:
    d = sub.add_parser("daemon", help="run the reference daemon: the model behind a TUN "
                       "device, configured by an SA file (docs/daemon.md)")
    d.add_argument("--sa", required=True, metavar="FILE", help="the SA file "
                   "(schema espspec-sa/1); SIGHUP re-reads it (a rekey)")
    d.add_argument("--sub-sa", type=int, metavar="K", help="send every packet on sub-SA K "
                   "(default: a hash of the inner flow)")
    d.set_defaults(func=cmd_daemon)
