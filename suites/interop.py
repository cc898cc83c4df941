"""Interoperability: strongSwan and espspec's reference daemon exchange classic ESP, and
the model judges every packet on the wire.

Theory of operation: two real implementations, one conversation, three witnesses. The
ground is one ``harness.net.Topology`` (jumbo MTU) with a ``Relay`` in the middle that
passes everything (``PASS``) and records every ESP packet it forwards.

1. Keys. A ``StrongSwanPair`` negotiates one CHILD_SA (IKEv2, the asked-for AEAD, tunnel
   mode, ESP in UDP on 4500) between charon A at end a and charon B at end b, and reads
   the keys back from their logs (``Negotiated``, from A's point of view).
2. Swap the peer. Charon B is SIGKILLed (``kill_peer``: no DELETE, so A keeps the SA and
   port 4500 of end b is free) and the reference daemon (``espspec daemon``) takes its
   place in namespace b with an SA file holding the same SAs mirrored: the daemon's
   outbound SA is A's inbound one, its inbound SA A's outbound one; ESP in UDP from
   198.51.100.10:4500 to 192.0.2.10:4500, tunnel 203.0.113.2 <-> 203.0.113.1, TUN device
   ``espd0``, profile ``esp`` with the negotiated AEAD. It is up when it prints ``READY``.
   From here on charon A talks ESP with an implementation it never negotiated with; the
   only thing they share is what the SA file says IKE agreed.
3. Quiet ends. Both namespaces get the policy rule ``Topology.blackhole_from`` adds (everything
   arriving from the TUN device -- ``ipsec0`` in a, ``espd0`` in b -- is dropped before
   the local table), so no kernel answers a delivered packet with an ICMP error that
   would go back through the tunnel as a stray ESP packet.
4. Traffic. For each direction, a->b (strongSwan -> reference daemon) and then b->a, N
   inner packets (``session.make_payload``: IPv4 and IPv6 alternately, five sizes up to
   the 1400-byte TUN MTU libipsec reads with, protocol 253, a fill byte per packet so no
   two are alike) are written one at a time into the sender's TUN device through an
   AF_PACKET socket, as an application's packet routed into the tunnel would be. Each
   write waits for the relay to see one more ESP packet from that end (a sender that
   sends nothing is found at once), and for fewer than ``window`` (8) packets to be in
   flight toward the receiver: without it a receiver that a busy machine slows down
   overflows its UDP socket buffer (seen: 59 of 200 packets lost to ``RcvbufErrors``
   with two runs on two CPUs), which would be the harness's loss, not the
   implementation's. What the receiving implementation writes into its own TUN device
   is read there by a second AF_PACKET socket. A direction ends when every packet on
   the wire was delivered or reported dropped by its receiver (the daemon's ``DROP``
   lines, charon A's log), or after ``deliver_timeout``.
5. Judging (``judge``, pure). Every ESP packet the relay saw from the sending end is
   opened by the model (``spec_model.Receiver`` under the SA the sender should use): the
   i-th must carry the negotiated SPI and SN i (SEQ-FIRST-ONE, SEQ-STRICTLY-INCREASING,
   a gap is INTEROP-SN-GAP), authenticate (the model's drop names the requirement, e.g.
   ICV-VERIFY) and open to exactly the i-th plaintext written, with next header 4 or 41.
   Every plaintext the model opened must come out of the receiver's TUN device unchanged
   (RECV-ACCEPT-VALID); a packet the model refused must not (a receiver that delivers it
   breaks the rule the model's drop names); anything else delivered, or delivered twice,
   is a finding too. A finding names the direction, the packet number (1-based, in the
   order written) and the requirement: a catalogue ID where one fits, else INTEROP-...

Everything started here -- both charons, the daemon, the namespaces, the work folder --
is removed on every path, by PID (``Topology.close``), before ``run`` returns or raises.
The result keeps the relay's frames and the negotiated keys, so the command line can
write a capture and a Wireshark ``esp_sa`` table beside its report.
"""

from __future__ import annotations

import importlib.util
import os
import select
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable

