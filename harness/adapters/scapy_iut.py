"""scapy's ``SecurityAssociation`` behind the IUT contract (classic ESP only).

Theory of operation: the outbound SA is a scapy SecurityAssociation that keeps its own
sequence counter, as scapy does; the inbound one decrypts whatever it is handed. The
adapter only translates: a payload becomes an IP packet for scapy (the inner packet in
tunnel mode, an IP header with the given protocol in transport mode), and the ESP layer
of scapy's output is what goes on the wire. It does not work around scapy's documented
behaviour: no anti-replay, GCM ICVs other than 16 bytes fail inside scapy, ``seq_num=0``
means "scapy's own counter", and the ESN high half is a fixed setting that scapy never
advances. The suites report these as findings.
"""

from __future__ import annotations

import logging

from spec_model import DropReason, Mode, SeqWire

from ..contract import Capabilities, Delivered, Dropped, Refused, SaConfig

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

# scapy 2.8's AES-GCM goes through cryptography's AESGCM class, which takes 16-byte tags
# only: GCM with 8- or 12-byte ICVs fails both ways (tests/test_scapy_interop.py,
# `espspec probe --iut scapy`), so those AEADs are not claimed
SCAPY_ALGOS = {"aes128gcm16": "AES-GCM", "aes256gcm16": "AES-GCM",
               "chacha20poly1305": "CHACHA20-POLY1305"}
OUTER_SRC, OUTER_DST = "192.0.2.1", "192.0.2.2"

CAPABILITIES = Capabilities(
    framings=frozenset({"esp"}), aeads=frozenset(SCAPY_ALGOS), seq=frozenset({"32", "esn"}),
    subsa_locations=frozenset({"none"}), nonce_schemes=frozenset({"explicit-counter"}),
    modes=frozenset({"tunnel", "transport"}), max_sub_sas=1, max_crypt_offset=0,
    replay_window=None, anti_replay=False, can_set_counters=True,
    reports_drop_reasons=False, reports_counters=True, enforces_limits=False,
    rekey=True, rekey_overlap=False,
    notes=("scapy.layers.ipsec has no anti-replay (its docstring says so)",
           "random explicit IVs for GCM and ChaCha20-Poly1305",
           "AES-GCM with 8- or 12-byte ICVs: not in scapy 2.8 (16-byte tags only)"),
)


class ScapyIut:
    name = "scapy"

    def __init__(self) -> None:
        import scapy
        from scapy.layers import ipsec
        self.version = scapy.__version__
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6
        from scapy.packet import Raw
        self._ipsec, self._IP, self._IPv6, self._Raw = ipsec, IP, IPv6, Raw
        self.out = self.inb = None
        self.tunnel = True

    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def _sa(self, cfg: SaConfig):
        p = cfg.profile
        return self._ipsec.SecurityAssociation(
            self._ipsec.ESP, spi=cfg.spi, crypt_algo=SCAPY_ALGOS[p.aead], crypt_key=cfg.keymat,
            crypt_icv_size=p.aead_spec.icv_len, auth_algo=None,
            tunnel_header=self._IP(src=OUTER_SRC, dst=OUTER_DST) if p.mode is Mode.TUNNEL
            else None, esn_en=p.seq is SeqWire.ESN, esn=0)

    def install(self, outbound: SaConfig, inbound: SaConfig) -> None:
        self.out, self.inb = self._sa(outbound), self._sa(inbound)
        self.tunnel = outbound.profile.mode is Mode.TUNNEL

    def protect(self, sub_sa: int, payload: bytes, next_header: int | None) -> bytes | Refused:
        if sub_sa != 0:
            return Refused("SUBSA-ID-RANGE", "scapy has one sequence counter per SA")
        if self.tunnel:
            inner = (self._IPv6(payload) if payload[:1] and payload[0] >> 4 == 6
                     else self._IP(payload))
        else:
            inner = self._IP(src=OUTER_SRC, dst=OUTER_DST, proto=next_header) / self._Raw(payload)
        encrypted = self.out.encrypt(inner)
        return bytes(encrypted[self._ipsec.ESP])

    def unprotect(self, wire: bytes) -> Delivered | Dropped:
        pkt = self._IP(bytes(self._IP(src=OUTER_SRC, dst=OUTER_DST, proto=50) / self._Raw(wire)))
        try:
            out = self.inb.decrypt(pkt)
        except self._ipsec.IPSecIntegrityError as e:
            return Dropped(DropReason.ICV, "", f"scapy: {e}")
        except Exception as e:  # scapy raises assorted errors on malformed input
            return Dropped(None, "", f"scapy {type(e).__name__}: {e}")
        if self.tunnel:
            raw = bytes(out)
            return Delivered(None, None, raw, 41 if raw[:1] and raw[0] >> 4 == 6 else 4)
        return Delivered(None, None, bytes(out.payload), out.proto)

    def rekey(self, outbound: SaConfig, inbound: SaConfig) -> None:
        """New SecurityAssociations replace the old ones (scapy keeps no SA table, so the
        old inbound SPI is unknown at once: its packets fail scapy's SPI check)."""
        self.install(outbound, inbound)

    def set_counter(self, sub_sa: int, value: int) -> None:
        # scapy sends self.seq_num next and keeps the ESN high half as a fixed setting
        self.out.seq_num = (value + 1) & 0xFFFFFFFF
        self.out.esn = (value + 1) >> 32

    def counters(self) -> list[int]:
        return [(self.out.esn << 32 | self.out.seq_num) - 1]

    def close(self) -> None:
        self.out = self.inb = None
