"""harness.net on real namespaces, veths and AF_PACKET sockets (root and iproute2 needed):
the topology comes up and goes away completely, the relay is the only path between the
ends, ESP can be held, reordered, duplicated, dropped, modified and injected while IKE
passes untouched, and a killed run's namespaces are removed by ``espspec netns``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness.net import frames, relay as R
from harness.net.errors import AddressError, CommandFailed, RelayError, RelayTimeout
from harness.net.procs import gone
from harness.net.topology import Topology, TopologyConfig, live, new_prefix

ROOT_NEEDED = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
NAT = 4500


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _ours(prefix: str) -> set[str]:
    return {n for n in _netns_names() if n.startswith(prefix)}


def _host() -> list[str]:
    """The host namespace's addresses, routes (every table) and links, a line each."""
    def ip(*args):
        return subprocess.run(["ip", *args], capture_output=True, text=True,
                              check=True).stdout.splitlines()
    return ip("-br", "addr") + ip("route", "show", "table", "all") + ip("-br", "link")


def _esp(spi: int, seq: int, body: bytes = b"") -> bytes:
    return spi.to_bytes(4, "big") + seq.to_bytes(4, "big") + (body or bytes(16))


def _recv_all(sock: socket.socket, quiet: float = 0.3) -> list[bytes]:
    """Every datagram until nothing came for ``quiet`` seconds."""
    got = []
    sock.settimeout(quiet)
    while True:
        try:
            got.append(sock.recv(65536))
        except socket.timeout:
            return got


@pytest.fixture
def ground():
    """A topology, its relay, a UDP socket on 4500 at each end."""
    with Topology.create() as topo:
        relay = R.Relay(topo).start()
        sa, sb = topo.udp_socket("a", NAT), topo.udp_socket("b", NAT)
        try:
            yield topo, relay, sa, sb
        finally:
            sa.close()
            sb.close()


def _to(topo, side):
    return (topo.ends[side].address, NAT)


# --- frames, no root needed ----------------------------------------------------------------

def test_frame_checksums_agree_with_scapy():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    for src, dst, l3 in (("192.0.2.1", "198.51.100.1", IP), ("2001:db8::1", "2001:db8::2", IPv6)):
        for payload in (b"", b"\x01", b"\x00\x00\x00\x05" + bytes(range(37))):
            ours = frames.udp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", src, dst,
                                    1234, NAT, payload)
            theirs = Ether(ours)
            del theirs[UDP].chksum
            if l3 is IP:
                del theirs[IP].chksum
            assert bytes(theirs) == ours
            lay = frames.layout(ours)
            assert frames.checksums_ok(ours, lay)
            changed = frames.replace_payload(ours, lay, lay.l4 + 8, payload + b"zz")
            assert frames.checksums_ok(changed, frames.layout(changed))
            assert bytes(Ether(changed)[UDP].payload) == payload + b"zz"
            broken = bytearray(changed)
            broken[-1] ^= 1
            assert not frames.checksums_ok(bytes(broken), frames.layout(bytes(broken)))


def test_classification():
    def kind(dport, payload, proto_esp=False, eesp=None):
        f = frames.udp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "192.0.2.1",
                             "198.51.100.1", 40000, dport, payload)
        lay = frames.layout(f)
        if proto_esp:
            lay = frames.Layout(4, lay.ip, 50, lay.l4, lay.end, False)
        found = frames.esp_offset(f, lay, eesp_port=eesp)
        return found and found[0]
    assert kind(NAT, _esp(7, 1)) == "esp"
    assert kind(NAT, bytes(4) + b"IKE") is None           # non-ESP marker
    assert kind(NAT, b"\xff") is None                     # NAT keepalive
    assert kind(500, _esp(7, 1)) is None                  # IKE port
    assert kind(5000, _esp(7, 1)) is None
    assert kind(5000, _esp(7, 1), eesp=5000) == "eesp"
    assert kind(9, b"x", proto_esp=True) == "esp"


def test_only_documentation_addresses():
    with pytest.raises(AddressError):
        TopologyConfig(a_address="10.1.2.3/24")
    with pytest.raises(AddressError):
        TopologyConfig(b_address="2001:db9::1/64", a_address="2001:db8::1/64")


# --- the topology --------------------------------------------------------------------------

