"""The SA file and the reference daemon (``espspec daemon``), for real.

The SA-file tests need nothing. The daemon tests need root: they create one network
namespace of their own (``espspec-dtest-<pid>``), start two reference daemons in it back
to back (TUN devices espd0 and espd1, UDP sockets on 192.0.2.1 and 192.0.2.2 on lo), send
inner packets through them from sockets in the namespace, sniff the outer datagrams with
an AF_PACKET socket on lo, and remove the namespace on every path. The namespace's own
routing sends 198.51.100.1 -> 198.51.100.2 (both local addresses of the namespace) through
the TUNs: policy rules for locally generated packets look up the main table (the daemons'
routes into their TUNs) before the local table.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.capture import DissectConfig, dissect
from harness.daemon import safile
from harness.daemon.reference import flow_sub_sa
from harness.daemon.safile import SaFile, SaSpec
from spec_model import Delivered, Dropped, DropReason, Receiver, Sender, named
from spec_model.errors import EspSpecError

ROOT = Path(__file__).resolve().parent.parent
ESPSPEC = [sys.executable, "-m", "harness.cli"]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, TUN)")


# --- the SA file ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["esp", "esp-esn", "esp-subsa-spi", "esp-subsa-seq",
                                  "eesp-v0", "eesp-v0-transport", "psp-v0"])
def test_sa_file_round_trip(tmp_path, name):
    sa = safile.example(named(name))
    path = tmp_path / "sa.json"
    safile.write(path, sa)
    assert safile.read(path) == sa
    assert json.loads(path.read_text())["schema"] == "espspec-sa/1"
    peer = sa.mirrored("espd1")
    assert peer.outbound == sa.inbound and peer.local == sa.peer
    assert peer.mirrored("espd0") == sa
    assert not list(tmp_path.glob(".sa-*"))          # no temporary file left behind


def test_sa_file_raw_esp_round_trip(tmp_path):
    sa = safile.example(named("esp"), encapsulation="esp")
    safile.write(tmp_path / "sa.json", sa)
    assert safile.read(tmp_path / "sa.json") == sa
    assert sa.local.port is None


def _doc(name="esp") -> dict:
    return safile.example(named(name)).to_json()


def _set(path: str, value):
    def change(doc):
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
        return doc
    return change


BROKEN = [
    ("not json", lambda d: "{", safile.NotJson),
    ("an array", lambda d: [], safile.NotJson),
    ("no schema", _set("schema", KeyError), safile.WrongSchema),
    ("schema 2", _set("schema", "espspec-sa/2"), safile.WrongSchema),
    ("missing generation", _set("generation", KeyError), safile.MissingField),
    ("missing inbound spi", _set("inbound.spi", KeyError), safile.MissingField),
    ("missing axis", _set("profile.window", KeyError), safile.MissingField),
    ("extra field", _set("comment", "hi"), safile.UnknownField),
    ("extra sa field", _set("outbound.key", "00"), safile.UnknownField),
    ("generation string", _set("generation", "0"), safile.WrongType),
    ("spi as hex string", _set("outbound.spi", "0x10000"), safile.WrongType),
    ("spi boolean", _set("outbound.spi", True), safile.WrongType),
    ("window string", _set("profile.window", "64"), safile.WrongType),
    ("negative generation", _set("generation", -1), safile.BadGeneration),
    ("unknown framing", _set("profile.framing", "ah"), safile.BadProfile),
    ("impossible profile", _set("profile.window", 8), safile.BadProfile),
    ("insecure profile", _set("profile.n_sub_sas", 4), safile.BadProfile),
    ("unknown encapsulation", _set("encapsulation", "tcp"), safile.BadEncapsulation),
    ("not an address", _set("local.address", "192.0.2.300"), safile.BadAddress),
    ("mixed families", _set("peer.address", "2001:db8::2"), safile.BadAddress),
    ("inner twice", _set("tunnel.peer", "198.51.100.1"), safile.BadAddress),
    ("port 0", _set("local.port", 0), safile.BadPort),
    ("port null with udp", _set("peer.port", None), safile.BadPort),
    ("interface too long", _set("interface", "a" * 16), safile.BadInterface),
    ("interface with slash", _set("interface", "esp/0"), safile.BadInterface),
    ("reserved spi", _set("inbound.spi", 255), safile.BadSpi),
    ("spi too large", _set("inbound.spi", 1 << 32), safile.BadSpi),
    ("keymat not hex", _set("outbound.keymat", "zz"), safile.BadKeymat),
    ("keymat short", _set("outbound.keymat", "00" * 16), safile.BadKeymat),
    ("sub-SA count", _set("outbound.sub_sas", 2), safile.SubSaCountMismatch),
]


@pytest.mark.parametrize("what,change,error", BROKEN, ids=[b[0] for b in BROKEN])
def test_sa_file_faults(tmp_path, what, change, error):
    doc = change(_doc())
    path = tmp_path / "sa.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(error) as e:
        safile.read(path)
    assert isinstance(e.value, EspSpecError) and type(e.value) is error
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_sa_file_faults_specific_to_profiles(tmp_path):
    for name, change, error in [
            ("esp-subsa-spi", _set("outbound.spi", 0x10001), safile.BadSpi),   # unaligned
            ("eesp-v0", _set("encapsulation", "esp"), safile.BadEncapsulation),
            ("esp", lambda d: _set("local.port", 4500)(_set("encapsulation", "esp")(d)),
             safile.BadPort),
            ("eesp-v0", _set("inbound.keymat", "00" * 20), safile.BadKeymat)]:
        with pytest.raises(error):
            safile.parse(json.dumps(change(_doc(name))))


def test_sa_file_unreadable(tmp_path):
    with pytest.raises(safile.Unreadable):
        safile.read(tmp_path / "absent.json")
    (tmp_path / "bin").write_bytes(b"\xff\xfe{")
    with pytest.raises(safile.Unreadable):
        safile.read(tmp_path / "bin")


def test_the_one_exception_class_per_fault_is_distinct():
    classes = {b[2] for b in BROKEN} | {safile.Unreadable}
    assert all(issubclass(c, safile.SaFileError) for c in classes)
    assert len(classes) == len([n for n in safile.__all__ if n in {
        c.__name__ for c in classes}])


def test_daemon_refuses_a_broken_sa_file(tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(_set("outbound.keymat", "00")(_doc())))
    r = subprocess.run([*ESPSPEC, "daemon", "--sa", str(path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=30)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "outbound.keymat" in r.stderr


def test_flow_rule_is_stable_and_spreads():
    def pkt(sport):
        return struct.pack("!BBHHHBBH4s4sHHHH", 0x45, 0, 28, 0, 0, 64, 17, 0,
                           bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2]), sport, 9, 8, 0)
    picks = {flow_sub_sa(pkt(p), 4) for p in range(1000, 1064)}
    assert picks == {0, 1, 2, 3}
    assert flow_sub_sa(pkt(1234), 4) == flow_sub_sa(pkt(1234), 4)
    assert flow_sub_sa(pkt(1234), 1) == 0


# --- two daemons in a namespace ------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def in_namespace(ns: str, make):
    """Run ``make()`` in a thread that has joined namespace ``ns`` (setns is per thread
    for network namespaces); what it creates (sockets) stays in that namespace."""
    box: dict = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            box["value"] = make()
        except BaseException as e:       # handed to the caller
            box["error"] = e
    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


class Daemon:
    """One reference daemon started in the namespace, its stdout read by a thread."""

    def __init__(self, ns: str, sa_path: Path) -> None:
        self.sa_path = sa_path
        self.lines: queue.Queue[str] = queue.Queue()
        self.reading = threading.Event()
        self.reading.set()
        self.seen: list[str] = []
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *ESPSPEC, "daemon", "--sa",
                                      str(sa_path)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        threading.Thread(target=self._read, daemon=True).start()
        self.t0 = t0

    def wait_ready(self) -> None:
        self.expect("READY generation=0", timeout=20)
        self.startup = time.perf_counter() - self.t0

    def _read(self) -> None:
        while self.reading.wait():
            line = self.proc.stdout.readline()
            if not line:
                return
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                raise AssertionError(f"no line {prefix!r} within {timeout} s; saw "
                                     f"{self.seen[-5:]}; exit {self.proc.poll()} {err}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()                # by its PID: the process we started
        self.proc.wait(timeout=10)


def _fields(line: str) -> dict:
    return dict(w.split("=", 1) for w in line.split()[1:])


def _keys(profile, seed: int) -> bytes:
    return bytes((seed * 7 + i) & 0xFF for i in range(safile.keymat_len(profile)))


def _pair_files(name: str, encapsulation: str, generation: int = 0) -> tuple[SaFile, SaFile]:
    p = named(name)
    a = safile.example(p, encapsulation=encapsulation, interface="espd0")
    spis = (0x2000_0000 + (generation << 16), 0x3000_0000 + (generation << 16))
    a = replace(a, generation=generation,
                outbound=SaSpec(spis[0], _keys(p, 3 + generation), p.n_sub_sas),
                inbound=SaSpec(spis[1], _keys(p, 5 + generation), p.n_sub_sas))
    return a, a.mirrored("espd1")


class Net:
    """The namespace, two daemons, and sockets on the inner addresses."""

    def __init__(self, tmp: Path, name: str, encapsulation: str) -> None:
        self.ns = f"espspec-dtest-{os.getpid()}"
        self.tmp, self.name = tmp, name
        self.encapsulation = encapsulation
        self.daemons: list[Daemon] = []
        self.socks: list[socket.socket] = []

    def start(self) -> None:
        """Everything that can fail, after the caller has taken note of ``self`` (so
        that ``close`` removes whatever part of it was made)."""
        name, encapsulation, tmp = self.name, self.encapsulation, self.tmp
        sh("ip", "netns", "add", self.ns)
        n = ("ip", "-n", self.ns)
        sh(*n, "link", "set", "lo", "up")
        sh(*n, "addr", "add", "192.0.2.1/32", "dev", "lo")
        sh(*n, "addr", "add", "192.0.2.2/32", "dev", "lo")
        for key in ("all.rp_filter=0", "default.rp_filter=0", "all.accept_local=1"):
            sh("ip", "netns", "exec", self.ns, "sysctl", "-q", f"net.ipv4.conf.{key}")
        # locally generated packets between the inner addresses go by the main table
        # (the daemons' routes into their TUNs) before the local table would deliver them
        sh(*n, "rule", "add", "pref", "100", "lookup", "local")
        sh(*n, "rule", "del", "pref", "0")
        sh(*n, "rule", "add", "pref", "10", "iif", "lo", "from", "198.51.100.1", "to",
           "198.51.100.2", "lookup", "main")
        sh(*n, "rule", "add", "pref", "11", "iif", "lo", "from", "198.51.100.2", "to",
           "198.51.100.1", "lookup", "main")
        self.a_cfg, self.b_cfg = _pair_files(name, encapsulation)
        self.a_path, self.b_path = tmp / "a.json", tmp / "b.json"
        safile.write(self.a_path, self.a_cfg)
        safile.write(self.b_path, self.b_cfg)
        self.a = self._start(self.a_path)
        self.b = self._start(self.b_path)
        self.sniffer = self.sock(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sniffer.bind(("lo", 0))
        self.sniffer.settimeout(0.05)
        self.tx_a = self.udp("198.51.100.1", 0)
        self.rx_b = self.udp("198.51.100.2", 5001)
        self.tx_b = self.udp("198.51.100.2", 0)
        self.rx_a = self.udp("198.51.100.1", 5001)
        self.raw = self.sock(socket.AF_INET, socket.SOCK_DGRAM)     # injects outer datagrams

    def _start(self, path: Path) -> Daemon:
        d = Daemon(self.ns, path)
        self.daemons.append(d)
        d.wait_ready()
        return d

    def sock(self, *args) -> socket.socket:
        s = in_namespace(self.ns, lambda: socket.socket(*args))
        self.socks.append(s)
        return s

    def udp(self, address: str, port: int) -> socket.socket:
        s = self.sock(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((address, port))
        s.settimeout(5)
        return s

    def drain_sniffer(self) -> None:
        try:
            while True:
                self.sniffer.recv(65535)
        except (socket.timeout, BlockingIOError):
            pass

    def sniff_to(self, cfg: SaFile, timeout: float = 3.0) -> bytes:
        """The next outer packet on lo for ``cfg``'s local end: its (E)ESP/PSP bytes."""
        dcfg = DissectConfig(esp_udp_ports=(4500,), eesp_udp_port=4545, psp_udp_port=1000)
        want = socket.inet_aton(cfg.local.address)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame, addr = self.sniffer.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] == PACKET_OUTGOING:
                continue
            d = dissect(1, frame, dcfg)
            if d.dst == want and d.kind != "other":
                self.kind = d.kind
                return frame[d.payload_offset:d.payload_offset + d.payload_length]
        raise AssertionError(f"no outer packet to {cfg.local.address} seen")

    def inject(self, cfg: SaFile, wire: bytes) -> None:
        """Send outer bytes to a daemon's socket, as the wire would."""
        if cfg.encapsulation == "udp":
            self.raw.sendto(wire, (cfg.local.address, cfg.local.port))
        else:
            s = self.sock(socket.AF_INET, socket.SOCK_RAW, 50)
            s.sendto(wire, (cfg.local.address, 0))

    def close(self) -> None:
        for s in self.socks:
            s.close()
        for d in self.daemons:
            d.kill()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)


