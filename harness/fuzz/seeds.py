"""The shipped corpora (``corpora/<target>/``), written deterministically.

Theory of operation: every seed is made here, from the model and the known-answer
vectors, so ``espspec fuzz --make-corpus`` writes the same files on every machine:

* packets: for every named profile, packets the model seals under the fuzz SA
  (``sas``) with payloads of 0, 20 and 61 bytes after the inner header, on the first and
  the last sub-SA, and the published ESP vectors' bodies (``corpora/vectors/``) sealed
  under the fuzz SA at the vectors' sequence numbers; each as ``tag || packet`` for the
  profiles the target covers;
* the decoders and the receiver also get the vectors' packets as they were published
  (under their own keys: for the receiver they die at the ICV, for a decoder they are
  ESP like any other);
* captures: one pcap and one pcapng per link type the reader knows (Ethernet, raw IP,
  Linux SLL and SLL2, IPv4, IPv6), holding ESP, ESP-in-UDP, EESP-in-UDP and PSP frames of
  model packets, plus the published ESP packets in one Ethernet pcap.

A target's corpus folder is replaced as a whole; crash inputs live elsewhere
(``corpora/crashes/``) and are never written here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

from spec_model import NAMED, Framing, Sender

from ..engine.craft import seal_custom
from ..net.frames import ip_packet
from .engine import CORPORA
from .sas import PROFILES, SPI, keymat, profiles_of, tag

VECTORS = CORPORA / "vectors" / "esp-gcm-mcgrew.json"
SIZES = (0, 20, 61)


def _inner(size: int) -> bytes:
    return bytes((0x45, 0, 0, 20 + size)) + bytes(16 + size)


def model_packets(name: str) -> list[tuple[str, bytes]]:
    p = NAMED[name]
    nh = None if p.mode.value == "tunnel" else 17
    out = []
    for sub_sa in sorted({0, p.n_sub_sas - 1}):
        tx = Sender(p, keymat(p), SPI)
        for size in SIZES:
            out.append((f"{name}-s{sub_sa}-{size}", tx.seal(sub_sa, _inner(size), nh).wire))
    return out


def vectors() -> list[dict]:
    return json.loads(VECTORS.read_text())["tests"]


def resealed_vectors(name: str) -> list[tuple[str, bytes]]:
    """The vectors' encrypted bodies (plaintext, padding 1, 2, ..., pad length, next
    header, as published) sealed under an ESP profile's fuzz SA at the vectors' sequence
    numbers (low 32 bits)."""
    p = NAMED[name]
    if p.framing is not Framing.ESP:
        return []
    out = []
    for v in vectors():
        tx = Sender(p, keymat(p), SPI)
        body = (bytes.fromhex(v["plaintext"]) + bytes(range(1, v["padLength"] + 1))
                + bytes((v["padLength"], v["nextHeader"])))
        counter = (v["seq"] & 0xFFFFFFFF) or 1
        out.append((f"{name}-vector{v['tcId']}",
                    seal_custom(tx, 0, body, counter=min(counter, tx.policy.counter_max))))
    return out


def published_packets() -> list[tuple[str, bytes]]:
    return [(f"published{v['tcId']}", bytes.fromhex(v["esp"])) for v in vectors()]


def _write(folder: Path, items: list[tuple[str, bytes]]) -> int:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in items:
        (folder / name).write_bytes(data)
    return len(items)


def packet_corpus(names: tuple[str, ...], published: bool) -> list[tuple[str, bytes]]:
    items = []
    for name in names:
        for label, wire in model_packets(name) + resealed_vectors(name):
            items.append((label, tag(name, names) + wire))
    if published:
        esp = [n for n in names if NAMED[n].framing is Framing.ESP]
        for n in esp[:1] + [n for n in esp if NAMED[n].seq.value == "esn"][:1]:
            for label, wire in published_packets():
                items.append((f"{n}-{label}", tag(n, names) + wire))
    return items


# --- captures ---------------------------------------------------------------------------
_UDP = struct.Struct("!HHHH")
ENDS = (("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2"))
LINKTYPES = {1: "ethernet", 101: "raw", 113: "linux-sll", 228: "ipv4", 229: "ipv6",
             276: "linux-sll2"}


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return _UDP.pack(sport, dport, 8 + len(payload), 0) + payload


def ip_packets() -> list[bytes]:
    """IP packets carrying each framing: ESP (proto 50 and UDP 4500), EESP (UDP 4545), PSP
    (UDP 1000), over IPv4 and IPv6."""
    esp = model_packets("esp")[1][1]
    eesp = model_packets("eesp-v0")[1][1]
    psp = model_packets("psp-v0")[1][1]
    out = []
    for src, dst in ENDS:
        out += [ip_packet(src, dst, 50, esp), ip_packet(src, dst, 17, _udp(4500, 4500, esp)),
                ip_packet(src, dst, 17, _udp(4545, 4545, eesp)),
                ip_packet(src, dst, 17, _udp(1000, 1000, psp))]
    return out


def link_frame(linktype: int, ip: bytes) -> bytes | None:
    v6 = ip[0] >> 4 == 6
    ethertype = 0x86DD if v6 else 0x0800
    if linktype == 1:
        return bytes.fromhex("020000000002020000000001") + struct.pack("!H", ethertype) + ip
    if linktype == 101:
        return ip
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 1, 6, bytes(6) + b"\0\0", ethertype) + ip
    if linktype == 276:
        return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 0, 6, bytes(8)) + ip
    if linktype == 228:
        return None if v6 else ip
    if linktype == 229:
        return ip if v6 else None
    raise ValueError(linktype)


def pcap(linktype: int, frames: list[bytes]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(f), len(f)) + f)
    return b"".join(out)


def _block(kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


def pcapng(linktype: int, frames: list[bytes]) -> bytes:
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(1, struct.pack("<HHI", linktype, 0, 65535))]
    for i, f in enumerate(frames):
        t = (1_700_000_000 + i) * 1_000_000
        out.append(_block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(f),
                                         len(f)) + f))
    return b"".join(out)


def capture_corpus() -> list[tuple[str, bytes]]:
    items = []
    for lt, name in LINKTYPES.items():
        frames = [f for f in (link_frame(lt, ip) for ip in ip_packets()) if f is not None]
        items.append((f"{name}.pcap", pcap(lt, frames)))
        items.append((f"{name}.pcapng", pcapng(lt, frames)))
    vec = [link_frame(1, ip_packet(*ENDS[0], 50, w)) for _, w in published_packets()]
    items.append(("vectors-ethernet.pcap", pcap(1, vec)))
    return items


def corpora() -> dict[str, list[tuple[str, bytes]]]:
    """Every target's seeds (the network target's are the receiver's for its profiles)."""
    from .differential import SCAPY_ESP_PROFILES, SCAPY_PSP_PROFILES
    out = {f"decode-{f.value}": packet_corpus(profiles_of(f), True) for f in Framing}
    out["receiver"] = packet_corpus(PROFILES, True)
    out["resealed"] = packet_corpus(PROFILES, False)
    out["diff-scapy-esp"] = packet_corpus(SCAPY_ESP_PROFILES, False)
    out["diff-scapy-psp"] = packet_corpus(SCAPY_PSP_PROFILES, False)
    out["capture"] = capture_corpus()
    return out


def write_all(root: Path = CORPORA) -> dict[str, int]:
    return {name: _write(root / name, items) for name, items in corpora().items()}


def digest(items: list[tuple[str, bytes]]) -> str:
    return hashlib.sha256(b"".join(n.encode() + d for n, d in items)).hexdigest()