from harness.daemon.safile import Endpoint, SaFile, SaSpec, write as write_sa_file
from harness.daemon.watch import LineWatcher
from harness.engine.session import make_payload
from harness.net.procs import last_line
from harness.net.errors import RelayTimeout
from harness.net.relay import Relay
from harness.net.topology import Topology, TopologyConfig
from spec_model import DropReason, Dropped, Profile, Receiver, named
from spec_model.aead import AEADS
from spec_model.errors import EspSpecError

__all__ = [
    "A_TO_B", "B_TO_A", "BadPacketCount", "BadPacketSize", "BadWindow", "CharonMissing",
    "DaemonFailed", "DirectionResult", "Finding", "InteropConfig", "InteropError",
    "InteropResult", "MAX_INNER", "MAX_PACKETS", "NO_SHARED_PROFILE", "PAIRS", "SecgwPort",
    "UnknownAead", "UnsupportedPair", "ViciMissing", "judge", "plaintexts", "profile_for",
    "run",
]

A_TO_B, B_TO_A = "a->b", "b->a"
NAMES = {"a": "strongswan", "b": "reference-daemon"}
DAEMON_IF = "espd0"
NAT_T = 4500
MTU = 9000
MAX_INNER = 1400 - 40         # libipsec's TUN MTU, less an IPv6 header
SIZES = (1, 64, 300, 777, MAX_INNER)      # an odd count: with v4/v6 a cycle of 10
MAX_PACKETS = 1280            # lcm(10, 256 fill bytes): beyond it plaintexts repeat
ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
SOL_PACKET, PACKET_IGNORE_OUTGOING, PACKET_OUTGOING = 263, 23, 4
NEXT_HEADER = {4: 4, 6: 41}   # tunnel mode: IP-in-IP by the inner version


class InteropError(EspSpecError):
    """Base of what the interop case raises on purpose; messages are one line."""


class BadPacketCount(InteropError):
    """``packets`` outside 1..MAX_PACKETS."""


class BadPacketSize(InteropError):
    """An inner packet size outside 1..MAX_INNER."""


class BadWindow(InteropError):
    """A window (packets in flight) below 1."""


class UnknownAead(InteropError):
    """An AEAD the model does not know."""


class CharonMissing(InteropError):
    """strongSwan's charon binary is not installed."""


class ViciMissing(InteropError):
    """The ``vici`` Python package (charon's control protocol) is not installed."""


class DaemonFailed(InteropError):
    """The reference daemon exited, or said no READY, while starting (or ipsec-secgw
    could not be built or started)."""


class UnsupportedPair(InteropError):
    """Two implementations the interop case cannot run against each other."""


@dataclass(frozen=True)
class InteropConfig:
    """What one interop run does. ``daemon_sa`` edits the SA file the daemon is given
    (after mirroring): for tests that prove the judging can fail (a wrong key)."""
    packets: int = 24                        # per direction
    aead: str = "aes128gcm16"
    sizes: tuple[int, ...] = SIZES
    send_timeout: float = 2.0                # per packet: its ESP packet on the wire
    deliver_timeout: float = 2.0             # after a direction's last packet
    window: int = 8                          # packets in flight toward the receiver
    ready_timeout: float = 10.0              # charons up, CHILD_SA up, daemon READY
    daemon_sa: Callable[[SaFile], SaFile] | None = None

    def __post_init__(self) -> None:
        if type(self.packets) is not int or not 1 <= self.packets <= MAX_PACKETS:
            raise BadPacketCount(f"--packets {self.packets}: expected 1..{MAX_PACKETS} "
                                 f"(beyond, the inner packets would repeat)")
        if self.aead not in AEADS:
            raise UnknownAead(f"--aead {self.aead}: unknown; known: "
                              f"{', '.join(sorted(AEADS))}")
        if type(self.window) is not int or self.window < 1:
            raise BadWindow(f"window {self.window}: at least 1 packet in flight")
        bad = [s for s in self.sizes if not 1 <= s <= MAX_INNER]
        if bad or not self.sizes:
            raise BadPacketSize(f"inner packet size {bad[0] if bad else 'list empty'}: "
                                f"expected 1..{MAX_INNER} (the TUN MTU is 1400)")


