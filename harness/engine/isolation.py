"""Running an IUT in a child process, so that its hang or crash cannot take espspec down.

Theory of operation: ``Isolated(factory, timeout)`` is itself an IUT factory. Each IUT it
makes is a proxy whose verbs are requests to a worker process, forked from espspec when
the first IUT is made and kept for the IUTs that follow (so state an implementation keeps
between objects, as any daemon does, lives as long as it would in production). The worker
builds the IUT objects with the real factory, calls their verbs and sends back
``("ok", value)``, ``("raised", type name, message)`` or ``("unsendable", what)`` when the
answer cannot be sent (an object outside the contract). The proxy waits at most
``timeout`` seconds for each answer:

* no answer in time: the worker's process group is killed and ``IutHang`` is raised;
* the pipe ends: the worker is reaped and ``IutCrash`` names the signal or exit status;
* ``raised``: ``IutRaised`` carries the IUT's exception type and message.

``call_many`` pipelines calls of one verb whose arguments do not depend on the answers
(a run of packets delivered in a row): the requests go in one message and the answers
come back one by one, each under the deadline, so a hang is still found per verb. The
next IUT made after a hang or crash forks a fresh worker. The worker leads its own
process group, so whatever it started (a daemon) is killed with it, by that group's ID,
which is the worker's PID; it also dies with espspec (``PR_SET_PDEATHSIG``), and
``shutdown_all`` ends every live worker on the way out. Network namespaces an adapter
made in the worker (``harness.net``, named after the worker's PID) are removed when the
worker is gone, however it ended. Nothing here judges anything:
``Session`` turns these exceptions into findings.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import pickle
import select
import signal
import socket
import sys
import time
from collections import deque

from ..contract import (OPTIONAL_VERBS, Capabilities, IutCrash, IutFactory, IutHang,
                        IutRaised)
from ..net.procs import ended_within

DEFAULT_TIMEOUT = 10.0          # seconds per verb; ``espspec run --timeout``
_PR_SET_PDEATHSIG = 1
_LIVE: dict[int, "Worker"] = {}  # pid -> worker, for shutdown_all


class Channel:
    """One end of a socket pair carrying length-prefixed pickles. It reads greedily (all
    that has arrived, in one system call) and keeps the frames it has not handed out, so
    a run of pipelined answers costs one read, not a poll and two reads each."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.chunk = bytearray(1 << 18)
        self.view = memoryview(self.chunk)
        self.frames: deque = deque()
        self.eof = False
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN)

    def send(self, obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)   # may raise: nothing sent
        self.sock.sendall(len(data).to_bytes(4, "big") + data)

    def _read(self) -> None:
        got = self.sock.recv_into(self.chunk)
        if not got:
            self.eof = True
            return
        buf = self.buf
        buf += self.view[:got]
        at = 0
        while len(buf) - at >= 4:
            n = int.from_bytes(buf[at:at + 4], "big")
            if len(buf) - at - 4 < n:
                break
            self.frames.append(pickle.loads(buf[at + 4:at + 4 + n]))
            at += 4 + n
        del buf[:at]

    def poll(self, timeout: float | None) -> bool:
        """A frame (or the end of the stream) is there within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.frames and not self.eof:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.poller.poll(None if wait is None else int(wait * 1000) + 1):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                continue
            self._read()
        return True

    def recv(self):
        self.poll(None)
        if self.frames:
            return self.frames.popleft()
        raise EOFError

    def close(self) -> None:
        self.sock.close()


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass                       # not Linux: the pipe's end still stops an idle worker


def _serve(conn: Channel, factory: IutFactory) -> None:
    """The worker's loop: (op, handle, verb, args) in, one answer out, until EOF."""
    objects: dict[int, object] = {}
    while True:
        try:
            op, handle, verb, args = conn.recv()
        except (EOFError, OSError):
            return
        value = None
        try:
            if op == "new":
                obj = objects[handle] = factory()
                value = (str(getattr(obj, "name", "") or type(obj).__name__),
                         _version(obj),
                         tuple(v for v in OPTIONAL_VERBS if callable(getattr(obj, v, None))))
            elif op == "call":
                value = getattr(objects[handle], verb)(*args)
            elif op == "many":                   # one answer sent per call, in order
                fn = getattr(objects[handle], verb)
                for one in args[:-1]:
                    _send(conn, _answer(fn, one))
                value = fn(*args[-1])
            elif op == "drop":
                objects.pop(handle, None)
            reply = ("ok", value)
        except BaseException as e:  # noqa: BLE001 -- sys.exit in an IUT is an answer too
            reply = ("raised", type(e).__name__, str(e)[:2000])
        _send(conn, reply)


