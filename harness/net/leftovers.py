"""Finding and removing the namespaces of runs that could not clean up (killed by SIGKILL).

Theory of operation: every namespace espspec makes is named ``espspec-<pid>-<hex>-<role>``
(``topology.new_prefix``; a PID is
looked for as the first all-digit word after ``espspec-``), so leftovers are found by name alone under ``/run/netns``:
``find(prefix)`` lists the namespaces whose names start with ``prefix`` (default
``espspec-``). ``remove(name)`` first kills, by PID, every process still inside it
(``ip netns pids``; a zombie counts as gone), then deletes it (``ip netns delete``); the
veths inside go with it. A namespace whose owning run (the PID in its name) is still alive
is skipped unless ``force`` is given, so that a cleanup never pulls the ground from under a
run in progress. A topology's work folder (``Topology.folder()``, the prefix as a folder
name in the temporary directory: SA files, daemon logs) is a leftover too, of kind
``folder``: ``remove`` deletes it; so is the DPDK runtime folder of a killed ipsec-secgw
(``/var/run/dpdk/<prefix>-sgN``, kind ``dpdk-runtime``). Nothing outside the matching names is looked at or
touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass

from . import nsenter
from .procs import gone, run
from .topology import PREFIX, namespace_pids

# the run's PID: the first all-digit word after the prefix (espspec-<pid>-..., and also
# names such as espspec-<word>-<pid>-... that other parts of espspec may use)
_OWNER = re.compile(re.escape(PREFIX) + r"(?:[A-Za-z][A-Za-z0-9]*-)*(\d+)(?:-|$)")


# DPDK's runtime folders (one per --file-prefix; harness.dpdk names them after the
# topology's prefix): a killed ipsec-secgw leaves its folder there
DPDK_RUNTIME = "/var/run/dpdk"
FOLDERS = {"folder": tempfile.gettempdir, "dpdk-runtime": lambda: DPDK_RUNTIME}


@dataclass(frozen=True)
class Leftover:
    name: str
    owner: int | None          # the PID of the run that made it, from its name
    owner_alive: bool
    pids: tuple[int, ...]      # processes still inside it
    kind: str = "namespace"    # or "folder" (a topology's work folder), "dpdk-runtime"


def find(prefix: str = PREFIX) -> list[Leftover]:
    if not prefix.startswith(PREFIX):
        raise ValueError(f"espspec only removes its own namespaces ({PREFIX}...): {prefix!r}")
    try:
        names = sorted(n for n in os.listdir(nsenter.NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        names = []
    folders = sorted(n for n in os.listdir(tempfile.gettempdir()) if n.startswith(prefix)
                     and os.path.isdir(os.path.join(tempfile.gettempdir(), n)))
    try:
        runtime = sorted(n for n in os.listdir(DPDK_RUNTIME) if n.startswith(prefix))
    except OSError:
        runtime = []
    out = []
    for kind, found in (("namespace", names), ("folder", folders),
                        ("dpdk-runtime", runtime)):
        for name in found:
            m = _OWNER.match(name)
            owner = int(m.group(1)) if m else None
            alive = owner is not None and owner != os.getpid() and not gone(owner)
            pids = tuple(namespace_pids(name)) if kind == "namespace" else ()
            out.append(Leftover(name, owner, alive, pids, kind))
    return out


def remove(left: Leftover, *, wait: float = 2.0) -> list[str]:
    """Kill what runs in ``left`` (by PID) and delete it; one line per thing removed."""
    if left.kind in FOLDERS:
        path = os.path.join(FOLDERS[left.kind](), left.name)
        shutil.rmtree(path, ignore_errors=True)
        return [f"removed folder {path}"]
    lines = []
    for pid in left.pids:
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        lines.append(f"killed process {pid} in {left.name}")
    deadline = time.monotonic() + wait
    for pid in left.pids:
        while not gone(pid) and time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.01)
    run(["ip", "netns", "delete", left.name])
    lines.append(f"removed namespace {left.name}")
    return lines