@dataclass(frozen=True)
class Finding:
    direction: str           # A_TO_B or B_TO_A
    packet: int | None       # 1-based, in the order written; None: not one packet's
    requirement: str         # a catalogue ID, or INTEROP-...
    detail: str

    def __str__(self) -> str:
        where = f"packet {self.packet}" if self.packet is not None else "traffic"
        return f"{self.direction} {where}: {self.requirement}: {self.detail}"

    def to_json(self) -> dict:
        return {"direction": self.direction, "packet": self.packet,
                "requirement": self.requirement, "detail": self.detail}


@dataclass(frozen=True)
class DirectionResult:
    direction: str
    sender: str
    receiver: str
    spi: int
    written: int             # plaintexts written into the sender's TUN device
    on_wire: int             # ESP packets the relay saw from the sender
    opened: int              # of them, opened by the model to the plaintext written
    delivered: int           # of those, written unchanged into the receiver's TUN device
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict:
        return {"direction": self.direction, "sender": self.sender,
                "receiver": self.receiver, "spi": f"{self.spi:#010x}",
                "verdict": self.verdict,
                "counts": {"written": self.written, "on_wire": self.on_wire,
                           "opened": self.opened, "delivered": self.delivered,
                           "findings": len(self.findings)},
                "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True)
class InteropResult:
    profile: Profile
    directions: tuple[DirectionResult, ...]
    versions: dict[str, str]                 # implementation name -> version
    out_spi: int                             # A's outbound SA (a->b) ...
    in_spi: int                              # ... and inbound (b->a)
    out_keymat: bytes
    in_keymat: bytes
    addresses: dict[str, str]                # side -> outer address
    frames: tuple[tuple[str, bytes], ...]    # (from side, Ethernet frame) of every ESP packet
    pids: dict[str, int]                     # what ran (all gone when run() returns)
    prefix: str                              # the topology's namespaces' prefix
    workdir: str                             # its work folder (removed)
    seconds: float
    packets: int
    names: tuple[tuple[str, str], ...] = tuple(NAMES.items())   # (side, implementation)

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.directions)

    def direction(self, label: str) -> DirectionResult:
        return next(d for d in self.directions if d.direction == label)

    def to_json(self) -> dict:
        return {"schema": "espspec-interop/1", "verdict": "PASS" if self.passed else "FAIL",
                "implementations": {
                    side: {"name": name, "version": self.versions[name],
                           "address": self.addresses[side]}
                    for side, name in self.names},
                "profile": self.profile.axes(), "packets_per_direction": self.packets,
                "esp_packets_seen": len(self.frames), "seconds": round(self.seconds, 3),
                "directions": [d.to_json() for d in self.directions]}


# --- what is written ------------------------------------------------------------------------
def profile_for(aead: str) -> Profile:
    """The ``esp`` profile (RFC 4303, 32-bit SN, tunnel) with ``aead``."""
    base = named("esp")
    return base if aead == base.aead else replace(base, aead=aead, name=f"esp-{aead}")


def plaintexts(profile: Profile, count: int, sizes: tuple[int, ...] = SIZES,
               from_peer: bool = False, v6: bool = True) -> list[bytes]:
    """The inner packets of one direction: packet k (1-based) is IPv6 when k is even
    (unless ``v6`` is False: IPv4 only), ``sizes[k % len(sizes)]`` bytes of payload
    filled from byte k; no two alike."""
    out = [make_payload(profile, sizes[k % len(sizes)], fill=k & 0xFF,
                        v6=v6 and k % 2 == 0, from_peer=from_peer)[0]
           for k in range(1, count + 1)]
    if len(set(out)) != len(out):
        raise BadPacketSize(f"{count} packets of sizes {sizes}: some would be alike (an "
                            f"odd number of sizes keeps them apart)")
    return out


# --- judging (pure) -------------------------------------------------------------------------
def _diff(a: bytes, b: bytes) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{len(a)} bytes where {len(b)} were written, first difference at byte {at}"


