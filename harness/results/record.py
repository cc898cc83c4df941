"""The certification record: what ran, where, on what, and how, for one results document.

Theory of operation: a results file is evidence that an implementation passed (or failed)
a run, so it says what produced it. ``RunRecord.now`` fills a ``RunRecord`` at the moment
the document is written: espspec's version from the installed package metadata and, when
espspec runs from a git checkout, its commit and whether tracked files differ from it
(``git`` with a short timeout and no optional locks; anything that goes wrong gives null,
never an error; asked once per process, since a run rewrites its document after every
case); the versions of Python and of the libraries that shape verdicts (cryptography,
hypothesis, scapy); the platform; the IUT as named on the command line and as its adapter
states it (name, version, capabilities); the command line; the start time and the
duration so far; and the run's settings (seed, strict, depth, profiles, timeout,
isolation mode). ``RunRecord.to_json`` is the ``record`` object of the results document;
its fields are ``harness.results.schema.RECORD_FIELDS`` and docs/results.md describes
each.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..contract import Capabilities

#: libraries whose versions are recorded (they decide crypto, exploration and scapy's IUT)
LIBRARIES = ("cryptography", "hypothesis", "scapy")
GIT_TIMEOUT = 2.0             # seconds per git command


@dataclass(frozen=True)
class RunRecord:
    espspec_version: str | None        # installed package version; None: not installed
    espspec_commit: str | None         # git HEAD of the checkout espspec runs from
    espspec_modified: bool | None      # tracked files differ from that commit
    python: str                        # e.g. "3.11.2"
    python_implementation: str         # e.g. "CPython"
    libraries: tuple[tuple[str, str | None], ...]   # (name, version or None), LIBRARIES
    platform: str                      # platform.platform()
    iut: str                           # the IUT as named on the command line (--iut)
    iut_name: str | None               # the IUT object's ``name``; None: never built
    iut_version: str | None            # its optional ``version`` attribute
    capabilities: Capabilities | None  # what it said it can do; None: never asked
    argv: tuple[str, ...]              # the command line, sys.argv
    started: str                       # UTC, ISO 8601, e.g. "2026-11-29T04:09:17Z"
    duration: float                    # seconds from the start to this record
    seed: int
    strict: bool
    depth: str
    profiles: tuple[str, ...] | None   # None: the document's (write_json fills them in)
    timeout: float | None              # deadline per IUT verb, None: none
    isolation: str                     # how the IUT ran: "process" or "in-process"

    @classmethod
    def now(cls, *, iut: str, iut_name: str | None, iut_version: str | None,
            capabilities: Capabilities | None, started: float | datetime, seed: int,
            strict: bool, depth: str, isolation: str, timeout: float | None = None,
            duration: float | None = None, argv: list[str] | None = None,
            profiles: list[str] | tuple[str, ...] | None = None) -> "RunRecord":
        """The record of a run that began at ``started`` (``time.time()`` seconds or an
        aware ``datetime``). ``duration`` defaults to the time since ``started``, ``argv``
        to ``sys.argv``; a ``version`` or ``name`` that is not a string is recorded as
        null."""
        if isinstance(started, datetime):
            moment = started
        else:
            moment = datetime.fromtimestamp(float(started), timezone.utc)
        if duration is None:
            duration = max(0.0, time.time() - moment.timestamp())
        env = environment()
        return cls(
            espspec_version=env.espspec_version, espspec_commit=env.espspec_commit,
            espspec_modified=env.espspec_modified, python=env.python,
            python_implementation=env.python_implementation, libraries=env.libraries,
            platform=env.platform, iut=iut,
            iut_name=iut_name if isinstance(iut_name, str) else None,
            iut_version=iut_version if isinstance(iut_version, str) else None,
            capabilities=capabilities, argv=tuple(sys.argv if argv is None else argv),
            started=utc_iso(moment), duration=float(duration), seed=seed, strict=strict,
            depth=depth, profiles=None if profiles is None else tuple(profiles),
            timeout=None if timeout is None else float(timeout), isolation=isolation)

    def to_json(self) -> dict:
        """The ``record`` object of a results document (JSON types only)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["libraries"] = dict(self.libraries)
        out["capabilities"] = (None if self.capabilities is None
                               else capabilities_json(self.capabilities))
        out["argv"] = list(self.argv)
        out["profiles"] = None if self.profiles is None else list(self.profiles)
        out["duration"] = round(self.duration, 3)
        return out


@dataclass(frozen=True)
class Environment:
    """What the record says about the machine and the espspec that ran."""
    espspec_version: str | None
    espspec_commit: str | None
    espspec_modified: bool | None
    python: str
    python_implementation: str
    libraries: tuple[tuple[str, str | None], ...]
    platform: str


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    """This process's ``Environment`` (collected once: git is asked once per process)."""
    commit, modified = git_state()
    return Environment(
        espspec_version=_version("espspec"), espspec_commit=commit,
        espspec_modified=modified, python=platform.python_version(),
        python_implementation=platform.python_implementation(),
        libraries=tuple((lib, _version(lib)) for lib in LIBRARIES),
        platform=platform.platform())


def capabilities_json(caps: Capabilities) -> dict:
    """``Capabilities`` as JSON: sets as sorted lists, tuples as lists."""
    out = {}
    for f in dataclasses.fields(caps):
        v = getattr(caps, f.name)
        if isinstance(v, (set, frozenset)):
            v = sorted(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def git_state(folder: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, modified) of the git checkout espspec's code is tracked in, or
    (None, None): no git, not a checkout, or the package is not a tracked file there (an
    installed copy inside some other repository's folder)."""
    folder = folder or Path(__file__).resolve().parent.parent
    tracked = _git(folder, "ls-files", "--error-unmatch", "__init__.py")
    if tracked is None or tracked.returncode != 0:
        return None, None
    head = _git(folder, "rev-parse", "--verify", "HEAD")
    if head is None or head.returncode != 0:
        return None, None
    commit = head.stdout.strip()
    if len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
        return None, None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    modified = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return commit, modified


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
