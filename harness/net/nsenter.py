"""Entering a named network namespace from this Python process, and coming back.

Theory of operation: ``ip netns add NAME`` leaves a bind mount at ``/run/netns/NAME``;
opening it and calling ``setns(fd, CLONE_NEWNET)`` (through ctypes: Python 3.11 has no
``os.setns``) moves the *calling thread* into that namespace. ``inside(name)`` saves the
thread's own namespace (``/proc/thread-self/ns/net``), enters, and always restores it on
the way out. A socket keeps the namespace it was created in for its whole life, so a socket
made inside the block works from any thread afterwards: that is how one process owns
sockets in several namespaces. Children started inside the block (``subprocess``) inherit
the thread's namespace. Nothing is left entered: a failure to come back raises
``NamespaceError`` at once rather than leave the thread in the wrong namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading

from .errors import NamespaceError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()       # setns is per thread; the lock keeps blocks from nesting oddly


def path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NamespaceError(f"setns into {what}: {os.strerror(err)}")


@contextlib.contextmanager
def inside(name: str):
    """Run the block with this thread in the network namespace ``name``."""
    try:
        target = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NamespaceError(f"namespace {name}: {e.strerror}") from None
    with _lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target, name)
            try:
                yield
            finally:
                _setns(home, "this thread's own namespace")
        finally:
            os.close(home)
            os.close(target)


def socket_in(name: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created in namespace ``name`` (it stays there)."""
    with inside(name):
        try:
            return socket.socket(family, kind, proto)
        except OSError as e:
            raise NamespaceError(f"socket in {name}: {e.strerror}") from None


def write_sysctl(name: str, key: str, value: str) -> None:
    """``sysctl -w key=value`` inside namespace ``name`` (``/proc/sys/net`` is per thread)."""
    with inside(name):
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        except OSError as e:
            raise NamespaceError(f"sysctl {key}={value} in {name}: {e.strerror}") from None