def judge(direction: str, sender: str, receiver: str, profile: Profile, spi: int,
          keymat: bytes, written: list[bytes], wire: list[bytes], delivered: list[bytes],
          receiver_drops: list[tuple[int | None, str]] = (),
          unsent: int | None = None, send_timeout: float = 0.0) -> DirectionResult:
    """One direction's findings. ``written``: the plaintexts, in order; ``wire``: the ESP
    packets the relay saw from the sender, in order; ``delivered``: what came out of the
    receiver's TUN device; ``receiver_drops``: (SN or None, the receiver's words) for the
    drops it reported; ``unsent``: the first packet that did not reach the wire."""
    findings: list[Finding] = []

    def find(packet: int | None, requirement: str, detail: str) -> None:
        findings.append(Finding(direction, packet, requirement, detail))

    if unsent is not None:
        rest = f" (packets {unsent + 1}..{len(written)} were not written)" \
            if unsent < len(written) else ""
        find(unsent, "INTEROP-NOT-SENT", f"written into {sender}'s TUN device; no ESP "
             f"packet from {sender} within {send_timeout:g} s{rest}")
    rx = Receiver(profile, keymat, spi)
    opened: set[int] = set()
    refused: dict[int, Dropped] = {}
    seqs: dict[int, int] = {}
    prev = 0
    for i, esp in enumerate(wire, 1):
        got_spi = int.from_bytes(esp[:4], "big")
        seq = int.from_bytes(esp[4:8], "big")
        seqs[i] = seq
        if i > len(written):
            find(i, "INTEROP-UNEXPECTED-ESP", f"ESP packet {i} on the wire (SPI "
                 f"{got_spi:#010x}, SN {seq}), but {len(written)} plaintexts were written")
        if got_spi != spi:
            find(i, "INTEROP-SPI", f"SPI {got_spi:#010x}; the negotiated SA is {spi:#010x}")
            continue
        sn_finding = True
        if i == 1 and seq != 1:
            find(i, "SEQ-FIRST-ONE", f"the SA's first packet carries SN {seq}")
        elif seq <= prev:
            find(i, "SEQ-STRICTLY-INCREASING", f"SN {seq} after SN {prev}")
        elif seq != prev + 1:
            find(i, "INTEROP-SN-GAP", f"SN {seq} after SN {prev}: SNs {prev + 1}.."
                 f"{seq - 1} never appeared on the wire")
        else:
            sn_finding = False
        prev = max(prev, seq)
        out = rx.open(esp)
        if isinstance(out, Dropped):
            if i <= len(written):
                refused[i] = out
            if not (sn_finding and out.reason in (DropReason.REPLAY, DropReason.TOO_OLD)):
                find(i, out.requirement or "RECV-ACCEPT-VALID", f"the model drops it under "
                     f"the negotiated SA {spi:#010x}: {out.reason.value} ({out.detail})")
            continue
        if i > len(written):
            continue
        want = written[i - 1]
        if out.payload != want:
            find(i, "INTEROP-PLAINTEXT", f"opens to {_diff(out.payload, want)}")
        elif out.next_header != NEXT_HEADER.get(want[0] >> 4):
            find(i, "INTEROP-NEXT-HEADER", f"next header {out.next_header} for an "
                 f"IPv{want[0] >> 4} packet in tunnel mode (expected "
                 f"{NEXT_HEADER.get(want[0] >> 4)})")
        else:
            opened.add(i)

    index = {p: k for k, p in enumerate(written, 1)}
    got: Counter[int] = Counter()
    for n, data in enumerate(delivered, 1):
        k = index.get(data)
        if k is None:
            find(None, "INTEROP-UNEXPECTED-DELIVERY", f"{receiver} delivered {len(data)} "
                 f"bytes (its delivery {n}) that are none of the plaintexts written")
            continue
        got[k] += 1
        if got[k] == 2:
            find(k, "INTEROP-DUPLICATE-DELIVERY", f"{receiver} delivered it more than once "
                 f"(the wire carried it once)")
    by_seq = {s: words for s, words in receiver_drops if s is not None}
    unplaced = [words for s, words in receiver_drops if s is None]
    told = False
    for k in range(1, len(written) + 1):
        if k in opened and not got[k]:
            said = by_seq.get(seqs.get(k, -1))
            if said is None and unplaced and not told:
                said, told = (f"{len(unplaced)} drops without an SN, the first: "
                              f"{unplaced[0]}"), True
            find(k, "RECV-ACCEPT-VALID", f"the model opens it (SN {seqs[k]}) but {receiver} "
                 f"did not deliver it" + (f"; {receiver}: {said}" if said else ""))
        elif k in refused and got[k]:
            find(k, refused[k].requirement or "RECV-ACCEPT-VALID", f"{receiver} delivered "
                 f"it, yet the model drops it: {refused[k].reason.value}")
    return DirectionResult(direction, sender, receiver, spi, len(written), len(wire),
                           len(opened), sum(1 for k in opened if got[k]), tuple(findings))


