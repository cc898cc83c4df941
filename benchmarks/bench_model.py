"""Throughput of the model's sender and receiver, next to scapy's SecurityAssociation.

Prints figures; asserts nothing. Run: python benchmarks/bench_model.py [--packets N]
Targets (issue 2): seal + open of 64-byte packets for esp and eesp-v0 at >= 200 k
packets/s on one core; replay checks at W = 2^24 (see bench_replay.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from spec_model import Delivered, Kdf, Receiver, Sender, named  # noqa: E402
from spec_model.kdf import ROOT_KEY_LEN  # noqa: E402

PAYLOAD_LEN = 64
SPI = 0x1000


def inner_packet(n: int) -> bytes:
    """A 64-byte IPv4 packet (tunnel-mode payload)."""
    return bytes((0x45, 0, 0, n)) + bytes(n - 4)


def keymat(profile) -> bytes:
    n = ROOT_KEY_LEN[profile.kdf] if profile.kdf is not Kdf.NONE else profile.aead_spec.keymat_len
    return os.urandom(n)


def bench_model(name: str, packets: int) -> dict[str, float]:
    p = named(name)
    km = keymat(p)
    sender, receiver = Sender(p, km, SPI), Receiver(p, km, SPI)
    payload = inner_packet(PAYLOAD_LEN)
    n_sub = p.n_sub_sas
    nh = None if p.mode.value == "tunnel" else 17
    t0 = time.perf_counter()
    wires = [sender.seal(i % n_sub, payload, nh).wire for i in range(packets)]
    t1 = time.perf_counter()
    delivered = sum(isinstance(receiver.open(w), Delivered) for w in wires)
    t2 = time.perf_counter()
    assert delivered == packets, (name, delivered)
    return {"seal": packets / (t1 - t0), "open": packets / (t2 - t1),
            "both": packets / (t2 - t0)}


def bench_scapy(packets: int, esn: bool = False) -> dict[str, float]:
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP, SecurityAssociation
    km = os.urandom(20)
    sa = SecurityAssociation(ESP, spi=SPI, crypt_algo="AES-GCM", crypt_key=km, auth_algo=None,
                             tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"))
    inner = IP(inner_packet(PAYLOAD_LEN))
    t0 = time.perf_counter()
    enc = [sa.encrypt(inner, seq_num=i + 1) for i in range(packets)]
    t1 = time.perf_counter()
    for e in enc:
        sa.decrypt(e)
    t2 = time.perf_counter()
    return {"seal": packets / (t1 - t0), "open": packets / (t2 - t1),
            "both": packets / (t2 - t0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--scapy-packets", type=int, default=5_000)
    args = ap.parse_args()
    print(f"{PAYLOAD_LEN}-byte inner packets, one core, Python {sys.version.split()[0]}")
    print(f"{'implementation':28} {'seal/s':>10} {'open/s':>10} {'seal+open pkt/s':>16}")
    results = {}
    for name in ("esp", "esp-esn", "esp-subsa-spi", "eesp-v0", "psp-v0"):
        r = results[name] = bench_model(name, args.packets)
        print(f"model {name:22} {r['seal']:10,.0f} {r['open']:10,.0f} {r['both']:16,.0f}")
    s = bench_scapy(args.scapy_packets)
    print(f"{'scapy SecurityAssociation':28} {s['seal']:10,.0f} {s['open']:10,.0f} "
          f"{s['both']:16,.0f}")
    print(f"ratio model esp / scapy (seal+open): {results['esp']['both'] / s['both']:.1f}x")
    target = 200_000
    for name in ("esp", "eesp-v0"):
        verdict = "meets" if results[name]["both"] >= target else "BELOW"
        print(f"target >= {target:,} seal+open pkt/s for {name}: {verdict} "
              f"({results[name]['both']:,.0f})")


if __name__ == "__main__":
    main()
