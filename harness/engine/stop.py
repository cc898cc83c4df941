"""A stop that a signal asked for, honoured even where Python swallowed it.

Theory of operation: ``request(name)`` is what espspec's SIGINT and SIGTERM handlers call:
it notes the signal and raises ``Stopped``. Python runs a signal handler wherever the main
thread happens to be, and where that is a garbage-collector callback or a destructor the
exception is printed and dropped. So the request is also kept, and ``check()``, which the
engine calls before every IUT verb and between cases, raises ``Stopped`` again until the
run is over. ``Stopped`` is a BaseException: neither the engine's nor Hypothesis's
handlers for failing tests catch it, so it unwinds the run at once.
"""

from __future__ import annotations


class Stopped(BaseException):
    """The run was asked to stop (by the signal named in ``args[0]``)."""


_requested: list[str] = []


def request(name: str) -> None:
    _requested.append(name)
    raise Stopped(name)


def check() -> None:
    if _requested:
        raise Stopped(_requested[0])


def clear() -> None:
    _requested.clear()