@ROOT_NEEDED
def test_udp_goes_through_the_relay_and_only_through_it():
    host_before = _host()
    t0 = time.monotonic()
    with Topology.create() as topo:
        up = time.monotonic() - t0
        assert _ours(topo.prefix) == set(topo.ns.values())
        sa, sb = topo.udp_socket("a", 5000), topo.udp_socket("b", 5000)
        sb.settimeout(0.3)
        sa.sendto(b"before the relay", _to(topo, "b")[:1] + (5000,))
        with pytest.raises(socket.timeout):              # the kernel forwards nothing
            sb.recv(100)
        with R.Relay(topo) as relay:
            sb.settimeout(2)
            sa.settimeout(2)
            sa.sendto(b"plain a->b", (topo.ends["b"].address, 5000))
            data, src = sb.recvfrom(100)
            assert (data, src) == (b"plain a->b", (topo.ends["a"].address, 5000))
            sb.sendto(b"plain b->a", (topo.ends["a"].address, 5000))
            assert sa.recv(100) == b"plain b->a"
            assert relay.stats["forwarded"] == 2 and relay.seen == []
            assert relay.stats["bad_checksum"] == 0
        # nothing of ours in the host's own namespace: no address, route or link appeared
        # there that names our ranges or our interfaces (this machine's own eth0 may sit in
        # 192.0.2.0/24, and other tests may change the host meanwhile)
        new = set(_host()) - set(host_before)
        assert not [line for line in new if any(
            w in line for w in ("192.0.2.", "198.51.100.", "to-a", "to-b", topo.prefix))], new
        sa.close()
        sb.close()
        t1 = time.monotonic()
    down = time.monotonic() - t1
    assert _ours(topo.prefix) == set()
    print(f"topology up {up * 1000:.0f} ms, down {down * 1000:.0f} ms")


@ROOT_NEEDED
def test_close_removes_namespaces_and_children_and_is_idempotent():
    topo = Topology.create()
    children = [topo.spawn("a", ["sleep", "300"]), topo.spawn("b", ["sleep", "300"]),
                topo.spawn("mid", ["sh", "-c", "sleep 300 & sleep 300"])]
    pids = topo.pids()
    time.sleep(0.1)
    assert all(not gone(p) for p in pids)
    assert topo in live()
    topo.close()
    assert _ours(topo.prefix) == set()
    assert all(gone(p) for p in pids)
    assert all(c.proc.returncode is not None for c in children)   # reaped: no zombie
    assert topo not in live()
    topo.close()                                                  # idempotent


@ROOT_NEEDED
def test_a_failed_creation_leaves_nothing():
    prefix = new_prefix()
    with pytest.raises(CommandFailed):
        Topology.create(prefix=prefix, config=TopologyConfig(mtu=70000))
    assert _ours(prefix) == set()
    assert not [t for t in live() if t.prefix == prefix]


# --- the relay -----------------------------------------------------------------------------

@ROOT_NEEDED
def test_esp_held_and_released_reordered_and_duplicated(ground):
    topo, relay, sa, sb = ground
    relay.policy = R.HOLD
    for seq in range(1, 5):
        sa.sendto(_esp(0x1234, seq), _to(topo, "b"))
    held = relay.wait_held(4)
    assert [p.seq for p in held] == [1, 2, 3, 4] and all(p.side == "a" for p in held)
    assert _recv_all(sb, 0.2) == []                               # held means held
    relay.release(held[3])
    relay.release(held[0].number, times=2)
    relay.release(held[2])
    relay.discard(held[1])
    got = [int.from_bytes(d[4:8], "big") for d in _recv_all(sb)]
    assert got == [4, 1, 1, 3]
    assert relay.held() == []
    relay.policy = R.duplicate(3)
    sa.sendto(_esp(0x1234, 9), _to(topo, "b"))
    assert [int.from_bytes(d[4:8], "big") for d in _recv_all(sb)] == [9, 9, 9]


@ROOT_NEEDED
def test_esp_dropped_by_a_per_packet_policy(ground):
    topo, relay, sa, sb = ground
    relay.policy = lambda p: R.DROP if p.seq % 2 == 0 else None
    for seq in range(1, 7):
        sa.sendto(_esp(7, seq), _to(topo, "b"))
    got = [int.from_bytes(d[4:8], "big") for d in _recv_all(sb)]
    assert got == [1, 3, 5]
    assert relay.stats["dropped"] == 3 and len(relay.seen) == 6


@ROOT_NEEDED
@pytest.mark.parametrize("zero", [False, True])
def test_esp_modified_arrives_with_a_valid_checksum(zero):
    with Topology.create() as topo:
        relay = R.Relay(topo, R.RelayConfig(zero_udp_checksum=zero)).start()
        sa, sb = topo.udp_socket("a", NAT), topo.udp_socket("b", NAT)
        relay.policy = R.modify(lambda esp: esp[:8] + bytes(b ^ 0xFF for b in esp[8:]) + b"!")
        sa.sendto(_esp(5, 1, b"abcdef"), _to(topo, "b"))
        # the receiving kernel checks the UDP checksum: a wrong one would not be delivered
        assert _recv_all(sb) == [_esp(5, 1) [:8] + bytes(b ^ 0xFF for b in b"abcdef") + b"!"]
        pkt = relay.seen[0]
        out = pkt.with_esp(b"xyz" * 5, zero_udp_checksum=zero)
        lay = frames.layout(out)
        assert frames.checksums_ok(out, lay)
        assert (out[lay.l4 + 6:lay.l4 + 8] == b"\0\0") == zero
        sa.close()
        sb.close()


