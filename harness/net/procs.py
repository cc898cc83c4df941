"""Commands and child processes, always this process's children, always waited for.

Theory of operation: ``run(argv)`` starts a short command (``ip``, ``ethtool``), waits for
it under a deadline, kills it (by its PID) if the deadline passes, and raises
``CommandFailed`` on a non-zero status. ``Child`` is a long-lived process (a daemon an
adapter needs) started in a namespace through ``ip netns exec``, which execs the program,
so the PID we hold is the program's own; it leads its own process group and, unless asked
otherwise, dies with this process (``PR_SET_PDEATHSIG``). ``Child.kill()`` sends SIGTERM to
that group by its ID, waits briefly, then SIGKILL, then reaps: since the child is ours,
no zombie is left for PID 1 to collect. Nothing here finds a process by its name.
``gone(pid)`` says whether a PID no longer runs (a zombie counts as gone).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time

from .errors import CommandFailed, ToolMissing

_PR_SET_PDEATHSIG = 1


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise ToolMissing(f"{name} is not installed (Debian: apt-get install "
                          f"{ {'ip': 'iproute2'}.get(name, name) })")
    return found


def run(argv: list[str], *, timeout: float = 10.0, input: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run ``argv`` to completion (a child of this process) and return what it printed.
    The program is found in /usr/sbin and /sbin too, whatever PATH says (root's tools
    live there), and so is the one ``ip netns exec NS PROGRAM ...`` runs in a namespace."""
    argv = [tool(argv[0]), *argv[1:]]
    if len(argv) > 4 and argv[1:3] == ["netns", "exec"] and "/" not in argv[4]:
        argv[4] = tool(argv[4])
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()                                  # by its PID
        out, _ = p.communicate()
        raise CommandFailed(argv, f"timed out after {timeout:g} s", out or "") from None
    except BaseException:                         # a signal while waiting: no orphan
        p.kill()
        p.wait()
        raise
    if check and p.returncode != 0:
        raise CommandFailed(argv, f"exit status {p.returncode}", out or "")
    return subprocess.CompletedProcess(argv, p.returncode, out, "")


def last_line(path: str, default: str = "") -> str:
    """The last non-empty line of a (log) file, e.g. what a dead daemon last wrote on
    stderr; ``default`` when the file is missing or empty."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return default
    return lines[-1] if lines else default


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def gone(pid: int) -> bool:
    """The process ``pid`` has ended (a zombie, not yet reaped, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:][:1]
    return state in (b"Z", b"X")


def ended_within(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for our child ``pid`` to end, without reaping it (its zombie
    keeps holding the PID, and so its process group's ID); True when it ended."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


class Child:
    """A program running in namespace ``ns`` as a child of this process."""

    def __init__(self, ns: str, argv: list[str], *, die_with_us: bool = True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, env=None, cwd=None) -> None:
        self.ns, self.argv = ns, list(argv)
        self.proc = subprocess.Popen(
            [tool("ip"), "netns", "exec", ns, *argv], stdin=stdin, cwd=cwd,
            stdout=stdout, stderr=stderr, env=env, start_new_session=True,
            preexec_fn=_die_with_parent if die_with_us else None)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, grace: float = 1.0) -> int:
        """End the child's process group (by its ID, the child's PID) and reap the child.

        SIGTERM to the group, up to ``grace`` seconds for the child to end (observed without
        reaping, so its zombie still holds the group's ID), then SIGKILL to the group for
        whatever is left in it, then the child is reaped."""
        if self.proc.returncode is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            ended_within(self.pid, grace)
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        return self.proc.returncode
