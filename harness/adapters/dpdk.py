"""DPDK's ipsec-secgw (librte_ipsec) as an IUT over the network: ``--iut dpdk``.

Theory of operation: a ``SecgwRig`` is a ``TunRig`` (``tun_daemon``) for raw ESP (IP
protocol 50) whose daemon is one ``harness.dpdk.Secgw`` at end a: its ESP port is wired
to the namespace's ``eth0`` (tc mirred, so the relay sees every ESP packet), its
plaintext port is a TAP device espspec writes inner packets into and reads decrypted ones
from, as Ethernet frames. ipsec-secgw's SAs are static, so ``install`` (and ``rekey``)
restarts it with a file holding the session's SAs, window (``-w``) and ESN (``-e``), in
about 0.3 s: the SPIs and keys are espspec's own (no IKE). The binary is built on first
use by ``scripts/build-ipsec-secgw`` from Debian's dpdk-doc example source, outside the
checkout. It busy-polls one core (core 1 of this machine's two), and is stopped by its PID
on every path with the topology.

ipsec-secgw reports no drop: its per-SA error counter stays 0 for replay and ICV drops.
So every packet espspec injects is followed by a fence packet on an SA of the rig's own
(``harness.dpdk.fence``): secgw handles its one queue in order, so when the fence comes
out of the plaintext port and the packet did not, the packet was dropped (its reason
cannot be told); ``DROP_WAIT`` bounds the wait when neither comes out.

Capabilities: classic ESP, tunnel mode, 32-bit SNs and ESN, AES-GCM with a 16-byte ICV (128, 192, 256) and ChaCha20-Poly1305 (``harness.dpdk.config``
AEADS); one sub-SA; IPv4 inner packets only (secgw derives an SA's inner protocol from
its policies and refuses an SPI named by both an ipv4 and an ipv6 one); windows up to
2^21 (``-w``; librte_ipsec refuses more), configured from the profile: what it really
enforces is for the suites and ``espspec probe --iut dpdk`` to find.
"""

from __future__ import annotations

import os
import time

from spec_model import SeqWire
from spec_model.receiver import Dropped

from ..contract import Capabilities, IutCrash, IutError, SaConfig
from ..daemon.vendor import DaemonSpec
from ..dpdk.config import MAX_WINDOW
from ..dpdk.fence import FENCE_INNER, Fence
from .tun_daemon import TunDaemonIut, TunRig, rig_for

__all__ = ["CAPABILITIES", "DROP_WAIT", "SecgwRig", "DpdkIut", "build", "dpdk"]

DROP_WAIT = 1.0                  # neither the packet nor the fence behind it came out
INNER_LOCAL = "203.0.113.1"      # session.INNER_V4's IUT end
CAPABILITIES = Capabilities(
    framings=frozenset({"esp"}),
    aeads=frozenset({"aes128gcm16", "aes192gcm16", "aes256gcm16", "chacha20poly1305"}),
    seq=frozenset({"32", "esn"}), subsa_locations=frozenset({"none"}),
    nonce_schemes=frozenset({"explicit-counter"}), modes=frozenset({"tunnel"}),
    inner_families=frozenset({"ipv4"}),
    max_sub_sas=1, max_crypt_offset=0, replay_window=None, max_window=MAX_WINDOW,
    anti_replay=True,
    can_set_counters=False, reports_drop_reasons=False, reports_counters=False,
    enforces_limits=False, rekey=True, rekey_overlap=False, mtu=1500,
    notes=("DPDK ipsec-secgw (librte_ipsec, the OpenSSL crypto PMD), static SAs, raw ESP",
           "restarted with the session's SAs, window and ESN for every session"))


def build() -> str:
    """The ipsec-secgw binary's path, built by the project's script if need be."""
    from ..dpdk import BinaryMissing, build_binary
    try:
        return build_binary()
    except BinaryMissing as e:
        raise IutError(str(e)) from None