@ROOT_NEEDED
def test_injected_frames_reach_either_end_and_a_broken_checksum_does_not(ground):
    topo, relay, sa, sb = ground
    relay.inject("b", topo.udp_frame("a", NAT, NAT, _esp(1, 77)))
    relay.inject("a", topo.udp_frame("b", NAT, NAT, b"to a"))
    assert _recv_all(sb) == [_esp(1, 77)]
    assert _recv_all(sa) == [b"to a"]
    frame = bytearray(topo.udp_frame("a", NAT, NAT, _esp(1, 78)))
    frame[-1] ^= 0x55                          # the checksum no longer matches
    relay.inject("b", bytes(frame), fix_checksums=False)
    assert _recv_all(sb) == []                 # the receiver drops it: the test can fail
    relay.inject("b", bytes(frame))            # fixed on the way out: delivered
    assert _recv_all(sb) == [bytes(frame[-24:])]


@ROOT_NEEDED
def test_ike_passes_untouched_while_esp_is_dropped(ground):
    topo, relay, sa, sb = ground
    relay.policy = R.DROP
    ike_a, ike_b = topo.udp_socket("a", 500), topo.udp_socket("b", 500)
    try:
        marker = bytes(4) + b"IKE_SA_INIT over 4500" + bytes(range(40))
        sa.sendto(marker, _to(topo, "b"))
        sa.sendto(b"\xff", _to(topo, "b"))                       # NAT keepalive
        ike_a.sendto(b"IKE on 500" + bytes(8), (topo.ends["b"].address, 500))
        sa.sendto(_esp(3, 1), _to(topo, "b"))                    # dropped
        assert _recv_all(sb) == [marker, b"\xff"]
        assert _recv_all(ike_b) == [b"IKE on 500" + bytes(8)]
        assert [p.seq for p in relay.seen] == [1]
    finally:
        ike_a.close()
        ike_b.close()


@ROOT_NEEDED
def test_next_esp_from_a_side_with_timeout_and_latency(ground):
    topo, relay, sa, sb = ground
    with pytest.raises(RelayTimeout):
        relay.next_esp("b", timeout=0.1)
    sb.sendto(_esp(9, 1), _to(topo, "a"))
    pkt = relay.next_esp("b", timeout=10)
    assert (pkt.side, pkt.toward, pkt.spi, pkt.seq, pkt.kind) == ("b", "a", 9, 1, "esp")
    sa.settimeout(2)
    assert sa.recv(100) == _esp(9, 1)
    n, t0 = 300, time.monotonic()
    for seq in range(n):
        sa.sendto(_esp(9, seq), _to(topo, "b"))
        sb.settimeout(2)
        sb.recv(100)
    per = (time.monotonic() - t0) / n
    print(f"relay: {per * 1e6:.0f} us per ESP datagram, send to delivery")
    assert per < 0.02
    assert [relay.next_esp("a").seq for _ in range(3)] == [0, 1, 2]


@ROOT_NEEDED
def test_a_policy_that_raises_holds_the_packet_and_says_so(ground):
    topo, relay, sa, sb = ground
    relay.policy = lambda p: 1 / 0
    sa.sendto(_esp(4, 1), _to(topo, "b"))
    with pytest.raises(RelayError, match="ZeroDivisionError"):
        relay.next_esp("a", timeout=10)
    assert [p.seq for p in relay.held()] == [1]


@ROOT_NEEDED
def test_eesp_port_is_handed_to_the_policy():
    with Topology.create() as topo:
        relay = R.Relay(topo, R.RelayConfig(eesp_port=4501)).start()
        sa, sb = topo.udp_socket("a", 4501), topo.udp_socket("b", 4501)
        relay.policy = R.HOLD
        sa.sendto(b"\x80eesp", (topo.ends["b"].address, 4501))
        assert relay.wait_held(1)[0].kind == "eesp"
        assert _recv_all(sb, 0.2) == []
        relay.release_all()
        assert _recv_all(sb) == [b"\x80eesp"]
        sa.close()
        sb.close()


# --- runs that die -------------------------------------------------------------------------

