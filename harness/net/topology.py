"""Three network namespaces and two veth pairs: the ground a real implementation stands on.

Theory of operation: ``Topology.create()`` makes, under a prefix unique to the run
(``espspec-<pid>-<6 hex>``), the namespaces ``<prefix>-a``, ``<prefix>-mid`` and
``<prefix>-b`` and wires them as a bump in the wire::

    ns a: eth0 192.0.2.10/24 ==veth== to-a [ns mid: relay] to-b ==veth== eth0 198.51.100.10/24 :ns b

The two ends are one Ethernet segment as far as they know: each has an on-link route to the
other's /24 and a permanent neighbour entry for the other's MAC, so no ARP is needed and
no gateway exists. The middle namespace has no IP address and IPv6 is off everywhere, so
its kernel forwards nothing: a frame goes from one end to the other only if the relay
(``relay.py``, AF_PACKET on ``to-a`` and ``to-b``) copies it. There is no default route,
and nothing is made in the host's own namespace: the veths are created inside the
namespaces (``ip -n mid link add ... peer ... netns a``), so their names are fixed
(``eth0``, ``to-a``, ``to-b``) and never collide across runs. Transmit checksum offload is
off on every veth (a frame a relay re-sends must carry a complete checksum), IPv6 is
disabled before the links exist (no router or neighbour solicitations), ``lo`` is up.

What was made is recorded as it is made (the namespace names, the children started with
``spawn``), and ``close()`` removes exactly that: the relays attached to the topology,
the children (by PID, process group first), then the namespaces and the work folder
(``folder()``). It is idempotent and
runs after a creation that failed half way. Every live topology is in a registry that
``close_all()`` empties; it runs at interpreter exit (atexit) and, when this process had
left SIGTERM or SIGHUP at their default (which would end it without atexit), on those
signals too, after which the signal takes its default course. Leftovers of a run killed
with SIGKILL are found by prefix: ``espspec netns --cleanup``.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from dataclasses import dataclass, field

from . import nsenter
from .errors import AddressError, CleanupError, NamespaceExists, NotPermitted, TopologyClosed
from .frames import ip_frame, udp_frame
from .procs import Child, run, tool

PREFIX = "espspec-"
SIDES = ("a", "b")
DOC_NETS = tuple(ipaddress.ip_network(n) for n in
                 ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


def new_prefix() -> str:
    """A prefix unique to this run: espspec-<pid>-<6 hex digits>."""
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"


def documentation_only(addr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    iface = ipaddress.ip_interface(addr)
    if not any(iface.network.subnet_of(n) for n in DOC_NETS if n.version == iface.version):
        raise AddressError(f"{addr} is not inside a documentation range "
                           f"({', '.join(map(str, DOC_NETS))})")
    return iface


@dataclass(frozen=True)
class TopologyConfig:
    """Addresses and MACs of the two ends (the middle has none)."""
    a_address: str = "192.0.2.10/24"
    b_address: str = "198.51.100.10/24"
    a_mac: str = "02:e5:50:00:00:0a"
    b_mac: str = "02:e5:50:00:00:0b"
    mid_a_mac: str = "02:e5:50:00:01:0a"     # to-a, the middle's veth facing a
    mid_b_mac: str = "02:e5:50:00:01:0b"     # to-b
    mtu: int = 1500

    def __post_init__(self) -> None:
        a, b = documentation_only(self.a_address), documentation_only(self.b_address)
        if a.version != b.version or a.ip == b.ip:
            raise AddressError(f"the ends need two addresses of one IP version, not "
                               f"{self.a_address} and {self.b_address}")


@dataclass(frozen=True)
class End:
    """One end: its namespace, interface, MAC and address."""
    side: str
    ns: str
    ifname: str
    mac: str
    address: str          # without the prefix length
    network: str


@dataclass
class _Made:
    namespaces: list[str] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)


_LIVE: dict[str, "Topology"] = {}
_LIVE_LOCK = threading.Lock()


class Topology:
    """The namespaces ``<prefix>-a``, ``-mid`` and ``-b``; see the module's docstring."""

    IFNAME = "eth0"
    MID_IF = {"a": "to-a", "b": "to-b"}

    def __init__(self, prefix: str, config: TopologyConfig) -> None:
        self.prefix, self.config = prefix, config
        self.made = _Made()
        self.relays: list = []          # Relay objects attached (closed first)
        self.closed = False
        self.workdir: str | None = None
        self.ns = {"a": f"{prefix}-a", "mid": f"{prefix}-mid", "b": f"{prefix}-b"}
        a, b = ipaddress.ip_interface(config.a_address), ipaddress.ip_interface(config.b_address)
        self.ends = {
            "a": End("a", self.ns["a"], self.IFNAME, config.a_mac, str(a.ip), str(a.network)),
            "b": End("b", self.ns["b"], self.IFNAME, config.b_mac, str(b.ip), str(b.network)),
        }

    # --- making it ---------------------------------------------------------------------

    @classmethod
    def create(cls, prefix: str | None = None, config: TopologyConfig | None = None
               ) -> "Topology":
        if os.geteuid() != 0:
            raise NotPermitted("network namespaces need root")
        tool("ip")
        tool("ethtool")
        prefix = prefix or new_prefix()
        if not prefix.startswith(PREFIX):
            raise ValueError(f"a topology's prefix starts with {PREFIX!r}: {prefix!r}")
        topo = cls(prefix, config or TopologyConfig())
        clash = [n for n in topo.ns.values() if nsenter.exists(n)]
        if clash:
            raise NamespaceExists(f"namespace {clash[0]} already exists; not ours, not touched")
        _register(topo)
        try:
            topo._build()
        except BaseException:
            topo.close()
            raise
        return topo

    def _build(self) -> None:
        c = self.config
        for name in self.ns.values():
            self.made.namespaces.append(name)         # recorded first: close() checks it exists
            run(["ip", "netns", "add", name])
            for key, value in (("net.ipv6.conf.all.disable_ipv6", "1"),
                               ("net.ipv6.conf.default.disable_ipv6", "1"),
                               ("net.ipv4.conf.all.rp_filter", "0"),
                               ("net.ipv4.conf.default.rp_filter", "0")):
                nsenter.write_sysctl(name, key, value)
        mid, a, b = self.ns["mid"], self.ends["a"], self.ends["b"]
        run(["ip", "-n", mid, "-batch", "-"], input="\n".join([
            f"link add to-a mtu {c.mtu} address {c.mid_a_mac} type veth peer name {a.ifname} "
            f"mtu {c.mtu} address {a.mac} netns {a.ns}",
            f"link add to-b mtu {c.mtu} address {c.mid_b_mac} type veth peer name {b.ifname} "
            f"mtu {c.mtu} address {b.mac} netns {b.ns}",
            "link set lo up", "link set to-a promisc on up", "link set to-b promisc on up",
        ]) + "\n")
        for end, other in ((a, b), (b, a)):
            plen = ipaddress.ip_interface(getattr(c, f"{end.side}_address")).network.prefixlen
            run(["ip", "-n", end.ns, "-batch", "-"], input="\n".join([
                "link set lo up",
                f"addr add {end.address}/{plen} dev {end.ifname}",
                f"link set {end.ifname} up",
                f"route add {other.network} dev {end.ifname} scope link",
                f"neigh replace {other.address} lladdr {other.mac} dev {end.ifname} "
                f"nud permanent",
            ]) + "\n")
        for ns, ifname in ((a.ns, a.ifname), (b.ns, b.ifname), (mid, "to-a"), (mid, "to-b")):
            run(["ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off"])

    # --- using it ----------------------------------------------------------------------

    def _alive(self) -> None:
        if self.closed:
            raise TopologyClosed(f"topology {self.prefix} is closed")

    def socket(self, side: str, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A socket in namespace ``side`` ("a", "mid" or "b"); the caller closes it."""
        self._alive()
        return nsenter.socket_in(self.ns[side], family, kind, proto)

    def udp_socket(self, side: str, port: int = 0) -> socket.socket:
        """A UDP socket bound to end ``side``'s address and ``port`` (0: any free port)."""
        end = self.ends[side]
        fam = socket.AF_INET6 if ":" in end.address else socket.AF_INET
        s = self.socket(side, fam, socket.SOCK_DGRAM)
        try:
            s.bind((end.address, port))
        except OSError:
            s.close()
            raise
        return s

    def udp_frame(self, src_side: str, sport: int, dport: int, payload: bytes) -> bytes:
        """A UDP frame from end ``src_side`` to the other end, as that end would send it."""
        src, dst = self.ends[src_side], self.ends[other(src_side)]
        return udp_frame(src.mac, dst.mac, src.address, dst.address, sport, dport, payload)

    def ip_frame(self, src_side: str, protocol: int, payload: bytes) -> bytes:
        """An IP frame (e.g. protocol 50, raw ESP) from end ``src_side`` to the other end."""
        src, dst = self.ends[src_side], self.ends[other(src_side)]
        return ip_frame(src.mac, dst.mac, src.address, dst.address, protocol, payload)

    def spawn(self, side: str, argv: list[str], **kw) -> Child:
        """Start ``argv`` in namespace ``side`` as our child; killed by PID on close()."""
        self._alive()
        child = Child(self.ns[side], argv, **kw)
        self.made.children.append(child)
        return child

    def blackhole_from(self, side: str, interface: str) -> None:
        """Packets arriving from ``interface`` (a daemon's TUN device) in namespace
        ``side`` stop there: a policy rule before the local table, for IPv4 and IPv6. An
        AF_PACKET socket on the device still sees them first; the kernel never answers
        one (an ICMP error for a payload nobody listens to would go back through the
        tunnel as a stray packet)."""
        self._alive()
        for family in ("-4", "-6"):
            run(["ip", family, "-n", self.ns[side], "-batch", "-"], input="\n".join([
                f"rule add pref 1 iif {interface} blackhole",
                "rule del pref 0 lookup local",
                "rule add pref 2 lookup local"]) + "\n")

    def pids(self) -> list[int]:
        return [c.pid for c in self.made.children]

    def folder(self) -> str:
        """The topology's work folder (SA files, daemon logs): the prefix as a folder in
        the temporary directory, removed on close() -- or by ``espspec netns --cleanup``
        (``leftovers``) after a run that was killed."""
        self._alive()
        if self.workdir is None:
            path = os.path.join(tempfile.gettempdir(), self.prefix)
            os.makedirs(path, mode=0o700, exist_ok=True)
            self.workdir = path
        return self.workdir

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- removing it -------------------------------------------------------------------

    def close(self) -> None:
        """Remove what this topology made: relays, children (by PID), namespaces."""
        if self.closed and not self.made.namespaces and not self.made.children:
            return
        self.closed = True
        problems: list[str] = []
        for relay in list(self.relays):
            try:
                relay.close()
            except Exception as e:  # noqa: BLE001 -- the rest must still go
                problems.append(f"relay: {e}")
        self.relays.clear()
        for child in list(self.made.children):
            try:
                child.kill()
                self.made.children.remove(child)
            except Exception as e:  # noqa: BLE001
                problems.append(f"child {child.pid}: {e}")
        for name in list(self.made.namespaces):
            try:
                if nsenter.exists(name):
                    for pid in namespace_pids(name):     # nothing of ours should be left
                        _kill_foreign(pid)
                    run(["ip", "netns", "delete", name])
                self.made.namespaces.remove(name)
            except Exception as e:  # noqa: BLE001
                problems.append(f"namespace {name}: {e}")
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        _unregister(self)
        if problems:
            raise CleanupError(f"topology {self.prefix} left: " + "; ".join(problems))


def other(side: str) -> str:
    return {"a": "b", "b": "a"}[side]


def namespace_pids(name: str) -> list[int]:
    """The PIDs of the processes in namespace ``name`` (``ip netns pids``)."""
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(w) for w in out.split() if w.isdigit()]


