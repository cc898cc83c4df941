"""harness.dpdk on a real ipsec-secgw (DPDK 22.11, librte_ipsec): the model in end b's place.

The pure tests (config text, argv, refusals) always run. The rig tests need root and the
binary, which scripts/build-ipsec-secgw builds into a cache folder outside the checkout;
they are skipped only when that script says a Debian package is missing (dpdk-doc,
libdpdk-dev, build-essential, pkg-config) or when not root. Any other failure of the
build fails the module. One topology, relay and secgw serve the rig tests (a start takes
~0.3 s); the last test makes its own and checks that nothing is left.

A trap for whoever writes duplicate tests against this secgw: librte_ipsec records a
received sequence number in its replay bitmap only when ``seq % 64 < 32`` (the bit is
computed into a 32-bit variable), so a duplicate of e.g. seq 40 or 100 is accepted. The
duplicates here use sequence numbers whose low six bits are below 32.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.dpdk import (AEADS, BadSecgwConfig, BinaryMissing, Secgw, SecgwDied, SecgwSa,
                          ip_packet)
from harness.dpdk.fence import FENCE_SPI, Fence
from harness.dpdk.config import (Launch, MAX_WINDOW, Tunnel, check_esn, colon_hex,
                                 crypto_vdevs, launch_argv, tunnel_config)
from harness.net import nsenter, procs
from harness.net.errors import RelayTimeout
from harness.net.relay import Relay
from harness.net.topology import Topology, namespace_pids
from spec_model import Delivered, Receiver, Sender, named

BUILD = Path(__file__).resolve().parent.parent / "scripts" / "build-ipsec-secgw"
PROFILE, PROFILE_ESN = named("esp"), named("esp-esn")
PROTO_TEST = 253                        # RFC 3692 experimentation: nobody answers it
PACKET_OUTGOING = 4


def new_sa(spi: int, aead: str = "aes128gcm16", **kw) -> SecgwSa:
    return SecgwSa(spi, aead, os.urandom(AEADS[aead].key_len + 4), **kw)


# --- pure: the file and the command line ---------------------------------------------------

def test_config_text():
    out = SecgwSa(0x1001, "aes128gcm16", bytes(range(20)))
    inb = SecgwSa(0xF0000002, "aes256gcm16", bytes(36))
    text = tunnel_config(Tunnel(out, inb, "192.0.2.10", "198.51.100.10")).text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == [
        "sp ipv4 out esp protect 4097 pri 1 src 203.0.113.1/32 dst 203.0.113.2/32 "
        "sport 0:65535 dport 0:65535",
        "sp ipv4 in esp protect 4026531842 pri 1 src 203.0.113.2/32 dst 203.0.113.1/32 "
        "sport 0:65535 dport 0:65535",
        "sa out 4097 aead_algo aes-128-gcm aead_key " + colon_hex(bytes(range(20)))
        + " mode ipv4-tunnel src 192.0.2.10 dst 198.51.100.10 telemetry",
        "sa in 4026531842 aead_algo aes-256-gcm aead_key " + ":".join(["00"] * 36)
        + " mode ipv4-tunnel src 198.51.100.10 dst 192.0.2.10 telemetry",
        "rt ipv4 dst 198.51.100.10/32 port 0",
        "rt ipv4 dst 203.0.113.1/32 port 1",
        "neigh port 0 02:e5:50:00:00:0b",
        "neigh port 1 02:e5:50:00:03:0a",
    ]
    assert colon_hex(b"\x00\xab\xff") == "00:ab:ff"
    v6 = tunnel_config(Tunnel(out, inb, "2001:db8::a", "2001:db8::b", "2001:db8:1::1",
                              "2001:db8:2::/64")).text()
    assert "mode ipv6-tunnel src 2001:db8::a dst 2001:db8::b" in v6
    assert "sp ipv6 out esp protect 4097 pri 1 src 2001:db8:1::1/128 dst 2001:db8:2::/64" in v6
    assert "rt ipv6 dst 2001:db8::b/128 port 0" in v6


def test_fence_sa_and_policy_in_the_file():
    out, inb, fence = new_sa(0x1001), new_sa(0x1002), SecgwSa(0x1003, "aes128gcm16", bytes(20))
    text = tunnel_config(Tunnel(out, inb, "192.0.2.10", "198.51.100.10", fence=fence)).text()
    assert ("sp ipv4 in esp protect 4099 pri 1 src 203.0.113.254/32 dst 203.0.113.1/32 "
            "sport 0:65535 dport 0:65535") in text
    assert ("sa in 4099 aead_algo aes-128-gcm aead_key " + ":".join(["00"] * 20)
            + " mode ipv4-tunnel src 198.51.100.10 dst 192.0.2.10 telemetry") in text
    with pytest.raises(BadSecgwConfig, match="share an SPI"):
        Tunnel(out, inb, "192.0.2.10", "198.51.100.10", fence=new_sa(0x1002))
    with pytest.raises(BadSecgwConfig, match="fence's inner source"):
        Tunnel(out, inb, "192.0.2.10", "198.51.100.10", fence=fence,
               fence_inner="2001:db8::fe")


@pytest.mark.parametrize("name", ["esp", "esp-esn"])
def test_fence_packets_open_with_the_model_and_number_themselves(name):
    profile = replace(named(name), aead="aes256gcm16", hard_packets=3)
    keymat = bytes(range(Fence.keymat_len("aes256gcm16")))
    fence = Fence(profile, "203.0.113.1", taken=(FENCE_SPI, FENCE_SPI + 1), keymat=keymat)
    assert fence.sa.spi == FENCE_SPI + 2 and fence.sa.keymat == keymat
    rx = Receiver(fence.profile, keymat, fence.sa.spi)
    for n in range(1, 6):                        # the session's limits are not the fence's
        out = rx.open(fence.next_wire())
        assert isinstance(out, Delivered) and out.seq == n, out
        assert fence.number(out.payload) == n and out.payload[12:16] == bytes([203, 0, 113, 254])
    assert fence.profile.seq is profile.seq
    assert fence.number(ip_packet("203.0.113.2", "203.0.113.1", 253, b"espspec-fence" + bytes(8))) is None
    assert fence.number(b"") is None


def test_esn_start_in_the_file():
    sa = SecgwSa(0x500, "aes128gcm16", bytes(20), esn_start=0xFFFFFFF0)
    t = Tunnel(sa, SecgwSa(0x501, "aes128gcm16", bytes(20)), "192.0.2.10", "198.51.100.10")
    assert " esn 4294967280 telemetry" in tunnel_config(t).text()
    with pytest.raises(BadSecgwConfig, match="needs ESN on"):
        check_esn(t, esn=False)
    check_esn(t, esn=True)


def test_argv():
    launch = Launch("/x/ipsec-secgw", "/w/s.cfg", "espspec-1-abc-sg1", core=1, window=128,
                    esn=True,
                    crypto=crypto_vdevs(new_sa(300), new_sa(301, "chacha20poly1305")))
    argv = launch_argv(launch)
    eal, app = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    assert eal[:4] == ["/x/ipsec-secgw", "-l", "1", "--no-huge"]
    assert "net_tap0,iface=sg-esp,mac=02:e5:50:00:00:0a" in eal
    assert "net_tap1,iface=sg-plain,mac=02:e5:50:00:02:0a" in eal
    assert eal[-4:] == ["--vdev", "crypto_openssl0", "--vdev", "crypto_chacha20_poly1305"]
    assert app == ["-p", "0x3", "-P", "-u", "0x1", "--config", "(0,0,1),(1,0,1)",
                   "-f", "/w/s.cfg", "-l", "-w", "128", "-e"]


@pytest.mark.parametrize("make, match", [
    (lambda: SecgwSa(0x300, "aes128gcm8", bytes(20)), "no AEAD"),
    (lambda: SecgwSa(0x300, "aes128gcm16", bytes(16)), "20 bytes"),
    (lambda: SecgwSa(0, "aes128gcm16", bytes(20)), "SPI"),
    (lambda: SecgwSa(0xFFFFFFFF, "aes128gcm16", bytes(20)), "SPI"),
    (lambda: Launch("b", "c", "p", window=MAX_WINDOW + 1), "replay window"),
    (lambda: Launch("b", "c", "p", memory_mb=256), "-m 320"),
    (lambda: Launch("b", "c", "p", esp_tap="x" * 16), "interface name"),
    (lambda: Tunnel(new_sa(300), new_sa(300), "192.0.2.10", "198.51.100.10"), "share an SPI"),
])
def test_refusals(make, match):
    with pytest.raises(BadSecgwConfig, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_keys_stay_out_of_repr():
    sa = SecgwSa(0x300, "aes128gcm16", b"\x5a" * 20)
    assert "5a" not in repr(sa).lower() and "20 bytes" in repr(sa)


# --- the rig on a real secgw -----------------------------------------------------------------

@pytest.fixture(scope="module")
def binary() -> str:
    if os.geteuid() != 0:
        pytest.skip("the secgw rig needs root (network namespaces)")
    p = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        why = p.stderr.strip()
        if "(Debian: apt-get install" in why:
            pytest.skip(why)
        pytest.fail(f"scripts/build-ipsec-secgw failed: {why}", pytrace=False)
    return p.stdout.strip()


class Rig:
    """What the module's rig tests share: a topology, its relay, a secgw, a socket on the
    secgw's plaintext tap (reopened after every start)."""

    def __init__(self, binary: str) -> None:
        self.topo = Topology.create()
        self.plain = None
        try:
            self.relay = Relay(self.topo).start()
            self.gw = Secgw(self.topo, binary, outbound=new_sa(0x1001), inbound=new_sa(0x2002))
            t0 = time.monotonic()
            self.gw.start()
            self.start_seconds = time.monotonic() - t0
            self.reopen()
        except BaseException:
            self.close()
            raise

    def reopen(self) -> None:
        if self.plain is not None:
            self.plain.close()
        self.plain = self.gw.plain_socket()

    def restart(self, **kw) -> float:
        t0 = time.monotonic()
        self.gw.restart(**kw)
        seconds = time.monotonic() - t0
        self.reopen()
        self.relay_drain()
        return seconds

    def relay_drain(self) -> None:
        while True:
            try:
                self.relay.next_esp("a", timeout=0)
            except RelayTimeout:
                return

    def close(self) -> None:
        if self.plain is not None:
            self.plain.close()
        self.topo.close()

    # --- packets ----------------------------------------------------------------------
    def send_plain(self, payload: bytes) -> bytes:
        """An inner packet 203.0.113.1 -> 203.0.113.2 written into the plaintext tap."""
        inner = ip_packet("203.0.113.1", "203.0.113.2", PROTO_TEST, payload)
        self.plain.send(self.gw.plain_frame(inner))
        return inner

    def inject(self, esp: bytes) -> None:
        self.relay.inject("a", self.gw.esp_frame(esp))

    def read_plain(self, timeout: float = 1.0) -> bytes | None:
        """The next inner packet the secgw wrote into the plaintext tap, or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.plain], [], [], left)[0]:
                return None
            frame, addr = self.plain.recvfrom(65536)
            if addr[2] != PACKET_OUTGOING:
                assert frame[:6] == bytes.fromhex(self.gw.plain_peer_mac.replace(":", ""))
                return frame[14:]
        return None


@pytest.fixture(scope="module")
def rig(binary):
    r = Rig(binary)
    yield r
    r.close()


def test_started(rig):
    gw = rig.gw
    assert gw.alive()
    assert gw.version == subprocess.run(["pkg-config", "--modversion", "libdpdk"],
                                        capture_output=True, text=True).stdout.strip()
    assert os.path.exists(os.path.join(gw.runtime_dir, "dpdk_telemetry.v2"))
    assert gw.file_prefix.startswith(rig.topo.prefix)
    assert "entering main loop on lcore 1" in gw.last_words()


def test_outbound_esp_opens_with_the_model(rig):
    gw = rig.gw
    rx = Receiver(PROFILE, gw.outbound.keymat, gw.outbound.spi)
    for seq in (1, 2):
        inner = rig.send_plain(b"outbound %d" % seq)
        pkt = rig.relay.next_esp("a")
        ip = pkt.frame[14:34]
        assert ip[9] == 50 and ip[12:16] == socket.inet_aton("192.0.2.10") \
            and ip[16:20] == socket.inet_aton("198.51.100.10")
        assert pkt.frame[:12] == bytes.fromhex("02e55000000b" "02e55000000a")
        out = rx.open(pkt.esp)
        assert isinstance(out, Delivered), out
        assert (out.seq, out.payload, out.next_header) == (seq, inner, 4)


def test_inbound_model_esp_is_decrypted(rig):
    gw = rig.gw
    tx = Sender(PROFILE, gw.inbound.keymat, gw.inbound.spi)
    for n in range(3):
        inner = ip_packet("203.0.113.2", "203.0.113.1", PROTO_TEST, b"inbound %d" % n)
        rig.inject(tx.seal(0, inner).wire)
        assert rig.read_plain() == inner


def test_duplicate_is_dropped(rig):
    gw = rig.gw
    tx = Sender(PROFILE, gw.inbound.keymat, gw.inbound.spi)
    tx.set_counter(0, 199)                       # seq 200: 200 % 64 = 8 (see the docstring)
    inner = ip_packet("203.0.113.2", "203.0.113.1", PROTO_TEST, b"once")
    wire = tx.seal(0, inner).wire
    before = gw.stats()
    rig.inject(wire)
    assert rig.read_plain() == inner
    rig.inject(wire)
    assert rig.read_plain(timeout=0.5) is None
    after = gw.stats()
    assert after["inbound"]["count"] == before["inbound"]["count"] + 1
    assert after["esp_port"]["ipackets"] >= before["esp_port"]["ipackets"] + 2


def test_restart_with_new_sas_and_window(rig):
    gw, old = rig.gw, rig.gw.inbound
    rig.restart(outbound=new_sa(0xC0000001), inbound=new_sa(0xC0000002), window=128)
    assert (gw.outbound.spi, gw.inbound.spi, gw.window) == (0xC0000001, 0xC0000002, 128)
    rx = Receiver(PROFILE, gw.outbound.keymat, gw.outbound.spi)
    inner = rig.send_plain(b"after restart")
    out = rx.open(rig.relay.next_esp("a").esp)
    assert isinstance(out, Delivered) and (out.seq, out.payload) == (1, inner)
    tx = Sender(PROFILE, gw.inbound.keymat, gw.inbound.spi)
    for seq, delivered in ((300, True), (300 - 127, True), (300 - 130, False)):
        tx.set_counter(0, seq - 1)
        inner = ip_packet("203.0.113.2", "203.0.113.1", PROTO_TEST, b"w %d" % seq)
        rig.inject(tx.seal(0, inner).wire)
        assert (rig.read_plain(timeout=1.0 if delivered else 0.4) == inner) is delivered, seq
    stale = Sender(PROFILE, old.keymat, old.spi).seal(0, ip_packet(
        "203.0.113.2", "203.0.113.1", PROTO_TEST, b"old SA"))
    rig.inject(stale.wire)
    assert rig.read_plain(timeout=0.4) is None


def test_esn_with_a_window_across_the_wrap(rig):
    gw, start = rig.gw, 0xFFFFFFF0
    rig.restart(outbound=new_sa(0xE001, esn_start=start),
                inbound=new_sa(0xE002, esn_start=start), window=64, esn=True)
    assert gw.esn and "ESN: enabled" in open(gw.log_path).read()
    rx = Receiver(PROFILE_ESN, gw.outbound.keymat, gw.outbound.spi)
    rx.jump(0, start - 1)
    for seq in (start, start + 1):               # secgw's first packet carries esn_start
        inner = rig.send_plain(b"esn out")
        out = rx.open(rig.relay.next_esp("a").esp)
        assert isinstance(out, Delivered) and (out.seq, out.payload) == (seq, inner), out
    tx = Sender(PROFILE_ESN, gw.inbound.keymat, gw.inbound.spi)
    wrapped = (1 << 32) + 5                      # 5 % 64 < 32: its duplicate is caught
    for seq, delivered in ((start + 2, True), (wrapped, True), (start + 10, True),
                           (wrapped, False)):
        tx.set_counter(0, seq - 1)
        inner = ip_packet("203.0.113.2", "203.0.113.1", PROTO_TEST, b"esn %d" % seq)
        rig.inject(tx.seal(0, inner).wire)
        assert (rig.read_plain(timeout=1.0 if delivered else 0.4) == inner) is delivered, \
            hex(seq)


def test_stats(rig):
    before = rig.gw.stats()
    assert set(before) == {"outbound", "inbound", "esp_port", "plain_port"}
    assert before["outbound"]["spi"] == rig.gw.outbound.spi
    rig.send_plain(b"counted")
    rig.relay.next_esp("a")
    after = rig.gw.stats()
    assert after["outbound"]["count"] == before["outbound"]["count"] + 1
    assert after["outbound"]["errors"] == 0
    assert after["plain_port"]["ipackets"] == before["plain_port"]["ipackets"] + 1


def test_refused_before_start(rig, binary):
    with pytest.raises(BinaryMissing, match="build-ipsec-secgw"):
        Secgw(rig.topo, "/nonexistent/ipsec-secgw", outbound=new_sa(0x700),
              inbound=new_sa(0x701)).start()
    with pytest.raises(BadSecgwConfig, match="needs ESN on"):
        Secgw(rig.topo, binary, outbound=new_sa(0x700, esn_start=5), inbound=new_sa(0x701))
    with pytest.raises(BadSecgwConfig, match="core"):
        Secgw(rig.topo, binary, core=64, outbound=new_sa(0x700), inbound=new_sa(0x701)).start()
    assert rig.gw.alive()


def test_build_script_is_idempotent(binary):
    """A second call builds nothing (the binary is not rewritten) and prints the path."""
    before = os.stat(binary).st_mtime_ns
    p = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == binary
    assert os.stat(binary).st_mtime_ns == before
    assert not binary.startswith(str(BUILD.parent.parent))


def test_nothing_left_after_stop_and_close(binary):
    topo = Topology.create()
    gw = Secgw(topo, binary, outbound=new_sa(0x801), inbound=new_sa(0x802))
    gw.start()
    first_pid, first_dir = gw.pid, gw.runtime_dir
    child = gw._child
    gw.stop()
    gw.stop()                                          # idempotent
    assert not gw.alive() and procs.gone(first_pid) and not os.path.exists(first_dir)
    assert child.proc.returncode == 0                  # SIGTERM handled, no SIGKILL needed
    gw.start()                                         # killed behind the rig's back
    os.kill(gw.pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while gw.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(SecgwDied, match="exited with status -9"):
        gw.check()
    killed_dir = gw.runtime_dir
    gw.start()                                         # then forgotten: close() stops it
    assert not os.path.exists(killed_dir)              # start() stopped the dead one first
    second_pid, second_dir = gw.pid, gw.runtime_dir
    assert second_dir != first_dir
    names = list(topo.ns.values())
    topo.close()
    assert procs.gone(second_pid) and not os.path.exists(second_dir)
    assert not any(nsenter.exists(n) for n in names)
    assert all(not namespace_pids(n) for n in names)
    assert not os.path.exists(os.path.join("/tmp", topo.prefix))


def test_the_adapter_carries_a_judged_session(binary):
    """harness.adapters.dpdk: a session on esp and one on esp-esn, IPv4
    inner packets both ways judged by the model, a replay dropped, nothing left."""
    from harness.adapters.dpdk import dpdk
    from harness.adapters.tun_daemon import close_rigs
    from harness.engine.session import Session
    from harness.net import leftovers
    prefixes = set()
    try:
        for name in ("esp", "esp-esn"):
            s = Session.open(dpdk, named(name), label=f"t/adapter/{name}")
            prefixes.add(s.iut.rig_.topology.prefix)
            for size in (0, 64, 1000):
                assert isinstance(s.iut_send(0, size), bytes)
                wire = s.peer_send(0, size)
                s.deliver(0)
                assert s.answers[-1].startswith("unprotect: Delivered")
            dropped = s.iut.unprotect(wire)                # its replay
            assert dropped.__class__.__name__ == "Dropped" and "fence" in dropped.detail, \
                dropped                                    # known by the fence, not a wait
            s.close()
    finally:
        close_rigs()
    assert len(prefixes) == 1                    # one rig, restarted for the second session
    assert leftovers.find(prefixes.pop()) == []  # (other tests' rigs of this process stay)
