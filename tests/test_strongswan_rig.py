"""harness.strongswan on real daemons: two charons (kernel-libipsec) on a topology, the
model in B's place for ESP.

Runs as root (network namespaces). Skipped only when strongSwan's charon binary or the
``vici`` Python package is missing; anything else that goes wrong is a failure. One
topology, relay and pair serve the module's tests (starting them takes ~0.1 s); the
last test builds its own, kills the peer, tears everything down and checks that nothing
is left.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness.net import procs
from harness.net.frames import udp_frame
from harness.net.topology import Topology
from harness.net.relay import Relay
from harness.strongswan import (Negotiated, ProposalRefused, StrongSwanPair,
                                probe_proposals)
from harness.strongswan.rig import CHARON
from spec_model import Delivered, Receiver, Sender, named

_MISSING = [why for missing, why in (
    (not os.access(CHARON, os.X_OK), f"strongSwan's charon ({CHARON}) is not installed "
     f"(Debian: strongswan-charon libcharon-extra-plugins)"),
    (importlib.util.find_spec("vici") is None, "the vici Python package is not installed"),
) if missing]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING) or "-")

PROFILE = named("esp")           # RFC 4303 ESP, tunnel mode, 32-bit SN, AES-GCM-16
SINK_PORT = 9999                 # a UDP socket in end a takes the inner packets: no ICMP
PACKET_HOST, PACKET_OUTGOING = 0, 4


class Rig:
    """What the module's tests share."""

    def __init__(self, workdir: str) -> None:
        self.topo = Topology.create()
        try:
            self.relay = Relay(self.topo).start()
            self.pair = StrongSwanPair(self.topo, workdir)
            t0 = time.monotonic()
            self.pair.start()
            self.start_seconds = time.monotonic() - t0
            self.neg = self.pair.establish("aes128gcm16")
            self.tx = Sender(PROFILE, self.neg.in_keymat, self.neg.in_spi)
            self.sink = self.topo.socket("a", socket.AF_INET, socket.SOCK_DGRAM)
            self.sink.bind((self.pair.inner["a"], SINK_PORT))
            self.tun = self.topo.socket("a", socket.AF_PACKET, socket.SOCK_DGRAM,
                                        socket.htons(3))
            self.tun.bind((self.pair.tun_name, 3))
        except BaseException:
            self.close()
            raise

    def renew(self, neg: Negotiated) -> None:
        self.neg = neg
        self.tx = Sender(PROFILE.replace(aead=neg.proposal), neg.in_keymat, neg.in_spi)

    def close(self) -> None:
        for name in ("sink", "tun"):
            s = getattr(self, name, None)
            if s is not None:
                s.close()
        pair = getattr(self, "pair", None)
        try:
            if pair is not None:
                pair.close()
        finally:
            self.topo.close()

    # --- packets ------------------------------------------------------------------------
    def inner(self, src: str, dst: str, payload: bytes) -> bytes:
        """An IPv4/UDP packet with correct checksums (an Ethernet frame's IP part)."""
        return udp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", src, dst, 40000,
                         SINK_PORT, payload)[14:]

    def to_a(self, payload: bytes) -> bytes:
        return self.inner(self.pair.inner["b"], self.pair.inner["a"], payload)

    def inject(self, esp: bytes) -> None:
        """ESP bytes from end b to end a (UDP 4500 both ways), through the relay."""
        self.relay.inject("a", self.topo.udp_frame("b", 4500, 4500, esp))

    def on_tun(self, want: bytes, timeout: float = 1.0) -> bytes | None:
        """The first packet charon A writes into its TUN device that ends with ``want``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.tun.settimeout(left)
            try:
                data, addr = self.tun.recvfrom(65536)
            except socket.timeout:
                return None
            if addr[2] == PACKET_HOST and data.endswith(want):
                return data
        return None

    def drain_tun(self) -> None:
        self.tun.setblocking(False)
        try:
            while True:
                self.tun.recv(65536)
        except BlockingIOError:
            pass
        finally:
            self.tun.setblocking(True)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(str(tmp_path_factory.mktemp("strongswan")))
    yield r
    r.close()


def _reseal_with_bad_padding(neg: Negotiated, wire: bytes) -> bytes:
    """The model's packet (sealed with ``extra_pad``) with its first padding byte changed
    and the ICV made right again: only the padding check can reject it."""
    key, salt = neg.in_keymat[:-4], neg.in_keymat[-4:]
    aad, iv = wire[:8], wire[8:16]
    body = bytearray(AESGCM(key).decrypt(salt + iv, wire[16:], aad))
    pad_len = body[-2]
    assert pad_len >= 4
    body[-2 - pad_len] ^= 0x55                       # 1, 2, 3, ... no more
    return wire[:16] + AESGCM(key).encrypt(salt + iv, bytes(body), aad)


# --- the tests, in order ---------------------------------------------------------------------

def test_start_and_keys(rig):
    pair, neg = rig.pair, rig.neg
    assert pair.alive()
    assert pair.version == "5.9.8" or pair.version.startswith("5.")
    assert pair.tun_name == "ipsec0"
    assert rig.start_seconds < 5
    assert neg.proposal == "aes128gcm16" and neg.mode == "tunnel"
    assert len(neg.in_keymat) == len(neg.out_keymat) == 20       # 16-byte key || salt
    assert neg.in_keymat != neg.out_keymat and neg.in_spi != neg.out_spi
    listed = pair.child_sas("a")
    assert [(c["spi_in"], c["spi_out"]) for c in listed] == [(neg.in_spi, neg.out_spi)]
    assert neg.seconds < 1.0


def test_model_packet_is_decrypted_into_tun(rig):
    """in_spi/in_keymat are right: A opens what the model sealed for it."""
    inner = rig.to_a(b"sealed by the model, opened by charon")
    rig.drain_tun()
    rig.inject(rig.tx.seal(0, inner).wire)
    assert rig.on_tun(inner) == inner


def test_tun_packet_leaves_as_esp_the_model_opens(rig):
    """out_spi/out_keymat are right: the model opens what A sealed."""
    inner = rig.inner(rig.pair.inner["a"], rig.pair.inner["b"], b"from A's TUN device")
    rig.tun.sendto(inner, (rig.pair.tun_name, 0x0800))
    rx = Receiver(PROFILE, rig.neg.out_keymat, rig.neg.out_spi)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        pkt = rig.relay.next_esp("a", timeout=max(0.01, deadline - time.monotonic()))
        if pkt.spi != rig.neg.out_spi:
            continue
        out = rx.open(pkt.esp)
        if isinstance(out, Delivered) and out.payload == inner:
            assert out.next_header == 4
            return
    pytest.fail("no ESP packet from A carried the packet written into its TUN device")


def test_second_establish_replaces_the_child_sa(rig):
    pair, old = rig.pair, rig.neg
    t0 = time.monotonic()
    new = pair.establish("aes128gcm16")
    took = time.monotonic() - t0
    assert took < 0.5, f"a new CHILD_SA took {took:.3f} s"
    assert {new.in_spi, new.out_spi}.isdisjoint({old.in_spi, old.out_spi})
    assert new.in_keymat != old.in_keymat and new.out_keymat != old.out_keymat
    for side, spi_in in (("a", new.in_spi), ("b", new.out_spi)):
        assert [c["spi_in"] for c in pair.child_sas(side)] == [spi_in], side
    old_tx = rig.tx
    rig.renew(new)
    stale, fresh = rig.to_a(b"under the closed SA"), rig.to_a(b"under the new SA")
    rig.drain_tun()
    rig.inject(old_tx.seal(0, stale).wire)
    rig.inject(rig.tx.seal(0, fresh).wire)
    assert rig.on_tun(fresh) == fresh
    assert rig.on_tun(stale, timeout=0.2) is None


def test_replay_icv_and_padding_drops(rig):
    pair = rig.pair
    first = rig.tx.seal(0, rig.to_a(b"once"))
    rig.inject(first.wire)
    assert rig.on_tun(rig.to_a(b"once")) is not None

    mark = pair.mark()
    rig.inject(first.wire)                                   # the same packet again
    drop = pair.wait_drop(mark, 2.0)
    assert drop is not None and drop.reason == "replay", drop
    assert (drop.spi, drop.seq) == (rig.neg.in_spi, first.seq), drop

    mark = pair.mark()
    flipped = bytearray(rig.tx.seal(0, rig.to_a(b"flipped")).wire)
    flipped[-1] ^= 0x01                                      # last ICV bit
    rig.inject(bytes(flipped))
    drop = pair.wait_drop(mark, 2.0)
    assert drop is not None and drop.reason == "icv", drop

    mark = pair.mark()
    padded = rig.tx.seal(0, rig.to_a(b"badly padded"), extra_pad=4)
    rig.inject(_reseal_with_bad_padding(rig.neg, padded.wire))
    drop = pair.wait_drop(mark, 2.0)
    assert drop is not None and drop.reason == "padding", drop
    assert [d.reason for d in pair.drops_since(mark)] == ["padding"]


def test_counters_move(rig):
    pair = rig.pair
    before = pair.counters()
    assert set(before) == {"bytes_in", "packets_in", "bytes_out", "packets_out"}
    inner = rig.to_a(b"counted in")
    rig.inject(rig.tx.seal(0, inner).wire)
    assert rig.on_tun(inner) is not None
    rig.tun.sendto(rig.inner(pair.inner["a"], pair.inner["b"], b"counted out"),
                   (pair.tun_name, 0x0800))
    deadline = time.monotonic() + 2.0
    while True:
        after = pair.counters()
        if after["packets_out"] > before["packets_out"] or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert after["packets_in"] == before["packets_in"] + 1
    assert after["bytes_in"] == before["bytes_in"] + len(inner)
    assert after["packets_out"] >= before["packets_out"] + 1
    assert after["bytes_out"] > before["bytes_out"]


def test_refused_proposal_raises_one_line(rig):
    current = rig.pair.current
    with pytest.raises(ProposalRefused) as info:
        rig.pair.establish("aes128gcm16-esn")
    message = str(info.value)
    assert "\n" not in message and "aes128gcm16-esn" in message
    assert "ESN not supported" in message
    assert rig.pair.current == current                      # the old SA stays in use
    inner = rig.to_a(b"still there")
    rig.inject(rig.tx.seal(0, inner).wire)
    assert rig.on_tun(inner) is not None


def test_transport_mode_is_refused(rig):
    """libipsec 5.9.8 has tunnel mode only: what the adapter's capabilities say."""
    with pytest.raises(ProposalRefused) as info:
        rig.pair.establish("aes128gcm16", mode="transport")
    assert "unsupported mode" in str(info.value) and "\n" not in str(info.value)