def _answer(fn, args: tuple) -> tuple:
    try:
        return ("ok", fn(*args))
    except BaseException as e:  # noqa: BLE001
        return ("raised", type(e).__name__, str(e)[:2000])


def _send(conn: Channel, reply: tuple) -> None:
    try:
        conn.send(reply)
    except Exception as e:  # the answer cannot be pickled: outside the contract
        conn.send(("unsendable", f"{type(reply[1]).__name__} ({type(e).__name__}: {e})"))


def _version(obj) -> str | None:
    v = getattr(obj, "version", None)
    return str(v) if v is not None else None


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


class Worker:
    """One forked worker process and our end of its pipe."""

    def __init__(self, factory: IutFactory) -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours, theirs = Channel(a), Channel(b)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:                                   # the worker
            code = 0
            try:
                ours.close()
                os.setpgid(0, 0)
                _die_with_parent()
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _serve(theirs, factory)
            except BaseException:  # noqa: BLE001 -- never return into espspec's stack
                code = 70
            finally:
                os._exit(code)
        theirs.close()
        try:
            os.setpgid(pid, pid)                       # also from here: no race with kill
        except OSError:
            pass
        self.pid, self.conn = pid, ours
        self.status: str | None = None                 # how it ended, once it has
        self.handles = itertools.count(1)
        _LIVE[pid] = self

    @property
    def alive(self) -> bool:
        return self.status is None

    def request(self, op: str, handle: int, verb: str, args: tuple, timeout: float):
        if not self.alive:
            raise IutCrash(verb, f"the IUT's process had already ended ({self.status})")
        try:
            self.conn.send((op, handle, verb, args))
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise IutCrash(verb, self._reap()) from None
        if not self.conn.poll(timeout):
            self.kill(f"hung in {verb}")
            raise IutHang(verb, timeout)
        try:
            reply = self.conn.recv()
        except (EOFError, OSError):
            raise IutCrash(verb, self._reap()) from None
        return reply

    def request_many(self, handle: int, verb: str, calls: list[tuple], timeout: float
                     ) -> list[tuple]:
        """``verb`` once per argument tuple, the requests in one message, each answer
        waited for under ``timeout``: pipelined calls. The answers in order, ending early
        with a ("hang",) or ("crash", how) entry when the worker stopped answering."""
        if not self.alive:
            return [("crash", f"the IUT's process had already ended ({self.status})")]
        try:
            self.conn.send(("many", handle, verb, calls))
        except (BrokenPipeError, ConnectionResetError, OSError):
            return [("crash", self._reap())]
        replies: list[tuple] = []
        for _ in calls:
            if not self.conn.poll(timeout):
                self.kill(f"hung in {verb}")
                return replies + [("hang",)]
            try:
                replies.append(self.conn.recv())
            except (EOFError, OSError):
                return replies + [("crash", self._reap())]
        return replies

    def _reap(self) -> str:
        """Wait (briefly) for the dead worker, kill what is left of its group."""
        ended_within(self.pid, 2.0)
        return self.kill("ended")

    def kill(self, why: str) -> str:
        """Kill the worker's process group (by its ID, the worker's PID) and reap it."""
        if self.status is not None:
            return self.status
        try:
            os.killpg(self.pid, signal.SIGKILL)       # the zombie still holds the PID
        except (ProcessLookupError, PermissionError):
            pass
        try:
            _, status = os.waitpid(self.pid, 0)
            self.status = _status(status) if why == "ended" else f"{why}, killed"
        except ChildProcessError:
            self.status = "gone"
        self.conn.close()
        _LIVE.pop(self.pid, None)
        self._remove_namespaces()
        return self.status

    def _remove_namespaces(self) -> None:
        """The network namespaces an adapter made in this worker (named after its PID,
        ``harness.net.topology``) go with it: a killed worker cannot remove them itself."""
        from ..net import leftovers
        for left in leftovers.find(f"{leftovers.PREFIX}{self.pid}-"):
            leftovers.remove(left)

    def stop(self) -> None:
        """End the worker the polite way: EOF, a moment to exit, then the group's kill."""
        if self.status is not None:
            return
        try:
            self.conn.close()
        except OSError:
            pass
        ended_within(self.pid, 1.0)
        self.kill("stopped")


