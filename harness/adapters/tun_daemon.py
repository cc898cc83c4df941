"""The TUN-daemon adapter: a daemon in a network namespace, driven through the IUT verbs.

Theory of operation: the daemon runs at end a of a ``harness.net.Topology``; espspec is
its peer at end b, and the relay in the middle sees every ESP packet. The five verbs
become packets:

* ``install(outbound, inbound)`` writes the SA file (``harness.daemon.safile``; the
  daemon's inner address is 203.0.113.1, the peer's 203.0.113.2, as
  ``session.make_payload`` addresses its packets) and starts the daemon, or, when one is
  already running with the same encapsulation and port, rewrites the file and rekeys it
  (SIGHUP and ``READY generation=N``, or a restart, as its description says). The next
  session's SAs are one more generation of the same daemon: no restart per case.
* ``protect(sub_sa, payload, nh)`` steers the daemon to the sub-SA (control line
  ``SUB-SA K``) and writes the plaintext into the daemon's TUN device with an AF_PACKET
  socket in namespace a, as if an application had sent it (in transport mode behind an IP
  header from the daemon's inner address to the peer's, protocol ``nh``). The packet the
  relay then sees from end a is the answer; a ``REFUSE`` or ``IGNORE`` line, or nothing
  within ``send_wait``, is a ``Refused``.
* ``unprotect(wire)`` injects ``wire`` toward end a in a UDP datagram from end b's port,
  and waits for the payload to come out of the TUN device (a packet the AF_PACKET socket
  sees as PACKET_HOST: in tunnel mode the inner packet, in transport mode what follows
  its IP header). A ``DROP`` line ends the wait at once, with the daemon's reason and
  requirement; without event lines ``drop_wait`` seconds of silence is a ``Dropped``
  whose reason cannot be told.

* ``evidence()`` (when a session fails) is the session's frames -- every ESP frame the
  relay saw and every frame espspec injected since the session's ``install`` -- as
  ``packets.pcap``, with the Wireshark ``esp_sa`` table of every SA the session had (the
  pair of its install and of each rekey, as the daemon has them: the negotiated ones for
  a driver that negotiates) and a ``README.txt`` (``harness.capture.evidence``). The rig
  keeps the frames it injects (``TunRig.injected``) beside the relay's ``seen``.

A packet the kernel of namespace a would answer (an ICMP error for a delivered payload
nobody listens to) must not become a stray packet through the tunnel: a policy rule
drops everything that arrives from the TUN device before the local table is consulted
(the AF_PACKET socket still sees it first). Answers are matched to requests by order:
before each verb whatever is left over from the last one is discarded.

The rig (topology, relay, daemon, sockets) lives in the process that builds the IUTs --
the isolation worker, one per run -- and is reused by the next session's IUT (a worker
forked from a process that holds rigs does not inherit them);
``close_rigs`` (atexit, and the worker's end) stops it. The daemon's death is
``IutCrash`` with its exit status and the last line it wrote on stderr; a daemon that
never says ``READY`` is ``IutHang``. Nothing here knows a particular daemon: that is its
``DaemonSpec`` (``harness.daemon.vendor``), or a driver that negotiates its own keys
(``harness.adapters.strongswan``).
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import socket
import subprocess
import time
from dataclasses import replace

from spec_model import Mode
from spec_model.receiver import Delivered, DropReason, Dropped

from ..capture.evidence import DirectedSa, bundle
from ..contract import Capabilities, IutCrash, IutError, IutHang, Refused, SaConfig
from ..daemon import safile
from ..daemon.vendor import DaemonSpec, read as read_spec
from ..daemon.watch import LineWatcher
from ..net.errors import RelayTimeout
from ..net.frames import complete_checksum, ip_packet, layout
from ..net.procs import last_line
from ..net.relay import Relay, RelayConfig
from ..net.topology import Topology, TopologyConfig

__all__ = ["DaemonRig", "TunDaemonIut", "close_rigs", "daemon_family", "mutant_daemon",
           "reference_daemon", "reference_spec"]

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
PACKET_HOST, PACKET_OUTGOING = 0, 4
TUN_LOCAL, TUN_PEER = "203.0.113.1", "203.0.113.2"
INTERFACE = "espd0"
MTU = 9000
_DROP_REASONS = {r.value: r for r in DropReason}


class TunRig:
    """A topology, its relay and the AF_PACKET socket on a daemon's TUN device in end a.
    Subclasses say how SAs reach the daemon (``load``) and how it reports (``mark``,
    ``refusal``, ``drop``, ``delivered_meta``, ``wake``)."""

    interface = INTERFACE
    link_header = 0                # bytes of link header on what the device delivers (TAP: 14)
    send_wait = drop_wait = 1.0
    event_lines = False            # True: a drop is always reported (no bounded wait)

    def __init__(self, name: str, port: int | None, *, absorb: bool = True,
                 policy=None) -> None:
        """``port``: the UDP port ESP travels on, or None for raw ESP (IP protocol 50)."""
        self.name, self.port = name, port
        self.topology: Topology | None = None
        self.relay: Relay | None = None
        self.tun: socket.socket | None = None
        self.absorb: socket.socket | None = None
        self.injected: list[tuple[float, bytes]] = []   # (time.monotonic(), frame) sent
        try:
            # jumbo frames: a 1400-byte payload plus ESP, UDP and IP must not be fragmented
            self.topology = Topology.create(config=TopologyConfig(mtu=MTU))
            self.workdir = self.topology.folder()     # removed with the topology
            eesp_port = port if port not in (None, 4500) else None
            relay = Relay(self.topology, RelayConfig(eesp_port=eesp_port))
            if policy is not None:
                relay.policy = policy
            self.relay = relay.start()
            if absorb and port is not None:
                self.absorb = self.topology.udp_socket("b", port)   # no ICMP back to a
            elif absorb:                         # raw ESP: end b takes protocol 50 quietly
                fam = socket.AF_INET6 if ":" in self.topology.ends["b"].address else socket.AF_INET
                self.absorb = self.topology.socket("b", fam, socket.SOCK_RAW, 50)
        except BaseException:
            self.close()
            raise

    # --- what a subclass provides ------------------------------------------------------
    def load(self, outbound: SaConfig, inbound: SaConfig, verb: str):
        raise NotImplementedError

    def check_alive(self, verb: str) -> None:
        raise NotImplementedError

    def steer(self, verb: str, sub_sa: int) -> None:
        """Make the next packet go out on ``sub_sa`` (nothing: one sub-SA)."""

    def mark(self) -> int:
        return 0

    def refusal(self, mark: int) -> Refused | None:
        return None

    def drop(self, mark: int) -> Dropped | None:
        return None

    def delivered_meta(self, mark: int) -> tuple[int | None, int | None]:
        return None, None

    def wake(self) -> list:
        return []

    def evidence_sas(self) -> list[tuple[SaConfig, str]]:
        """SAs of the rig's own beside the session's ("in": toward the IUT), for the
        evidence's esp_sa table."""
        return []

    # --- the TUN device and the wire ---------------------------------------------------
    def open_tun(self, verb: str) -> None:
        if self.tun is not None:
            self.tun.close()
            self.tun = None
        s = self.topology.socket("a", socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            s.bind((self.interface, ETH_P_ALL))
        except OSError as e:
            s.close()
            raise IutError(f"{self.name} is up but its TUN device {self.interface} cannot be "
                           f"opened in {self.topology.ns['a']}: {e.strerror}") from None
        s.setblocking(False)
        self.tun = s

    def drain_tun(self) -> None:
        while True:
            try:
                self.tun.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return

    def write_tun(self, packet: bytes) -> None:
        proto = ETH_P_IPV6 if packet[:1] and packet[0] >> 4 == 6 else ETH_P_IP
        self.tun.sendto(packet, (self.interface, proto))

    def read_tun(self, timeout: float) -> bytes | None:
        """The next packet the daemon wrote into its TUN device, or None."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                data, addr = self.tun.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                select.select([self.tun], [], [], left)
                continue
            if addr[2] != PACKET_OUTGOING and len(data) > self.link_header:
                return data[self.link_header:]    # our own writes come back as outgoing

    def inject(self, wire: bytes) -> None:
        """Send ``wire`` toward end a as end b would (ESP in UDP, or raw protocol 50 when
        the rig has no port), and keep the frame as it goes on the wire (its checksums
        complete), with its time."""
        frame = (self.topology.ip_frame("b", 50, wire) if self.port is None else
                 self.topology.udp_frame("b", self.port, self.port, wire))
        lay = layout(frame)
        if lay is not None:
            frame = complete_checksum(frame, lay)
        self.relay.inject("a", frame, fix_checksums=False)
        self.injected.append((time.monotonic(), frame))

    def position(self) -> tuple[int, int]:
        """Where the frames of a session start: (relay's seen, injected) counts."""
        return len(self.relay.seen), len(self.injected)

    def frames_since(self, position: tuple[int, int]) -> list[tuple[float, bytes]]:
        """Every frame the relay saw and espspec injected since ``position``, as
        (time.monotonic(), Ethernet frame) pairs in time order."""
        seen, injected = position
        frames = [(p.at, p.frame) for p in self.relay.seen[seen:]] + self.injected[injected:]
        return sorted(frames, key=lambda f: f[0])

    def evidence_notes(self) -> list[str]:
        ends = self.topology.ends
        return [f"End a ({ends['a'].address}) is the IUT, {self.name}; end b "
                f"({ends['b'].address}) is espspec's model peer; UDP port {self.port}.",
                "The frames are the ESP packets the relay between them saw and those "
                "espspec injected toward a; nothing else (no IKE, no ARP)."]

    def stop_daemon(self) -> None:
        if self.tun is not None:
            self.tun.close()
            self.tun = None

    def close(self) -> None:
        try:
            self.stop_daemon()
        finally:
            if self.absorb is not None:
                self.absorb.close()
                self.absorb = None
            if self.topology is not None:
                self.topology.close()          # relay, children, namespaces, work folder


class DaemonRig(TunRig):
    """A daemon a ``DaemonSpec`` describes, at end a, configured by an SA file."""

    def __init__(self, spec: DaemonSpec, port: int | None) -> None:
        self.spec = spec
        self.send_wait = spec.send_wait
        self.drop_wait = spec.send_wait if spec.event_lines else spec.drop_wait
        self.event_lines = spec.event_lines
        self.child = None
        self.lines: LineWatcher | None = None
        self.generation = -1
        self.sub_sa: int | None = None
        super().__init__(spec.name, port)
        self.sa_path = os.path.join(self.workdir, "sa.json")
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        try:
            self.topology.blackhole_from("a", self.interface)
        except BaseException:
            self.close()
            raise

    def safile(self, outbound: SaConfig, inbound: SaConfig) -> safile.SaFile:
        ends = self.topology.ends
        self.generation += 1
        return safile.SaFile(
            profile=outbound.profile, generation=self.generation,
            encapsulation="udp" if self.port is not None else "esp",
            local=safile.Endpoint(ends["a"].address, self.port),
            peer=safile.Endpoint(ends["b"].address, self.port),
            tunnel_local=TUN_LOCAL, tunnel_peer=TUN_PEER, interface=self.interface,
            outbound=safile.SaSpec(outbound.spi, outbound.keymat, outbound.profile.n_sub_sas),
            inbound=safile.SaSpec(inbound.spi, inbound.keymat, inbound.profile.n_sub_sas))

    def load(self, outbound: SaConfig, inbound: SaConfig, verb: str) -> None:
        """Give the daemon these SAs: start it, or rekey it in place."""
        safile.write(self.sa_path, self.safile(outbound, inbound))
        self.sub_sa = None
        if self.child is not None and self.spec.rekey == "sighup" and self.child.alive():
            mark = self.lines.mark()
            os.kill(self.child.pid, signal.SIGHUP)
            self._await_ready(verb, mark)
            return
        self.stop_daemon()
        with open(self.stderr_path, "ab") as err:
            self.child = self.topology.spawn(
                "a", self.spec.argv(self.sa_path), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, cwd=self.workdir)
        self.lines = LineWatcher(self.child.proc.stdout, self.spec.name)
        self._await_ready(verb, 0)
        self.open_tun(verb)

    def _await_ready(self, verb: str, mark: int) -> None:
        gen, spec = self.generation, self.spec
        deadline = time.monotonic() + spec.ready_timeout
        while True:
            ev = self.lines.wait(("READY", "REKEY-FAILED"), mark,
                                 max(0.0, deadline - time.monotonic()))
            if ev is None:
                if self.lines.closed:         # stdout ended: the daemon is exiting
                    try:
                        self.child.proc.wait(timeout=2.0)
                    except subprocess.TimeoutExpired:
                        pass
                self.check_alive(verb)
                raise IutHang(verb, spec.ready_timeout,
                              f"no READY generation={gen} from {spec.name}")
            mark = self.lines.after(ev, mark)
            if ev.kind == "REKEY-FAILED":
                raise IutError(f"{spec.name} refused the SA file of generation {gen}: "
                               f"{self.last_stderr() or ev.line}")
            if ev.number("generation") in (gen, None):
                return

    def last_stderr(self) -> str:
        return last_line(self.stderr_path)

    def check_alive(self, verb: str) -> None:
        if self.child is None or self.child.alive():
            return
        rc = self.child.proc.returncode
        how = f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
        last = self.last_stderr()
        raise IutCrash(verb, f"{self.spec.name} {how}" + (f": {last}" if last else ""))

    def stop_daemon(self) -> None:
        super().stop_daemon()
        if self.child is not None:
            self.child.kill()
            if self.child in self.topology.made.children:
                self.topology.made.children.remove(self.child)
            self.child = None
        if self.lines is not None:
            self.lines.close()
            self.lines = None

    # --- control lines and event lines ---------------------------------------------------
    def command(self, verb: str, line: str) -> str:
        mark = self.lines.mark()
        try:
            self.child.proc.stdin.write((line + "\n").encode())
            self.child.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.check_alive(verb)
            raise IutCrash(verb, f"{self.spec.name} closed its control input") from None
        ev = self.lines.wait(("OK", "ERROR"), mark, self.spec.ready_timeout)
        if ev is None:
            self.check_alive(verb)
            raise IutHang(verb, self.spec.ready_timeout, f"no answer to {line!r}")
        if ev.kind == "ERROR":
            raise IutError(f"{self.spec.name} refused {line!r}: {ev.line}")
        return ev.line

    def steer(self, verb: str, sub_sa: int) -> None:
        if self.spec.control and self.sub_sa != sub_sa:
            self.command(verb, f"SUB-SA {sub_sa}")
            self.sub_sa = sub_sa

    def set_counter(self, sub_sa: int, value: int) -> None:
        self.command("set_counter", f"SET-COUNTER {sub_sa} {value}")

    def mark(self) -> int:
        return self.lines.mark() if self.lines is not None else 0

    def refusal(self, mark: int) -> Refused | None:
        if not self.event_lines:
            return None
        ev = self.lines.wait(("REFUSE", "IGNORE"), mark, 0)
        return None if ev is None else Refused(ev.get("requirement") or "", ev.line)

    def drop(self, mark: int) -> Dropped | None:
        if not self.event_lines:
            return None
        self.lines.clear()
        ev = self.lines.wait(("DROP", "IGNORE"), mark, 0)
        if ev is None:
            return None
        return Dropped(_DROP_REASONS.get(ev.get("reason") or ""),
                       ev.get("requirement") or "", ev.line, None, ev.number("seq"))

    def delivered_meta(self, mark: int) -> tuple[int | None, int | None]:
        if not self.event_lines:
            return None, None
        ev = self.lines.wait(("DELIVER",), mark, 0.2)
        return (None, None) if ev is None else (ev.number("sub_sa"), ev.number("seq"))

    def wake(self) -> list:
        return [self.lines] if self.event_lines and self.lines is not None else []


_RIGS: dict[tuple, TunRig] = {}
_OWNER = [os.getpid()]          # the process the rigs in _RIGS belong to


def _mine() -> dict[tuple, TunRig]:
    """The registry of this process. A process forked from one that held rigs (an
    isolation worker) inherits copies of them; they are the parent's daemons and
    namespaces, so the child forgets them without touching them."""
    if _OWNER[0] != os.getpid():
        _RIGS.clear()
        _OWNER[0] = os.getpid()
    return _RIGS


def rig_for(key: tuple, port: int, make) -> TunRig:
    """This process's rig under ``key``, reused while its port stays; ``make(port)``
    builds a new one."""
    rigs = _mine()
    rig = rigs.get(key)
    if rig is not None and rig.port == port and not rig.topology.closed:
        return rig
    if rig is not None:
        rigs.pop(key)
        rig.close()
    rig = rigs[key] = make(port)
    return rig


def close_rigs() -> None:
    rigs = _mine()
    while rigs:
        _, rig = rigs.popitem()
        try:
            rig.close()
        except Exception:  # noqa: BLE001 -- at exit, close what can be closed
            pass


atexit.register(close_rigs)


class TunDaemonIut:
    """The IUT contract over a daemon on a ``TunRig``; ``rig(profile)`` finds the rig."""

    def __init__(self, spec: DaemonSpec) -> None:
        self.spec = spec
        self.name, self.version = spec.name, spec.version
        self.rig_: TunRig | None = None
        self.profile = None
        self.since: tuple[int, int] | None = None      # the rig's position at install
        self.sas: list[tuple[SaConfig, SaConfig]] = []  # (outbound, inbound) installed

    def capabilities(self) -> Capabilities:
        return self.spec.capabilities

    def rig(self, profile) -> TunRig:
        spec = self.spec
        port = safile.default_port(profile) if spec.encapsulation == "udp" else None
        return rig_for((spec.name, spec.command), port, lambda port: DaemonRig(spec, port))

    def install(self, outbound: SaConfig, inbound: SaConfig):
        self.profile = outbound.profile
        self.rig_ = self.rig(outbound.profile)
        self.since = self.rig_.position()
        self.sas = [(outbound, inbound)]
        installed = self.rig_.load(outbound, inbound, "install")
        if installed is not None:
            self.sas = [installed]
        return installed

    def rekey(self, outbound: SaConfig, inbound: SaConfig):
        installed = self.rig_.load(outbound, inbound, "rekey")
        self.sas.append(installed if installed is not None else (outbound, inbound))
        return installed

    def evidence(self) -> dict[str, bytes] | None:
        """The session's frames as a pcap and its SAs as a Wireshark esp_sa table (see
        the module's docstring); None before any install."""
        rig = self.rig_
        if rig is None or self.since is None or rig.relay is None:
            return None
        to_wall = time.time() - time.monotonic()
        frames = [(at + to_wall, frame) for at, frame in rig.frames_since(self.since)]
        a, b = (rig.topology.ends[side].address for side in ("a", "b"))
        sas = []
        for outbound, inbound in self.sas:
            sas += [DirectedSa(outbound, a, b, "out"), DirectedSa(inbound, b, a, "in")]
        for sa, direction in rig.evidence_sas():
            sas.append(DirectedSa(sa, *((a, b) if direction == "out" else (b, a)), direction))
        return bundle(frames, sas, rig.evidence_notes())

    def protect(self, sub_sa: int, payload: bytes, next_header: int | None) -> bytes | Refused:
        rig = self.rig_
        rig.check_alive("protect")
        rig.steer("protect", sub_sa)
        if self.profile.mode is Mode.TUNNEL:
            packet = payload
        else:
            packet = ip_packet(TUN_LOCAL, TUN_PEER, next_header or 0, payload)
        while True:                                   # what an earlier verb left behind
            try:
                rig.relay.next_esp("a", 0)
            except RelayTimeout:
                break
        mark = rig.mark()
        try:
            rig.write_tun(packet)
        except OSError as e:
            rig.check_alive("protect")
            return Refused("", f"the TUN device took no packet: {e.strerror}")
        deadline = time.monotonic() + rig.send_wait
        while True:
            try:
                return rig.relay.next_esp("a", min(0.01, max(0.0, deadline - time.monotonic()))).esp
            except RelayTimeout:
                pass
            refused = rig.refusal(mark)
            if refused is not None:
                return refused
            rig.check_alive("protect")
            if time.monotonic() >= deadline:
                return Refused("", f"{rig.name} sent nothing within {rig.send_wait:g} s")

    def unprotect(self, wire: bytes) -> Delivered | Dropped:
        rig = self.rig_
        rig.check_alive("unprotect")
        rig.drain_tun()
        mark = rig.mark()
        rig.inject(wire)
        deadline = time.monotonic() + rig.drop_wait
        watched = [rig.tun] + rig.wake()
        while True:
            data = rig.read_tun(0.0)
            if data is not None:
                return self._delivered(data, rig, mark)
            dropped = rig.drop(mark)
            if dropped is not None:
                data = rig.read_tun(0.0)          # a drop reported after a delivery
                return self._delivered(data, rig, mark) if data else dropped
            rig.check_alive("unprotect")
            left = deadline - time.monotonic()
            if left <= 0:
                return Dropped(None, "", f"nothing came out of {rig.interface} within "
                               f"{rig.drop_wait:g} s")
            select.select(watched, [], [], min(left, 0.01 if not watched[1:] else 0.1))

    def _delivered(self, data: bytes, rig: TunRig, mark: int) -> Delivered:
        sub_sa, seq = rig.delivered_meta(mark)
        if self.profile.mode is Mode.TUNNEL:
            nh = {4: 4, 6: 41}.get(data[0] >> 4 if data else 0, 0)
            return Delivered(sub_sa, seq, data, nh)
        if data and data[0] >> 4 == 6:
            return Delivered(sub_sa, seq, data[40:], data[6])
        ihl = (data[0] & 15) * 4 if data else 0
        return Delivered(sub_sa, seq, data[ihl:], data[9] if len(data) > 9 else 0)

    def set_counter(self, sub_sa: int, value: int) -> None:
        self.rig_.set_counter(sub_sa, value)

    def close(self) -> None:
        """The session ends; the daemon stays for the next session's SAs."""
        if self.rig_ is not None:
            self.rig_.check_alive("close")


# --- the built-in daemons -----------------------------------------------------------------
def reference_spec(mutant: str | None = None) -> DaemonSpec:
    """espspec's own daemon (``espspec daemon``), or a mutant behind it: everything the
    model can do, steered through control lines and rekeyed by SIGHUP."""
    import sys
    from importlib.metadata import PackageNotFoundError, version
    from .reference import ALL
    try:
        ver = version("espspec")
    except PackageNotFoundError:
        ver = "unknown"
    command = [sys.executable, "-m", "harness.cli", "daemon", "--control", "--sa",
               "{sa_file}"] + (["--mutant", mutant] if mutant else [])
    caps = replace(ALL, reports_counters=False, rekey_overlap=False,
                   notes=("the model behind a TUN device (espspec daemon), over the network",))
    return DaemonSpec(name="reference-daemon" + (f"/{mutant}" if mutant else ""),
                      version=ver, command=tuple(command), rekey="sighup",
                      event_lines=True, control=True, ready_timeout=10.0, drop_wait=1.0,
                      send_wait=1.0, capabilities=caps)


def reference_daemon() -> TunDaemonIut:
    """The ``reference-daemon`` IUT."""
    return TunDaemonIut(reference_spec())


def mutant_daemon(name: str):
    """The ``mutant-daemon:NAME`` family: a mutant behind ``espspec daemon``."""
    from ..loader import load_iut
    load_iut(f"mutant:{name}")                   # an unknown name fails here, in one line
    spec = reference_spec(name)
    return lambda: TunDaemonIut(spec)


def daemon_family(path: str):
    """The ``daemon:FILE`` family: a vendor's daemon described by FILE."""
    spec = read_spec(path)
    return lambda: TunDaemonIut(spec)