class SecgwRig(TunRig):
    event_lines = False
    drop_wait = DROP_WAIT
    link_header = 14               # the plaintext port is a TAP: Ethernet frames

    def __init__(self, port: int | None = None) -> None:
        self.secgw = None
        self.fence: Fence | None = None
        self.fences_seen = 0
        self.binary = build()
        super().__init__("dpdk-ipsec-secgw", None)

    def load(self, outbound: SaConfig, inbound: SaConfig, verb: str) -> None:
        from ..dpdk import SecgwError, SecgwSa, Secgw
        p = outbound.profile
        out = SecgwSa(outbound.spi, p.aead, outbound.keymat)
        inb = SecgwSa(inbound.spi, p.aead, inbound.keymat)
        esn = p.seq is SeqWire.ESN
        self.fence = Fence(p, INNER_LOCAL, (out.spi, inb.spi),
                           os.urandom(Fence.keymat_len(p.aead)))
        self.fences_seen = 0
        try:
            if self.secgw is None:
                self.secgw = Secgw(self.topology, self.binary, window=p.window, esn=esn,
                                   outbound=out, inbound=inb, fence=self.fence.sa,
                                   inner_local=INNER_LOCAL)
                self.secgw.start()
            else:
                self.secgw.restart(outbound=out, inbound=inb, fence=self.fence.sa,
                                   window=p.window, esn=esn)
        except SecgwError as e:
            self.check_alive(verb)
            raise IutError(f"ipsec-secgw did not start with the session's SAs: {e}") from None
        self.interface = self.secgw.plain_ifname
        if self.tun is not None:
            self.tun.close()
        self.tun = self.secgw.plain_socket()
        self.tun.setblocking(False)
        self.version = self.secgw.version

    def check_alive(self, verb: str) -> None:
        if self.secgw is not None and self.secgw.pid is not None and not self.secgw.alive():
            raise IutCrash(verb, f"ipsec-secgw died: {self.secgw.last_words(3)}")

    # the plaintext port is a TAP: whole Ethernet frames, to and from the secgw's MACs
    def write_tun(self, packet: bytes) -> None:
        self.tun.send(self.secgw.plain_frame(packet))

    # the fence (harness.dpdk.fence): every injected packet is followed by a fence packet
    def inject(self, wire: bytes) -> None:
        super().inject(wire)
        super().inject(self.fence.next_wire())

    def mark(self) -> int:
        return self.fence.sent            # the next inject's fence is number mark + 1

    def read_tun(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while True:
            data = super().read_tun(max(0.0, deadline - time.monotonic()))
            if data is None:
                return None
            n = self.fence.number(data)
            if n is None:
                return data
            self.fences_seen = max(self.fences_seen, n)

    def drop(self, mark: int) -> Dropped | None:
        if self.fences_seen > mark:
            return Dropped(None, "", "ipsec-secgw delivered the fence packet sent after "
                           "it, not it (secgw gives no reason)")
        return None

    def evidence_sas(self) -> list[tuple[SaConfig, str]]:
        """The fence's SA, so the evidence's esp_sa table opens its packets too."""
        return [(SaConfig(self.fence.profile, self.fence.sa.spi, self.fence.sa.keymat), "in")]

    def evidence_notes(self) -> list[str]:
        return super().evidence_notes() + [
            f"After every packet espspec injected comes a fence packet (SPI "
            f"{self.fence.sa.spi:#010x}, inner source {FENCE_INNER}): ipsec-secgw reports "
            f"no drop, so a packet is known dropped when the fence behind it comes out "
            f"and it does not (harness/dpdk/fence.py)."]

    def close(self) -> None:
        try:
            if self.secgw is not None:
                self.secgw.close()
        finally:
            super().close()


class DpdkIut(TunDaemonIut):
    """ipsec-secgw, driven through the IUT verbs."""

    def __init__(self) -> None:
        super().__init__(DaemonSpec(name="dpdk-ipsec-secgw", version="?",
                                    command=("ipsec-secgw",), capabilities=CAPABILITIES,
                                    encapsulation="esp"))
        from ..dpdk import dpdk_version
        self.version = f"DPDK {dpdk_version()}"

    def rig(self, profile=None) -> SecgwRig:
        return rig_for(("dpdk",), None, lambda port: SecgwRig(port))


def dpdk() -> DpdkIut:
    """The ``dpdk`` IUT."""
    return DpdkIut()

