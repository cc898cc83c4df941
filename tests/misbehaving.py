"""Adapters that misbehave in each way a real IUT can: the isolation tests run them.

Each is the reference IUT (or a bare object) with one misbehaviour. The ones that leave
processes behind write their PIDs to the file named by ``ESPSPEC_TEST_PIDS``, so the tests
can check that espspec removed them.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time

from harness.adapters.reference import ReferenceIut
from spec_model import Delivered


def _note_pid(pid: int) -> None:
    path = os.environ.get("ESPSPEC_TEST_PIDS")
    if path:
        with open(path, "a") as f:
            f.write(f"{pid}\n")


class HangingUnprotect(ReferenceIut):
    """unprotect never returns (after writing the worker's PID down)."""
    name = "hanging-unprotect"

    def unprotect(self, wire):
        _note_pid(os.getpid())
        while True:
            time.sleep(3600)


class HangingWithDaemon(ReferenceIut):
    """Starts a 'daemon' (sleep) when built, then hangs in protect: both must go."""
    name = "hanging-with-daemon"

    def __init__(self) -> None:
        super().__init__()
        self.daemon = subprocess.Popen(["sleep", "600"])
        _note_pid(os.getpid())
        _note_pid(self.daemon.pid)

    def protect(self, sub_sa, payload, next_header):
        time.sleep(3600)


class SegfaultInProtect(ReferenceIut):
    """A C extension's segfault: reads address 0."""
    name = "segfault-in-protect"

    def protect(self, sub_sa, payload, next_header):
        ctypes.string_at(0)


class ExitInInstall(ReferenceIut):
    """os._exit in install: no exception, no cleanup, the process is gone."""
    name = "exit-in-install"

    def install(self, outbound, inbound):
        os._exit(3)


class RaisingConstructor:
    """The constructor raises."""

    def __init__(self) -> None:
        raise RuntimeError("cannot open /dev/esp0")


class WrongTypes(ReferenceIut):
    """protect returns text, unprotect returns a Delivered whose payload is None."""
    name = "wrong-types"

    def protect(self, sub_sa, payload, next_header):
        return super().protect(sub_sa, payload, next_header).hex()

    def unprotect(self, wire):
        out = super().unprotect(wire)
        return out._replace(payload=None) if isinstance(out, Delivered) else out


class UnsendableAnswer(ReferenceIut):
    """unprotect returns something that cannot leave its process (a generator)."""
    name = "unsendable"

    def unprotect(self, wire):
        return (b for b in wire)


INSTALLS = [0]


class Nondeterministic(ReferenceIut):
    """Every other installed SA drops its second packet: the same steps, two answers."""
    name = "nondeterministic"

    def install(self, outbound, inbound):
        super().install(outbound, inbound)
        INSTALLS[0] += 1
        self.odd, self.received = INSTALLS[0] % 2 == 1, 0

    def unprotect(self, wire):
        self.received += 1
        if self.odd and self.received == 2:
            from spec_model import Dropped
            return Dropped(None, "", "dropped on odd installs")
        return super().unprotect(wire)


WINDOWS: dict[int, object] = {}


class StateOutlivesObject(ReferenceIut):
    """Keeps each inbound SA's receiver (its replay window) in a module-level table keyed
    by SPI, as a daemon keeps SAs after the adapter object is gone; a correct IUT all the
    same, when every session has SAs of its own."""
    name = "state-outlives-object"

    def install(self, outbound, inbound):
        super().install(outbound, inbound)
        self.receiver = WINDOWS.setdefault(inbound.spi, self.receiver)


class SlowReference(ReferenceIut):
    """The reference, 20 ms per received packet: a run long enough to interrupt."""
    name = "slow-reference"

    def __init__(self) -> None:
        super().__init__()
        _note_pid(os.getpid())

    def unprotect(self, wire):
        time.sleep(0.02)
        return super().unprotect(wire)


class CrashOnFifthPacket(ReferenceIut):
    """Dies (os._exit) on the fifth packet it receives: in the middle of a run of packets
    that espspec pipelines to the worker."""
    name = "crash-on-fifth-packet"

    def install(self, outbound, inbound):
        super().install(outbound, inbound)
        self.received = 0

    def unprotect(self, wire):
        self.received += 1
        if self.received == 5:
            os._exit(9)
        return super().unprotect(wire)


class NamespacesThenHang(ReferenceIut):
    """Makes a network topology (three namespaces) when built, as a daemon adapter does,
    then hangs in protect: the worker is killed and cannot remove them itself."""
    name = "namespaces-then-hang"

    def __init__(self) -> None:
        super().__init__()
        from harness.net.topology import Topology
        self.topology = Topology.create()
        path = os.environ.get("ESPSPEC_TEST_PIDS")
        if path:
            with open(path + ".prefixes", "a") as f:
                f.write(self.topology.prefix + "\n")

    def protect(self, sub_sa, payload, next_header):
        time.sleep(3600)
