"""The exceptions of ``harness.net``, one class per way building or using the ground can fail.

Theory of operation: everything here derives from ``NetError`` (itself an ``EspSpecError``,
so the ``espspec`` command turns it into one line on stderr and exit status 2). A caller
that wants to tell the cases apart catches the subclass: a missing privilege or tool is the
machine's fault, a failing command or a namespace that already exists is the topology's, a
timeout waiting for a packet is the test's. Nothing here does any I/O.
"""

from __future__ import annotations

from spec_model.errors import EspSpecError


class NetError(EspSpecError):
    """Base class of everything ``harness.net`` raises on purpose."""


class NotPermitted(NetError):
    """Namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN); this process is not."""


class ToolMissing(NetError):
    """A program the ground needs (``ip``, ``ethtool``) is not installed."""


class CommandFailed(NetError):
    """A command run to build or tear down the ground exited non-zero or timed out."""

    def __init__(self, argv: list[str], status: int | str, output: str) -> None:
        super().__init__(f"{' '.join(argv)}: {status}: {output.strip()[:500]}")
        self.argv, self.status, self.output = argv, status, output


class NamespaceExists(NetError):
    """A namespace with a name this run was about to use already exists (not ours)."""


class AddressError(NetError):
    """An address outside the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
    203.0.113.0/24, 2001:db8::/32) was asked for."""


class NamespaceError(NetError):
    """Entering a namespace (setns) or making a socket inside it failed."""


class TopologyClosed(NetError):
    """The topology (or its relay) was used after ``close()``."""


class RelayTimeout(NetError):
    """No packet of the awaited kind came through the relay in time."""


class RelayError(NetError):
    """The relay's loop failed (a socket error, or the per-packet policy raised)."""


class CleanupError(NetError):
    """Something this run made could not be removed (names what is left)."""