@pytest.fixture
def net_factory(tmp_path):
    made: list[Net] = []

    def make(name: str, encapsulation: str = "udp") -> Net:
        net = Net(tmp_path, name, encapsulation)
        made.append(net)
        net.start()
        return net
    try:
        yield make
    finally:
        ns = f"espspec-dtest-{os.getpid()}"
        for net in made:
            net.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        assert ns not in listed.stdout


def inner_udp(profile, data: bytes) -> tuple[bytes, int | None]:
    """A UDP datagram 198.51.100.1:5000 -> 198.51.100.2:5001 (checksum 0) as the profile
    carries it: the IPv4 packet in tunnel mode, the UDP datagram (next header 17) else."""
    udp = struct.pack("!HHHH", 5000, 5001, 8 + len(data), 0) + data
    if profile.mode.value != "tunnel":
        return udp, 17
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                       bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2]))
    total = sum(struct.unpack("!10H", head))
    total = (total & 0xFFFF) + (total >> 16)
    return head[:10] + struct.pack("!H", ~total & 0xFFFF) + head[12:] + udp, None


def send_through(net: Net, tx: socket.socket, rx: socket.socket, payload: bytes,
                 dst: str) -> float:
    t0 = time.perf_counter()
    tx.sendto(payload, (dst, 5001))
    got, _ = rx.recvfrom(65535)
    elapsed = time.perf_counter() - t0
    assert got == payload
    return elapsed


