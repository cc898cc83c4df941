"""The relay in the middle namespace: every frame between the ends passes through it, and
ESP is handed to a policy that may pass, hold, duplicate, drop or modify it.

Theory of operation: ``Relay(topology).start()`` opens two AF_PACKET sockets inside
``<prefix>-mid`` (through setns; the thread comes back to its own namespace at once), one
bound to ``to-a`` and one to ``to-b``, each created listening to nothing and then bound
with ETH_P_ALL to its interface, so no frame of another interface is ever queued on it.
The relay's own transmissions are not read back (``PACKET_IGNORE_OUTGOING``, and the
packet type is checked too). A daemon thread polls both sockets and a wake-up pipe; a
frame read on one side is written to the other socket, so it reaches the other end:

* not ESP (ARP, IKE on 500, UDP 4500 starting with the 4-byte non-ESP marker, a NAT
  keepalive, any other traffic): forwarded unchanged;
* ESP (IP protocol 50, UDP to or from a NAT-traversal port with non-zero first 4 bytes)
  or EESP (UDP to or from ``RelayConfig.eesp_port``): becomes a ``Packet`` (numbered in
  the order the relay saw them) and goes to the policy, an ``Action`` or a callable
  ``Packet -> Action``; ``PASS`` forwards it, ``DROP`` forgets it, ``duplicate(n)``
  forwards it n times, ``modify(fn)`` forwards ``fn(esp_bytes)`` with the lengths and
  checksums fixed (``RelayConfig.zero_udp_checksum``: zero an IPv4 UDP checksum instead),
  ``HOLD`` keeps it in ``held()`` until ``release()`` sends it (any number of times, in
  any order) or ``discard()`` forgets it. A policy that raises holds the packet and the
  error is raised by the next ``next_esp``/``release`` call: it is never lost.

Every ESP packet is also queued per side for ``next_esp(side, timeout)``, which returns
them in order, each once, whether it arrived before or after the call: no race.
``inject(toward, frame)`` sends any frame toward an end. Checksums: a frame whose
transport checksum the sender's kernel left to offload (``TP_STATUS_CSUMNOTREADY`` in
``PACKET_AUXDATA``) is completed before it is forwarded; a frame that arrives with a wrong
IP or UDP/TCP checksum is still forwarded (the relay is a wire) but counted in
``stats["bad_checksum"]``, kept in ``broken`` and logged; injected frames get their
checksums fixed unless ``fix_checksums=False`` asks for a broken frame on purpose. Nothing
leaves the relay with a wrong checksum that nobody was told about.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Union

from . import nsenter
from .errors import NamespaceError, RelayError, RelayTimeout, TopologyClosed
from .frames import (NAT_T_PORT, Layout, checksums_ok, complete_checksum, esp_offset,
                     layout, replace_payload)

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TP_STATUS_CSUMNOTREADY = 1 << 3
_AUX = struct.Struct("=IIIHHHH")
_OTHER = {"a": "b", "b": "a"}


@dataclass(frozen=True)
class RelayConfig:
    nat_ports: tuple[int, ...] = (NAT_T_PORT,)   # UDP ports that carry ESP (RFC 3948)
    eesp_port: int | None = None                 # UDP port that carries EESP, if any
    zero_udp_checksum: bool = False              # modify(): zero IPv4 UDP checksums
    rcvbuf: int = 4 << 20                        # bytes of socket buffer per side


@dataclass(frozen=True)
class Action:
    """What to do with one ESP packet: pass, hold, drop, duplicate (times), modify (edit)."""
    kind: str
    times: int = 1
    edit: Callable[[bytes], bytes] | None = None


PASS = Action("pass")
HOLD = Action("hold")
DROP = Action("drop")


def duplicate(times: int = 2) -> Action:
    if times < 1:
        raise ValueError("duplicate() sends a packet at least once")
    return Action("duplicate", times)


def modify(edit: Callable[[bytes], bytes]) -> Action:
    """Forward ``edit(esp_bytes)`` instead of the ESP bytes (lengths and checksums fixed)."""
    return Action("modify", 1, edit)


Policy = Union[Action, Callable[["Packet"], "Action | None"]]


@dataclass(frozen=True)
class Packet:
    """One ESP (or EESP) packet the relay saw."""
    number: int
    side: str              # the end it came from
    kind: str              # "esp" or "eesp"
    frame: bytes           # the whole Ethernet frame, checksums complete
    offset: int            # where the ESP bytes start in the frame
    layout: Layout
    at: float              # time.monotonic() when it was read

    @property
    def toward(self) -> str:
        return _OTHER[self.side]

    @property
    def esp(self) -> bytes:
        return self.frame[self.offset:self.layout.end]

    @property
    def spi(self) -> int:
        return int.from_bytes(self.esp[:4], "big")

    @property
    def seq(self) -> int:
        return int.from_bytes(self.esp[4:8], "big")

    def with_esp(self, esp: bytes, *, zero_udp_checksum: bool = False) -> bytes:
        """This packet's frame carrying ``esp`` instead, lengths and checksums fixed."""
        return replace_payload(self.frame, self.layout, self.offset, esp,
                               zero_udp_checksum=zero_udp_checksum)


