"""strongSwan (charon with kernel-libipsec) as an IUT over the network (``--iut strongswan``).

Theory of operation: a ``StrongSwanRig`` is a ``TunRig`` (``tun_daemon``) whose daemon is
charon A of a ``harness.strongswan.StrongSwanPair``; charon B at end b is only its IKEv2
peer. espspec takes B's place for ESP: the relay drops every ESP packet (B must neither
decrypt A's packets nor answer them), so what A sends is seen by the relay alone and what
A receives is what espspec injects, sealed by the model. A session's ``install`` is a new
CHILD_SA negotiated between A and B (about 10 ms; the previous one is closed), and its
answer is the pair of SAs charon really installed -- the SPIs and keys read back from A's
log -- which the session judges against instead of the ones it proposed
(``Capabilities.negotiates_keys``). ``rekey`` is one more CHILD_SA, the same way.

What is true of this build is measured, not assumed: on first use the rig tries every
AEAD the model knows as an ESP proposal (``probe_proposals``); those that come up are the
IUT's ``aeads``, the others go into ``notes`` with charon's reason. ESN, sub-SAs, EESP,
PSP, crypt offsets and transport mode are not in libipsec 5.9.8 (measured by the rig's
tests: ``IPsec SA: ESN not supported``, ``IPsec SA: unsupported mode``), so cases that
need them are UNSUPPORTED. The window is configured from the profile (``replay_window``);
whether charon honours it is for the replay suite to find.

Drops are known from A's log (``esp = 1``: replay, ICV, padding, length); a drop charon
does not log (next header 59, an unknown SPI) is decided by ``drop_wait`` of silence.
"""

from __future__ import annotations

import os
from dataclasses import replace

from spec_model.aead import AEADS
from spec_model.receiver import DropReason, Dropped

from ..contract import Capabilities, IutCrash, IutError, SaConfig
from ..daemon.vendor import DaemonSpec
from ..net.relay import DROP
from .tun_daemon import TunDaemonIut, TunRig, rig_for

__all__ = ["CAPABILITIES", "StrongSwanIut", "StrongSwanRig", "strongswan"]

NAT_T = 4500
# libipsec reads its TUN device with a buffer of the MTU it created it with (1400): a
# larger packet is refused by the device (EMSGSIZE); raising the link's MTU would only
# make charon read it truncated (seen: 1420 bytes in, 1400 encrypted)
TUN_MTU = 1400
DROP_WAIT = 0.3
# libipsec 5.9.8: ESP in UDP, 32-bit SNs, tunnel mode, one counter per SA
CAPABILITIES = Capabilities(
    framings=frozenset({"esp"}), aeads=frozenset({"aes128gcm16"}), seq=frozenset({"32"}),
    subsa_locations=frozenset({"none"}), nonce_schemes=frozenset({"explicit-counter"}),
    modes=frozenset({"tunnel"}), max_sub_sas=1, max_crypt_offset=0, replay_window=None,
    anti_replay=True, can_set_counters=False, reports_drop_reasons=True,
    reports_counters=False, enforces_limits=False, rekey=True, rekey_overlap=False,
    mtu=TUN_MTU, negotiates_keys=True)
_REASONS = {"replay": DropReason.REPLAY, "icv": DropReason.ICV,
            "padding": DropReason.MALFORMED, "unknown-spi": DropReason.UNKNOWN_SPI,
            "other": DropReason.MALFORMED}


class StrongSwanRig(TunRig):
    event_lines = False
    drop_wait = DROP_WAIT

    def __init__(self, port: int = NAT_T) -> None:
        from ..strongswan import StrongSwanPair
        self.pair = None
        super().__init__("strongswan", NAT_T, absorb=False, policy=DROP)
        try:
            self.pair = StrongSwanPair(self.topology, os.path.join(self.workdir, "charons"))
            self.pair.start()
            self.interface = self.pair.tun_name
            self.topology.blackhole_from("a", self.interface)
            self.open_tun("install")
        except BaseException:
            self.close()
            raise
        self.version = self.pair.version
        self.probed: dict[str, str | None] | None = None

    def probe(self) -> dict[str, str | None]:
        """Which of the model's AEADs charon brings up as an ESP proposal (None) and why
        not (the reason); measured once per rig."""
        if self.probed is None:
            from ..strongswan import probe_proposals
            self.probed = probe_proposals(self.pair, sorted(AEADS))
        return self.probed

    def load(self, outbound: SaConfig, inbound: SaConfig, verb: str):
        from ..strongswan import RigError
        p = outbound.profile
        try:
            neg = self.pair.establish(p.aead, replay_window=p.window or None)
        except RigError as e:
            self.check_alive(verb)
            raise IutError(f"strongSwan did not set up the CHILD_SA: {e}") from None
        self.drain_tun()
        return (SaConfig(p, neg.out_spi, neg.out_keymat),
                SaConfig(p, neg.in_spi, neg.in_keymat))

    def check_alive(self, verb: str) -> None:
        if self.pair is not None and not self.pair.charons["a"].alive():
            raise IutCrash(verb, f"charon A died: {self.pair.charons['a'].last_words()}")

    def mark(self) -> int:
        return self.pair.mark()

    def drop(self, mark: int) -> Dropped | None:
        found = self.pair.drops_since(mark)
        if not found:
            return None
        d = found[0]
        return Dropped(_REASONS.get(d.reason), "", f"charon: {d.line.strip()}", None, d.seq)

    def close(self) -> None:
        try:
            if self.pair is not None:
                self.pair.close()
        finally:
            super().close()


class StrongSwanIut(TunDaemonIut):
    """charon A, driven through the IUT verbs."""

    def __init__(self) -> None:
        super().__init__(DaemonSpec(name="strongswan", version="?", command=("charon",),
                                    capabilities=CAPABILITIES))
        self.version = f"{self.rig().version} (kernel-libipsec)"   # charon's own answer

    def rig(self, profile=None) -> StrongSwanRig:
        return rig_for(("strongswan",), NAT_T, lambda port: StrongSwanRig(port))

    def capabilities(self) -> Capabilities:
        probed = self.rig().probe()
        ok = frozenset(a for a, why in probed.items() if why is None)
        notes = tuple(f"{a}: {why}" for a, why in sorted(probed.items()) if why is not None)
        return replace(CAPABILITIES, aeads=ok, notes=(
            "strongSwan charon with kernel-libipsec; keys read back from its log",
            *notes))


def strongswan() -> StrongSwanIut:
    """The ``strongswan`` IUT."""
    return StrongSwanIut()