def _kill_foreign(pid: int) -> None:
    """SIGKILL a process (not necessarily our child) by PID; reap it if it is ours."""
    if pid == os.getpid():
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass                                        # not ours: PID 1 reaps it


# --- every live topology, removed at exit and on SIGTERM/SIGHUP --------------------------

_guarded: dict[int, object] = {}


def _register(topo: Topology) -> None:
    with _LIVE_LOCK:
        _LIVE[topo.prefix] = topo
    _guard_signals()


def _unregister(topo: Topology) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(topo.prefix, None)


def live() -> list[Topology]:
    with _LIVE_LOCK:
        return list(_LIVE.values())


def close_all() -> list[str]:
    """Close every live topology of this process; the prefixes closed. Never raises."""
    closed = []
    for topo in live():
        try:
            topo.close()
        except Exception:  # noqa: BLE001 -- at exit, remove what can be removed
            pass
        closed.append(topo.prefix)
    return closed


def _on_signal(signum, frame) -> None:
    close_all()
    signal.signal(signum, signal.SIG_DFL)            # then the signal's own course
    os.kill(os.getpid(), signum)


def _guard_signals() -> None:
    """On SIGTERM/SIGHUP left at their default, close_all() first. Only the main thread
    may set handlers; a handler someone else set (espspec run's) is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if sig not in _guarded and signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _on_signal)
            _guarded[sig] = _on_signal


atexit.register(close_all)