class Relay:
    """See the module's docstring. ``start()`` it (or use ``with``); ``close()`` ends it."""

    def __init__(self, topology, config: RelayConfig | None = None,
                 policy: Policy = PASS) -> None:
        self.topology, self.config, self.policy = topology, config or RelayConfig(), policy
        self.ns = topology.ns["mid"]
        self.ifnames = dict(topology.MID_IF)             # side -> the middle's interface
        self.socks: dict[str, socket.socket] = {}
        self.stats = {"forwarded": 0, "esp": 0, "offload_completed": 0, "bad_checksum": 0,
                      "injected": 0, "dropped": 0}
        self.broken: list[tuple[str, bytes]] = []      # (from side, frame) bad checksums
        self.seen: list[Packet] = []                   # every ESP packet, in order
        self._held: list[Packet] = []
        self._unclaimed = {"a": deque(), "b": deque()}
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._stopping = False
        self.closed = False

    # --- life ---------------------------------------------------------------------------

    def start(self) -> "Relay":
        if self.closed or self.topology.closed:
            raise TopologyClosed("the relay or its topology is closed")
        self.topology.relays.append(self)
        try:
            for side, ifname in self.ifnames.items():
                self.socks[side] = self._open(ifname)
            self._wake = os.pipe()
            self._thread = threading.Thread(target=self._loop, name=f"relay {self.ns}",
                                            daemon=True)
            self._thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self, ifname: str) -> socket.socket:
        s = nsenter.socket_in(self.ns, socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:
                s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass                                     # old kernel: the type check below
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.rcvbuf)
            s.bind((ifname, ETH_P_ALL))
            s.setblocking(False)
        except OSError as e:
            s.close()
            raise NamespaceError(f"AF_PACKET socket on {ifname} in {self.ns}: {e}") from None
        return s

    def __enter__(self) -> "Relay":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the loop, close the sockets. Held packets are forgotten. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._stopping = True
        if self._wake is not None:
            try:
                os.write(self._wake[1], b"x")
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        for s in self.socks.values():
            s.close()
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
        with self._cond:
            self._cond.notify_all()
        if self in self.topology.relays:
            self.topology.relays.remove(self)

    # --- the loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        poller = select.poll()
        by_fd = {}
        for side, s in self.socks.items():
            poller.register(s.fileno(), select.POLLIN)
            by_fd[s.fileno()] = side
        poller.register(self._wake[0], select.POLLIN)
        anc_size = socket.CMSG_SPACE(_AUX.size)
        try:
            while not self._stopping:
                for fd, _ in poller.poll():
                    side = by_fd.get(fd)
                    if side is None:
                        return                            # the wake-up pipe: closing
                    s = self.socks[side]
                    while not self._stopping:
                        try:
                            frame, anc, _, addr = s.recvmsg(65536, anc_size)
                        except (BlockingIOError, InterruptedError):
                            break
                        if addr[2] == PACKET_OUTGOING:
                            continue
                        status = 0
                        for level, kind, data in anc:
                            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                                status = _AUX.unpack_from(data.ljust(_AUX.size, b"\0"))[0]
                        self._handle(side, frame, status)
        except BaseException as e:  # noqa: BLE001 -- raised in the caller's thread
            if not self._stopping:
                self._fail(e)

    def _fail(self, e: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = e
            self._cond.notify_all()
        log.error("relay %s: %s: %s", self.ns, type(e).__name__, e)

    def _send(self, toward: str, frame: bytes) -> None:
        self.socks[toward].send(frame)

    def _handle(self, side: str, frame: bytes, status: int) -> None:
        toward = _OTHER[side]
        lay = layout(frame)
        if lay is not None:
            if status & TP_STATUS_CSUMNOTREADY:
                frame = complete_checksum(frame, lay)
                self.stats["offload_completed"] += 1
            elif not checksums_ok(frame, lay):
                self.stats["bad_checksum"] += 1
                self.broken.append((side, frame))
                log.warning("relay %s: a frame from %s with a wrong checksum, forwarded "
                            "as it came", self.ns, side)
        found = esp_offset(frame, lay, nat_ports=self.config.nat_ports,
                           eesp_port=self.config.eesp_port) if lay is not None else None
        if found is None:
            self.stats["forwarded"] += 1          # counted first: a receiver that has the
            self._send(toward, frame)             # frame sees it counted
            return
        with self._cond:
            pkt = Packet(self.stats["esp"], side, found[0], frame, found[1], lay,
                         time.monotonic())
            self.stats["esp"] += 1
        policy = self.policy
        try:
            action = (policy(pkt) if callable(policy) else policy) or PASS
            if not isinstance(action, Action):
                raise TypeError(f"a relay policy returns an Action, not {action!r}")
            out = frame
            if action.kind == "modify":
                out = pkt.with_esp(bytes(action.edit(pkt.esp)),
                                   zero_udp_checksum=self.config.zero_udp_checksum)
        except Exception as e:  # noqa: BLE001 -- keep the packet, tell the caller
            action = HOLD
            failure = RelayError(f"the relay's policy raised on packet {pkt.number}: "
                                 f"{type(e).__name__}: {e}")
        else:
            failure = None
        if failure is not None:        # held first, then told: a waiter sees both at once
            with self._cond:
                self._held.append(pkt)
                self.seen.append(pkt)
                self._unclaimed[side].append(pkt)
            self._fail(failure)
            return
        with self._cond:                          # recorded before it is sent on
            if action.kind == "hold":
                self._held.append(pkt)
            elif action.kind == "drop":
                self.stats["dropped"] += 1
            self.seen.append(pkt)
            self._unclaimed[side].append(pkt)
            self._cond.notify_all()
        if action.kind in ("pass", "duplicate", "modify"):
            for _ in range(action.times):
                self._send(toward, out)

    # --- the caller's side --------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e if isinstance(e, RelayError) else RelayError(f"{type(e).__name__}: {e}")
        if self.closed:
            raise TopologyClosed("the relay is closed")

    def next_esp(self, side: str, timeout: float = 2.0) -> Packet:
        """The next ESP packet from end ``side`` not yet returned by this call."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._check()
                if self._unclaimed[side]:
                    return self._unclaimed[side].popleft()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RelayTimeout(f"no ESP packet from {side} in {timeout:g} s")
                self._cond.wait(left)

    def held(self) -> list[Packet]:
        with self._cond:
            return list(self._held)

    def wait_held(self, count: int, timeout: float = 2.0) -> list[Packet]:
        """Wait until at least ``count`` packets are held; the held packets."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._held) < count:
                self._check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RelayTimeout(f"{len(self._held)} of {count} packets held after "
                                       f"{timeout:g} s")
                self._cond.wait(left)
            return list(self._held)

    def _take(self, which: "int | Packet") -> Packet:
        number = which.number if isinstance(which, Packet) else which
        with self._cond:
            self._check()
            for i, pkt in enumerate(self._held):
                if pkt.number == number:
                    return self._held.pop(i)
        raise KeyError(f"packet {number} is not held")

    def release(self, which: "int | Packet", times: int = 1,
                edit: Callable[[bytes], bytes] | None = None) -> Packet:
        """Send held packet ``which`` (its ``number``, or the Packet) on its way ``times``
        times (0: forget it), its ESP bytes replaced by ``edit(esp)`` if given."""
        pkt = self._take(which)
        frame = pkt.frame if edit is None else pkt.with_esp(
            bytes(edit(pkt.esp)), zero_udp_checksum=self.config.zero_udp_checksum)
        for _ in range(times):
            self._send(pkt.toward, frame)
        return pkt

    def release_all(self, order: list[int] | None = None) -> None:
        """Release every held packet, in ``order`` (packet numbers) or as they came."""
        for number in order if order is not None else [p.number for p in self.held()]:
            self.release(number)

    def discard(self, which: "int | Packet") -> Packet:
        return self._take(which)

    def inject(self, toward: str, frame: bytes, *, fix_checksums: bool = True) -> None:
        """Send ``frame`` (a whole Ethernet frame) toward end ``toward``."""
        self._check()
        lay = layout(frame)
        if fix_checksums and lay is not None:
            frame = complete_checksum(frame, lay)
        self._send(toward, frame)
        self.stats["injected"] += 1