def test_probe_proposals(rig):
    aeads = ["aes128gcm16", "aes256gcm16", "aes128gcm12", "aes128gcm8", "aes256gcm12",
             "aes256gcm8", "chacha20poly1305", "aes192gcm16"]
    found = probe_proposals(rig.pair, aeads + ["aes128gcm16-esn"])
    assert {p: found[p] for p in aeads} == {p: None for p in aeads}
    assert "ESN not supported" in found["aes128gcm16-esn"]
    neg = rig.pair.current
    assert neg.proposal == "aes192gcm16" and len(neg.in_keymat) == 28
    rig.renew(neg)
    inner = rig.to_a(b"aes192gcm16 works")
    rig.inject(rig.tx.seal(0, inner).wire)
    assert rig.on_tun(inner) is not None


def test_kill_peer_then_close_leaves_nothing(tmp_path):
    """On a pair of its own, so the shared one is never closed under another test."""
    own = Rig(str(tmp_path))
    pair, topo = own.pair, own.topo
    try:
        pids = pair.pids()
        assert set(pids) == {"a", "b"}
        pair.kill_peer()
        assert procs.gone(pids["b"]) and not pair.alive()
        assert [c["spi_in"] for c in pair.child_sas("a")] == [pair.current.in_spi]
    finally:
        own.close()
    own.close()                                              # idempotent
    assert all(procs.gone(pid) for pid in pids.values())
    left = procs.run(["ip", "netns", "list"]).stdout
    assert topo.prefix not in left