class IsolatedIut:
    """An IUT whose verbs run in a worker process, each under a deadline."""

    def __init__(self, owner: "Isolated") -> None:
        self._owner = owner
        self._worker = owner.worker()
        self._handle = next(self._worker.handles)
        self._verbs: tuple[str, ...] = ()
        self.name, self.version, self._verbs = self._call("new", "constructor")

    def _call(self, op: str, verb: str, *args):
        reply = self._worker.request(op, self._handle, verb, args, self._owner.timeout)
        outcome = self._outcome(verb, reply)
        if isinstance(outcome, Exception) and reply[0] != "ok":
            raise outcome
        return outcome

    def _outcome(self, verb: str, reply: tuple):
        """A worker's reply as the value, or the exception a call would raise."""
        kind = reply[0]
        if kind == "ok":
            return reply[1]
        if kind == "raised":
            return IutRaised(verb, reply[1], reply[2])
        if kind == "unsendable":
            return Unsendable(reply[1])
        if kind == "hang":
            return IutHang(verb, self._owner.timeout)
        return IutCrash(verb, reply[1])

    def call_many(self, verb: str, calls: list[tuple]) -> list:
        """Pipelined calls of one verb: per call its answer, or the exception a single
        call would have raised; the list ends at a hang or a crash."""
        return [self._outcome(verb, reply) for reply in
                self._worker.request_many(self._handle, verb, calls, self._owner.timeout)]

    def __getattr__(self, verb: str):
        if verb.startswith("_") or verb not in self._verbs:
            raise AttributeError(verb)
        return lambda *args: self._call("call", verb, *args)

    def capabilities(self) -> Capabilities:
        return self._call("call", "capabilities")

    def install(self, outbound, inbound) -> None:
        return self._call("call", "install", outbound, inbound)

    def protect(self, sub_sa, payload, next_header):
        return self._call("call", "protect", sub_sa, payload, next_header)

    def unprotect(self, wire):
        return self._call("call", "unprotect", wire)

    def close(self) -> None:
        if not self._worker.alive:
            return None
        try:
            return self._call("call", "close")
        finally:
            if self._worker.alive:
                self._call("drop", "close")


class Unsendable(Exception):
    """The worker could not send a verb's answer back (not picklable)."""


class Isolated:
    """An IUT factory whose IUTs run in a worker process, each verb under ``timeout``."""

    def __init__(self, factory: IutFactory, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.factory, self.timeout = factory, timeout
        self._worker: Worker | None = None
        self.workers_started = 0

    def __call__(self) -> IsolatedIut:
        return IsolatedIut(self)

    def worker(self) -> Worker:
        if self._worker is None or not self._worker.alive:
            self._worker = Worker(self.factory)
            self.workers_started += 1
        return self._worker

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


def shutdown_all() -> None:
    """Stop every live worker (on exit, on a signal)."""
    for worker in list(_LIVE.values()):
        worker.kill("espspec is stopping")

