"""A daemon's stdout, read as it comes, and waited on.

Theory of operation: ``LineWatcher(stream)`` starts a daemon thread that reads ``stream``
(a binary pipe) line by line, parses each with ``events.parse`` and appends it to
``events``, waking whoever waits. ``mark()`` is the number of events seen so far;
``wait(kinds, since, timeout)`` returns the first event of one of ``kinds`` at or after
position ``since`` (or None when the timeout passes), so a caller that marks before it
acts never misses an answer that came quickly. ``fileno()`` becomes readable when a line
arrives (one byte per line on a pipe), so a caller can ``select`` on it beside a socket;
``clear()`` empties it. ``closed`` is set when the pipe ends (the
daemon exited or closed stdout). Only lines are kept (a few hundred bytes each); the
harness asks ``trim(before)`` to forget what no waiter needs. Nothing here starts or
stops processes.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO, Iterable

from .events import Event, parse

__all__ = ["LineWatcher"]


class LineWatcher:
    def __init__(self, stream: IO[bytes], name: str = "daemon") -> None:
        self.stream = stream
        self.events: list[Event] = []
        self.base = 0                      # events[0] is event number ``base``
        self.closed = False
        self._cond = threading.Condition()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._thread = threading.Thread(target=self._read, name=f"{name} stdout",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in iter(self.stream.readline, b""):
                event = parse(raw.decode("utf-8", "replace"))
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
                self._poke()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()
            self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._w, b"x")
        except (BlockingIOError, OSError):
            pass                             # full: it is readable anyway; closed: done

    def fileno(self) -> int:
        return self._r

    def clear(self) -> None:
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def mark(self) -> int:
        with self._cond:
            return self.base + len(self.events)

    def wait(self, kinds: Iterable[str], since: int, timeout: float) -> Event | None:
        """The first event of ``kinds`` numbered ``since`` or later, waiting up to
        ``timeout`` seconds; None if none came (or the pipe ended first)."""
        kinds = frozenset(kinds)
        deadline = time.monotonic() + timeout
        with self._cond:
            at = max(since, self.base)
            while True:
                while at < self.base + len(self.events):
                    event = self.events[at - self.base]
                    at += 1
                    if event.kind in kinds:
                        return event
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    return None
                self._cond.wait(left)

    def after(self, event: Event, since: int) -> int:
        """The position just after ``event``, searched from ``since``."""
        with self._cond:
            for i in range(max(since, self.base), self.base + len(self.events)):
                if self.events[i - self.base] is event:
                    return i + 1
            return self.base + len(self.events)

    def since(self, since: int) -> list[Event]:
        with self._cond:
            return list(self.events[max(since, self.base) - self.base:])

    def trim(self, before: int) -> None:
        """Forget events numbered below ``before``."""
        with self._cond:
            cut = min(max(0, before - self.base), len(self.events))
            del self.events[:cut]
            self.base += cut

    def close(self, timeout: float = 1.0) -> None:
        """After the pipe's writer is gone: wait for the reader, close the wake-up pipe."""
        self._thread.join(timeout)
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._r = self._w = -1