PROFILES = [("esp", "udp"), ("eesp-v0", "udp"), ("psp-v0", "udp"), ("esp", "esp"),
            ("eesp-v0-transport", "udp"), ("esp-esn", "udp"),
            ("esp-subsa-spi", "udp")]


@root_only
@pytest.mark.parametrize("name,encapsulation", PROFILES,
                         ids=[f"{n}-{e}" for n, e in PROFILES])
def test_two_daemons_back_to_back(net_factory, name, encapsulation):
    net = net_factory(name, encapsulation)
    p = named(name)
    a, b = net.a_cfg, net.b_cfg
    print(f"\n{name}/{encapsulation}: start-up {net.a.startup * 1000:.0f} ms and "
          f"{net.b.startup * 1000:.0f} ms")

    # -- A -> B, sniffed on lo and decoded by the model as the profile says
    net.drain_sniffer()
    first = b"first packet through two daemons"
    send_through(net, net.tx_a, net.rx_b, first, "198.51.100.2")
    wire = net.sniff_to(b)
    assert net.kind == {"esp": "esp", "eesp-optimized": "eesp", "eesp-full": "eesp",
                        "psp": "psp"}[
        p.framing.value]
    deliver = _fields(net.b.expect("DELIVER"))
    decoded = Receiver(p, b.inbound.keymat, b.inbound.spi).open(wire)
    assert isinstance(decoded, Delivered), decoded
    assert decoded.payload.endswith(first)
    assert int(deliver["spi"], 16) >> p.subsa_bits == a.outbound.spi >> p.subsa_bits
    assert deliver["seq"] == ("-" if decoded.seq is None else str(decoded.seq))
    assert int(deliver["sub_sa"]) == decoded.sub_sa
    if p.mode.value == "tunnel":
        assert decoded.payload[0] >> 4 == 4 and decoded.payload[16:20] == bytes(
            [198, 51, 100, 2])
    else:
        assert decoded.next_header == 17          # transport: the UDP datagram itself

    # -- and B -> A
    send_through(net, net.tx_b, net.rx_a, b"the other way", "198.51.100.1")
    net.a.expect("DELIVER")

    # -- the sniffed packet again: B has seen it, a replay (or a delivery for PSP)
    net.inject(b, wire)
    if p.replay_protected:
        drop = _fields(net.b.expect("DROP"))
        assert drop["reason"] == DropReason.REPLAY.value and drop["seq"] == str(decoded.seq)
    else:
        net.b.expect("DELIVER")
        assert net.rx_b.recvfrom(65535)[0] == first

    # -- garbage and the non-ESP marker never kill it
    net.inject(b, b"\x01")
    net.b.expect("DROP")
    if encapsulation == "udp" and p.framing.value == "esp":
        net.inject(b, bytes(4) + b"IKE would follow")
        assert "non-esp-marker" in net.b.expect("IGNORE")

    # -- random bytes from the wire: drop lines, never the end of the daemon
    rng = random.Random(8)
    for _ in range(50):
        net.inject(b, rng.randbytes(rng.randrange(1, 200)))
    for _ in range(50):
        assert net.b.expect("DROP ").startswith("DROP spi=")
    assert net.b.proc.poll() is None

    # -- round-trip latency through both daemons
    times = sorted(send_through(net, net.tx_a, net.rx_b, bytes([i]) * 100, "198.51.100.2")
                   for i in range(30))
    print(f"{name}/{encapsulation}: one packet through two daemons: median "
          f"{times[15] * 1e6:.0f} us, max {times[-1] * 1e6:.0f} us")

    # -- a packet of A's SA made here, further along (sequence number 500): tampered, an
    #    ICV drop reported at once; genuine, delivered; again, a replay drop (PSP has no
    #    sequence number: delivered again). Last in this generation: B's window is at 500
    #    now, ahead of A's counter
    forged = Sender(p, a.outbound.keymat, a.outbound.spi)
    forged.set_counter(0, 499)
    made = forged.seal(0, *inner_udp(p, b"made by the test")).wire
    bad = bytearray(made)
    bad[-1] ^= 0x01
    net.inject(b, bytes(bad))
    drop = _fields(net.b.expect("DROP"))
    assert drop["reason"] == DropReason.ICV.value and drop["requirement"] != "-", drop
    net.inject(b, made)
    net.b.expect("DELIVER")
    assert net.rx_b.recvfrom(65535)[0] == b"made by the test"
    net.inject(b, made)
    if p.replay_protected:
        drop = _fields(net.b.expect("DROP"))
        assert drop["reason"] == DropReason.REPLAY.value, drop
        assert drop["seq"] == "500"
    else:
        net.b.expect("DELIVER")
        assert net.rx_b.recvfrom(65535)[0] == b"made by the test"

    # -- rekey: SIGHUP with new files, new SPIs, traffic flows on them
    a1, b1 = _pair_files(name, encapsulation, generation=1)
    safile.write(net.a_path, a1)
    safile.write(net.b_path, b1)
    for d in (net.a, net.b):
        d.proc.send_signal(signal.SIGHUP)
        d.expect("READY generation=1")
    net.drain_sniffer()
    send_through(net, net.tx_a, net.rx_b, b"after the rekey", "198.51.100.2")
    deliver = _fields(net.b.expect("DELIVER"))
    assert int(deliver["spi"], 16) >> p.subsa_bits == a1.outbound.spi >> p.subsa_bits
    new_wire = net.sniff_to(b1)
    assert isinstance(Receiver(p, b1.inbound.keymat, b1.inbound.spi).open(new_wire),
                      Delivered)
    old = Receiver(p, b1.inbound.keymat, b1.inbound.spi).open(wire)
    assert isinstance(old, Dropped)
    net.inject(b1, wire)                      # the old SA's packet: no SA for it now
    drop = _fields(net.b.expect("DROP"))
    assert drop["reason"] == "unknown-spi", drop
    send_through(net, net.tx_b, net.rx_a, b"back after the rekey", "198.51.100.1")

    # -- a rekey file that cannot be one: refused, the SAs stay
    safile.write(net.a_path, replace(a1, generation=1))
    net.a.proc.send_signal(signal.SIGHUP)
    net.a.expect("REKEY-FAILED generation=1")
    send_through(net, net.tx_a, net.rx_b, b"still flowing", "198.51.100.2")

    # -- SIGTERM: exit 0, the TUNs go with them
    pids = [d.proc.pid for d in (net.a, net.b)]
    assert [d.stop() for d in (net.a, net.b)] == [0, 0]
    links = subprocess.run(["ip", "-n", net.ns, "-o", "link"], capture_output=True,
                           text=True).stdout
    assert "espd0" not in links and "espd1" not in links
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@root_only
def test_sub_sas_follow_the_flow_rule(net_factory):
    net = net_factory("esp-subsa-spi")
    used = set()
    for port in range(6000, 6016):
        tx = net.udp("198.51.100.1", port)
        tx.sendto(b"flow %d" % port, ("198.51.100.2", 5001))
        assert net.rx_b.recvfrom(65535)[0] == b"flow %d" % port
        used.add(int(_fields(net.b.expect("DELIVER"))["sub_sa"]))
    assert len(used) > 1                      # 16 flows over 4 sub-SAs


@root_only
def test_a_reader_that_lags_loses_lines_not_packets(net_factory):
    net = net_factory("esp")
    net.b.reading.clear()                     # nobody reads B's stdout for a while
    time.sleep(0.1)
    for i in range(3000):                     # ~70 bytes of DROP line each: > 64 KiB
        net.inject(net.b_cfg, b"\x01\x02\x03\x04" + bytes([i & 0xFF]) * 20)
        if i % 200 == 199:
            time.sleep(0.01)
    time.sleep(0.5)
    send_through(net, net.tx_a, net.rx_b, b"through while the pipe is full", "198.51.100.2")
    net.b.reading.set()                       # the reader catches up; the next event
    time.sleep(0.5)                           # line carries the count of those lost
    send_through(net, net.tx_a, net.rx_b, b"and after", "198.51.100.2")
    lost = net.b.expect("LOST ", timeout=10)
    assert int(lost.split()[1]) > 0
    net.b.expect("DELIVER")