# --- the ends -------------------------------------------------------------------------------
class TunPort:
    """espspec at one TUN device: ``write`` sends a packet into it as an application's
    packet routed into the tunnel would go (a socket of protocol 0, which receives
    nothing); ``read`` takes what the implementation delivered there (a second socket,
    ETH_P_ALL, its own and the kernel's transmissions ignored)."""

    def __init__(self, topology: Topology, side: str, interface: str) -> None:
        self.interface = interface
        self.tx = topology.socket(side, socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            self.rx = topology.socket(side, socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        except BaseException:
            self.tx.close()
            raise
        try:
            self.rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.rx.bind((interface, ETH_P_ALL))
            self.rx.setblocking(False)
        except BaseException:
            self.close()
            raise

    def write(self, packet: bytes) -> None:
        proto = ETH_P_IPV6 if packet[0] >> 4 == 6 else ETH_P_IP
        self.tx.sendto(packet, (self.interface, proto))

    def read(self, timeout: float = 0.0) -> list[bytes]:
        """What was delivered so far; waits up to ``timeout`` for the first of it."""
        out: list[bytes] = []
        if timeout > 0:
            select.select([self.rx], [], [], timeout)
        while True:
            try:
                data, addr = self.rx.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return out
            if addr[2] != PACKET_OUTGOING:
                out.append(data)

    def close(self) -> None:
        for s in (getattr(self, "tx", None), getattr(self, "rx", None)):
            if s is not None:
                s.close()


class _Daemon:
    """The reference daemon in end b: spawned through the topology (killed by its PID on
    close), its stdout watched for READY and DROP lines."""

    def __init__(self, topology: Topology, sa: SaFile) -> None:
        folder = topology.folder()
        self.sa_path = os.path.join(folder, "daemon-sa.json")
        self.err_path = os.path.join(folder, "daemon.err")
        write_sa_file(self.sa_path, sa)
        with open(self.err_path, "wb") as err:
            self.child = topology.spawn(
                "b", [sys.executable, "-m", "harness.cli", "daemon", "--sa", self.sa_path],
                stdout=subprocess.PIPE, stderr=err, cwd=folder)
        self.lines = LineWatcher(self.child.proc.stdout, "reference daemon")

    def wait_ready(self, timeout: float) -> None:
        if self.lines.wait(("READY",), 0, timeout) is None:
            if self.lines.closed:                # its stdout ended: it is exiting
                try:
                    self.child.proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    pass
            if not self.child.alive():
                raise DaemonFailed(f"the reference daemon exited with status "
                                   f"{self.child.proc.returncode}: {self.last_words()}")
            raise DaemonFailed(f"the reference daemon said no READY within {timeout:g} s")

    def last_words(self) -> str:
        return last_line(self.err_path, "it printed nothing")

    def drops(self, since: int) -> list[tuple[int | None, str]]:
        return [(ev.number("seq"), ev.line) for ev in self.lines.since(since)
                if ev.kind == "DROP"]


@dataclass
class _Leg:
    """One direction while it runs."""
    label: str
    side: str                                # the sending end
    source: TunPort
    sink: TunPort
    spi: int
    keymat: bytes
    drops: Callable[[], list[tuple[int | None, str]]]
    written: list[bytes] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)
    unsent: int | None = None


def _drive(leg: _Leg, relay: Relay, packets: list[bytes], cfg: InteropConfig) -> int:
    """Write the packets one at a time, each when the last is on the wire and fewer than
    ``cfg.window`` are in flight (on the wire, neither delivered nor reported dropped:
    a receiver slower than its sender must not lose packets to a full socket buffer);
    collect the deliveries. The number of ESP packets that went out."""
    sent, paced = 0, True

    def settled() -> int:
        return len(leg.delivered) + len(leg.drops())

    for k, packet in enumerate(packets, 1):
        if paced and sent - settled() >= cfg.window:
            deadline = time.monotonic() + cfg.deliver_timeout
            while sent - settled() >= cfg.window:
                left = deadline - time.monotonic()
                if left <= 0:                # a receiver that loses packets silently:
                    paced = False            # the rest at the sender's pace, and judged
                    break
                leg.delivered += leg.sink.read(min(left, 0.05))
        leg.source.write(packet)
        leg.written.append(packet)
        try:
            relay.next_esp(leg.side, cfg.send_timeout)
        except RelayTimeout:
            leg.unsent = k
            break
        sent += 1
        leg.delivered += leg.sink.read()
    deadline = time.monotonic() + cfg.deliver_timeout
    while settled() < sent:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        leg.delivered += leg.sink.read(min(left, 0.05))
    time.sleep(0.05)                         # a late duplicate or stray still counts
    leg.delivered += leg.sink.read()
    return sent


def _exchange(legs: list[tuple[_Leg, bool]], relay: Relay, profile: Profile,
              cfg: InteropConfig, names: dict[str, str], v6: bool) -> list[DirectionResult]:
    """Drive every leg (``(leg, from_peer)``) in turn, then judge each from the relay's
    frames: one DirectionResult per leg."""
    for leg, from_peer in legs:
        _drive(leg, relay, plaintexts(profile, cfg.packets, cfg.sizes, from_peer, v6=v6),
               cfg)
    results = []
    for leg, _ in legs:
        sender, receiver = names[leg.side], names["b" if leg.side == "a" else "a"]
        wire = [p.esp for p in list(relay.seen) if p.side == leg.side]
        results.append(judge(leg.label, sender, receiver, profile, leg.spi, leg.keymat,
                             leg.written, wire, leg.delivered, leg.drops(), leg.unsent,
                             cfg.send_timeout))
    return results


def _tear_down(ports: list, end, topo: Topology, daemon: "_Daemon | None") -> None:
    """Close the ports, the implementation at end a (``end.close()``), the topology (relay,
    daemon, every process, the namespaces, the work folder) and the daemon's watcher."""
    for port in ports:
        port.close()
    try:
        if end is not None:
            end.close()
    finally:
        topo.close()
        if daemon is not None:
            daemon.lines.close()


def _check_environment() -> None:
    from harness.strongswan.rig import CHARON
    if not os.access(CHARON, os.X_OK):
        raise CharonMissing(f"strongSwan's charon ({CHARON}) is not installed (Debian: "
                            f"strongswan-charon libcharon-extra-plugins)")
    if importlib.util.find_spec("vici") is None:
        raise ViciMissing("the vici Python package is not installed (pip install vici)")


def _espspec_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"espspec {version('espspec')}"
    except PackageNotFoundError:
        return "espspec (not installed)"


def run(cfg: InteropConfig = InteropConfig(),
        pair: tuple[str, str] = ("strongswan", "reference-daemon")) -> InteropResult:
    """The whole case for ``pair`` (end a, end b; see the module's docstring): set up,
    exchange, judge, tear down. UnsupportedPair for two that share no profile."""
    pair = tuple(pair)
    if pair not in PAIRS:
        why = NO_SHARED_PROFILE.get(frozenset(pair))
        raise UnsupportedPair(
            f"{pair[0]} and {pair[1]}: {why}" if why else
            f"interop runs {' or '.join(f'{a} (end a) against {b} (end b)' for a, b in PAIRS)}"
            f", not {pair[0]} against {pair[1]}")
    return PAIRS[pair](cfg)


def _run_strongswan(cfg: InteropConfig) -> InteropResult:
    """strongSwan (charon A, end a) against the reference daemon in charon B's place."""
    _check_environment()
    from harness.strongswan import StrongSwanPair
    profile = profile_for(cfg.aead)
    t0 = time.monotonic()
    topo = Topology.create(config=TopologyConfig(mtu=MTU))
    pair = daemon = None
    ports: list[TunPort] = []
    try:
        relay = Relay(topo).start()
        pair = StrongSwanPair(topo, os.path.join(topo.folder(), "charons"))
        pair.start(timeout=cfg.ready_timeout)
        neg = pair.establish(cfg.aead, timeout=cfg.ready_timeout)
        pids = {"charon-a": pair.pids()["a"], "charon-b": pair.pids()["b"]}
        pair.kill_peer()
        ends = topo.ends
        sa = SaFile(profile=profile, generation=0, encapsulation="udp",
                    local=Endpoint(ends["b"].address, NAT_T),
                    peer=Endpoint(ends["a"].address, NAT_T),
                    tunnel_local=pair.inner["b"], tunnel_peer=pair.inner["a"],
                    interface=DAEMON_IF,
                    outbound=SaSpec(neg.in_spi, neg.in_keymat, profile.n_sub_sas),
                    inbound=SaSpec(neg.out_spi, neg.out_keymat, profile.n_sub_sas))
        if cfg.daemon_sa is not None:
            sa = cfg.daemon_sa(sa)
        daemon = _Daemon(topo, sa)
        pids["reference-daemon"] = daemon.child.pid
        daemon.wait_ready(cfg.ready_timeout)
        topo.blackhole_from("a", pair.tun_name)
        topo.blackhole_from("b", DAEMON_IF)
        ports = [TunPort(topo, "a", pair.tun_name), TunPort(topo, "b", DAEMON_IF)]
        a_port, b_port = ports
        mark_daemon, mark_charon = daemon.lines.mark(), pair.mark()
        legs = [
            (_Leg(A_TO_B, "a", a_port, b_port, neg.out_spi, neg.out_keymat,
                  lambda: daemon.drops(mark_daemon)), False),
            (_Leg(B_TO_A, "b", b_port, a_port, neg.in_spi, neg.in_keymat,
                  lambda: [(d.seq, d.line.strip())
                           for d in pair.drops_since(mark_charon)]), True),
        ]
        results = _exchange(legs, relay, profile, cfg, NAMES, v6=True)
        result = InteropResult(
            profile=profile, directions=tuple(results),
            versions={"strongswan": f"strongSwan {pair.version} (charon, kernel-libipsec)",
                      "reference-daemon": _espspec_version()},
            out_spi=neg.out_spi, in_spi=neg.in_spi, out_keymat=neg.out_keymat,
            in_keymat=neg.in_keymat, addresses={s: e.address for s, e in ends.items()},
            frames=tuple((p.side, p.frame) for p in list(relay.seen)), pids=pids,
            prefix=topo.prefix, workdir=topo.folder(), seconds=0.0, packets=cfg.packets)
    finally:
        _tear_down(ports, pair, topo, daemon)
    return replace(result, seconds=time.monotonic() - t0)


# --- DPDK's ipsec-secgw against the reference daemon -----------------------------------------
class SecgwPort:
    """espspec at ipsec-secgw's plaintext port (a TAP device, Ethernet frames): ``write``
    sends an inner packet to the secgw, ``read`` takes what it decrypted."""

    def __init__(self, secgw) -> None:
        self.secgw = secgw
        self.sock = secgw.plain_socket()
        self.sock.setblocking(False)

    def write(self, packet: bytes) -> None:
        self.sock.send(self.secgw.plain_frame(packet))

    def read(self, timeout: float = 0.0) -> list[bytes]:
        out: list[bytes] = []
        if timeout > 0:
            select.select([self.sock], [], [], timeout)
        while True:
            try:
                frame, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return out
            if addr[2] != PACKET_OUTGOING and len(frame) > 14:
                out.append(frame[14:])

    def close(self) -> None:
        self.sock.close()


def _run_dpdk(cfg: InteropConfig) -> InteropResult:
    """ipsec-secgw (end a) against the reference daemon (end b): raw ESP (IP protocol 50),
    SAs espspec writes into both (secgw has no IKE), IPv4 inner packets only (secgw binds
    an SA to one inner IP version: harness.dpdk.config.tunnel_config)."""
    from harness.dpdk import AEADS as SECGW_AEADS, Secgw, SecgwError, SecgwSa, build_binary
    if cfg.aead not in SECGW_AEADS:
        raise UnknownAead(f"--aead {cfg.aead}: ipsec-secgw has no such AEAD; it takes "
                          f"{', '.join(SECGW_AEADS)}")
    try:
        binary = build_binary()
    except SecgwError as e:
        raise DaemonFailed(f"ipsec-secgw: {e}") from None
    profile = profile_for(cfg.aead)
    need = SECGW_AEADS[cfg.aead].key_len + 4
    out_spi, in_spi = (0x0D000000 | int.from_bytes(os.urandom(3), "big") for _ in range(2))
    if in_spi == out_spi:
        in_spi ^= 1
    out_keymat, in_keymat = os.urandom(need), os.urandom(need)
    t0 = time.monotonic()
    topo = Topology.create(config=TopologyConfig(mtu=MTU))
    daemon = gw = None
    ports: list = []
    try:
        relay = Relay(topo).start()
        ends = topo.ends
        gw = Secgw(topo, binary, window=profile.window, esn=False,
                   outbound=SecgwSa(out_spi, cfg.aead, out_keymat),
                   inbound=SecgwSa(in_spi, cfg.aead, in_keymat),
                   inner_local="203.0.113.1", inner_peer="203.0.113.2")
        gw.start(timeout=cfg.ready_timeout)
        pids = {"dpdk": gw.pid}
        sa = SaFile(profile=profile, generation=0, encapsulation="esp",
                    local=Endpoint(ends["b"].address, None),
                    peer=Endpoint(ends["a"].address, None),
                    tunnel_local="203.0.113.2", tunnel_peer="203.0.113.1",
                    interface=DAEMON_IF,
                    outbound=SaSpec(in_spi, in_keymat, profile.n_sub_sas),
                    inbound=SaSpec(out_spi, out_keymat, profile.n_sub_sas))
        if cfg.daemon_sa is not None:
            sa = cfg.daemon_sa(sa)
        daemon = _Daemon(topo, sa)
        pids["reference-daemon"] = daemon.child.pid
        daemon.wait_ready(cfg.ready_timeout)
        topo.blackhole_from("b", DAEMON_IF)
        ports = [SecgwPort(gw)]
        ports.append(TunPort(topo, "b", DAEMON_IF))
        a_port, b_port = ports
        mark_daemon = daemon.lines.mark()
        legs = [
            (_Leg(A_TO_B, "a", a_port, b_port, out_spi, out_keymat,
                  lambda: daemon.drops(mark_daemon)), False),
            (_Leg(B_TO_A, "b", b_port, a_port, in_spi, in_keymat, lambda: []), True),
        ]
        names = {"a": "dpdk", "b": "reference-daemon"}
        results = _exchange(legs, relay, profile, cfg, names, v6=False)
        result = InteropResult(
            profile=profile, directions=tuple(results),
            versions={"dpdk": f"DPDK {gw.version} (ipsec-secgw, librte_ipsec)",
                      "reference-daemon": _espspec_version()},
            out_spi=out_spi, in_spi=in_spi, out_keymat=out_keymat, in_keymat=in_keymat,
            addresses={s: e.address for s, e in ends.items()},
            frames=tuple((p.side, p.frame) for p in list(relay.seen)), pids=pids,
            prefix=topo.prefix, workdir=topo.folder(), seconds=0.0, packets=cfg.packets,
            names=tuple(names.items()))
    finally:
        _tear_down(ports, gw, topo, daemon)
    return replace(result, seconds=time.monotonic() - t0)


PAIRS: dict[tuple[str, str], Callable[[InteropConfig], InteropResult]] = {
    ("strongswan", "reference-daemon"): _run_strongswan,
    ("dpdk", "reference-daemon"): _run_dpdk,
}
NO_SHARED_PROFILE = {
    frozenset({"strongswan", "dpdk"}):
        "no profile both speak: strongSwan 5.9.8's kernel-libipsec sends and takes ESP in "
        "UDP only (RFC 3948, port 4500), ipsec-secgw's software SAs raw ESP (IP protocol "
        "50) only -- UDP encapsulation exists in secgw for inline/lookaside offload SAs",
}