_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)   # whatever pytest left us
from harness.net.topology import Topology
from harness.net.relay import Relay
t = Topology.create()
Relay(t).start()
c = t.spawn("a", ["sleep", "300"], die_with_us={die})
print(t.prefix, c.pid, flush=True)
time.sleep(300)
"""


def _start_run(die_with_us: bool):
    p = subprocess.Popen([sys.executable, "-c", _CHILD.format(die=die_with_us)],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    assert line, "the child did not make its topology"
    return p, line[0], int(line[1])


def _espspec(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, timeout=30)


@ROOT_NEEDED
def test_a_killed_run_leaves_namespaces_that_netns_cleanup_removes():
    p, prefix, pid = _start_run(die_with_us=False)
    try:
        p.send_signal(signal.SIGKILL)
        p.wait(5)
        assert len(_ours(prefix)) == 3                    # SIGKILL: nothing could run
        listed = _espspec("netns", "--list", "--prefix", prefix)
        assert listed.returncode == 0 and f"{prefix}-a run {p.pid} gone pids {pid}" in \
            listed.stdout
        done = _espspec("netns", "--cleanup", "--prefix", prefix)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert f"killed process {pid} in {prefix}-a" in lines
        assert {f"removed namespace {prefix}-{r}" for r in ("a", "mid", "b")} <= set(lines)
        assert len(lines) == 4
        assert _ours(prefix) == set() and gone(pid)
        again = _espspec("netns", "--cleanup", "--prefix", prefix)
        assert (again.returncode, again.stdout) == (0, "")
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
        _espspec("netns", "--cleanup", "--force", "--prefix", prefix)


@ROOT_NEEDED
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_to_a_run_leaves_nothing(sig):
    p, prefix, pid = _start_run(die_with_us=True)
    try:
        assert len(_ours(prefix)) == 3 and not gone(pid)
        p.send_signal(sig)
        status = p.wait(10)
        # SIGTERM: our handler, then the default action; SIGINT: KeyboardInterrupt, atexit,
        # then Python ends itself with SIGINT
        assert status == -sig
        assert _ours(prefix) == set()
        deadline = time.monotonic() + 5
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gone(pid)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        _espspec("netns", "--cleanup", "--force", "--prefix", prefix)


@ROOT_NEEDED
def test_cleanup_keeps_the_namespaces_of_a_live_run_and_refuses_foreign_prefixes():
    with Topology.create() as topo:
        kept = _espspec("netns", "--cleanup", "--prefix", topo.prefix)
        assert kept.returncode == 0
        assert kept.stdout.count("kept namespace") == 3
        assert _ours(topo.prefix) == set(topo.ns.values())
    bad = _espspec("netns", "--cleanup", "--prefix", "other-")
    assert bad.returncode == 2 and "espspec-" in bad.stderr


def test_a_work_folder_of_a_dead_run_is_a_leftover():
    """Topology.folder() is named like the namespaces; a killed run's folder is found and
    removed by the same cleanup, a live run's is kept."""
    import subprocess as sp
    import tempfile
    from harness.net import leftovers
    dead = sp.Popen(["true"])
    dead.wait()
    name = f"espspec-{dead.pid}-f0f0f0"
    path = os.path.join(tempfile.gettempdir(), name)
    os.makedirs(path)
    open(os.path.join(path, "sa.json"), "w").close()
    try:
        found = [left for left in leftovers.find(f"espspec-{dead.pid}-")]
        assert [(f.name, f.kind, f.owner_alive) for f in found] == [(name, "folder", False)]
        assert leftovers.remove(found[0]) == [f"removed folder {path}"]
        assert not os.path.exists(path)
    finally:
        import shutil
        shutil.rmtree(path, ignore_errors=True)


def test_a_dpdk_runtime_folder_of_a_dead_run_is_a_leftover(tmp_path, monkeypatch):
    """A SIGKILLed ipsec-secgw leaves /var/run/dpdk/<prefix>-sgN: found and removed."""
    import subprocess as sp
    from harness.net import leftovers
    monkeypatch.setattr(leftovers, "DPDK_RUNTIME", str(tmp_path))
    dead = sp.Popen(["true"])
    dead.wait()
    name = f"espspec-{dead.pid}-0a0b0c-sg3"
    (tmp_path / name).mkdir()
    (tmp_path / name / "config").write_text("x")
    found = leftovers.find(f"espspec-{dead.pid}-")
    assert [(f.name, f.kind) for f in found] == [(name, "dpdk-runtime")]
    assert leftovers.remove(found[0]) == [f"removed folder {tmp_path / name}"]
    assert not (tmp_path / name).exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_root_tools_are_found_without_sbin_in_path(monkeypatch):
    """A root shell without /usr/sbin in PATH (su without -): the program `ip netns exec`
    runs in a namespace is found there too (it was not: ethtool failed every install)."""
    from harness.net.procs import run
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    topo = Topology.create()
    try:
        out = run(["ip", "netns", "exec", topo.ns["a"], "ethtool", "--version"])
        assert out.returncode == 0 and "ethtool" in out.stdout
    finally:
        topo.close()
