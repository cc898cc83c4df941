"""Tests for harness.capture (pcap/pcapng reader and frame dissection).

Theory of operation
-------------------
Captures are written with scapy's writers (an implementation independent of
the reader under test) or, where scapy cannot express the case (pcapng with
several sections, big-endian sections, simple packet blocks, timestamp
resolutions, broken blocks), by a small struct-based block builder in this
file.  Every test knows the bytes it put in and checks that the reader and
dissector hand exactly those back, at the right packet numbers and file
offsets.  Bad input must come back as findings (never as a traceback), and
strict mode must raise the specific CaptureError subclass.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import (
    ARP,
    IP,
    UDP,
    Dot1AD,
    Dot1Q,
    Ether,
    IPOption,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Padding,
    PadN,
    Raw,
    RawPcapWriter,
    wrpcap,
)
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import CookedLinux

try:
    from scapy.layers.l2 import CookedLinuxV2
except ImportError:  # pragma: no cover - scapy 2.8 has it
    CookedLinuxV2 = None
try:
    from scapy.utils import PcapNgWriter
except ImportError:  # pragma: no cover - scapy 2.8 has it
    PcapNgWriter = None

from harness.capture import (
    AH,
    CAPLEN_OVER_SNAPLEN,
    FRAGMENT,
    IPV4_OPTIONS,
    IPV6_EXTENSIONS,
    LATER_FRAGMENT,
    LINK_PADDING,
    NAT_KEEPALIVE,
    NON_ESP_MARKER,
    PAYLOAD_CUT,
    SNAP_CUT,
    SUPPORTED_LINKTYPES,
    VLAN,
    AbsurdLength,
    BadBlock,
    BadMagic,
    CaptureError,
    CaptureFinding,
    CaptureReader,
    DissectConfig,
    Dissection,
    EmptyFile,
    MalformedFrame,
    ReaderConfig,
    Record,
    SnaplenExceeded,
    SnapTruncated,
    TruncatedFile,
    TruncatedRecord,
    UnknownInterface,
    UnknownLinkType,
    UnsupportedVersion,
    dissect,
    iter_dissected,
    iter_records,
    make_dissector,
)
from harness.capture.frames import KINDS

A4, B4 = "192.0.2.1", "198.51.100.7"
A6, B6 = "2001:db8::1", "2001:db8:ffff::2"
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
A4B, B4B = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
A6B = bytes.fromhex("20010db8000000000000000000000001")
B6B = bytes.fromhex("20010db8ffff00000000000000000002")
STRICT = ReaderConfig(strict=True)


def v4(**fields):
    return IP(src=A4, dst=B4, **fields)


def v6(**fields):
    return IPv6(src=A6, dst=B6, **fields)


def esp_bytes(spi: int, seq: int, body_len: int = 40) -> bytes:
    """An ESP packet as it appears on the wire (SPI, seq, opaque rest)."""
    return struct.pack("!II", spi, seq) + bytes((spi + seq + i) & 0xFF for i in range(body_len))


def psp_bytes(spi: int, iv: int, body_len: int = 24) -> bytes:
    header = bytes([17, 1, 0, 0x01]) + struct.pack("!IQ", spi, iv)
    return header + bytes(range(body_len)) + b"\xaa" * 16


def eesp_bytes(spi: int, session: int = 7, body_len: int = 32) -> bytes:
    return struct.pack("!BBHI", 0x80, 0, session, spi) + bytes(range(body_len))


def records(source, config=ReaderConfig()):
    reader = CaptureReader(source, config)
    return list(reader), reader


# --------------------------------------------------------------------------
# Frame catalogue: (name, scapy packet, expected Dissection fields)


def _expect(kind, payload, ver, src, dst, sport=None, dport=None, flags=0, proto=None):
    return dict(kind=kind, payload=payload, ver=ver, src=src, dst=dst, sport=sport,
                dport=dport, flags=flags, proto=proto)


def ethernet_frames():
    e = Ether(**MACS)
    p1, p2, p3 = esp_bytes(0x1001, 1), esp_bytes(0x1001, 2, 100), esp_bytes(0x2002, 9, 0)
    ike = b"\x00\x00\x00\x00" + b"IKEv2 message stand-in....."
    frames = [
        ("eth-ipv4-esp", e / IP(src=A4, dst=B4, proto=50) / Raw(p1),
         _expect("esp", p1, 4, A4B, B4B, proto=50)),
        ("eth-ipv4-esp-scapy-layer", e / IP(src=A4, dst=B4) / ESP(spi=0x33, seq=5, data=b"z" * 20),
         _expect("esp", struct.pack("!II", 0x33, 5) + b"z" * 20, 4, A4B, B4B, proto=50)),
        ("eth-vlan-ipv6-esp", e / Dot1Q(vlan=42) / IPv6(src=A6, dst=B6, nh=50) / Raw(p2),
         _expect("esp", p2, 6, A6B, B6B, flags=VLAN, proto=50)),
        ("eth-qinq-ipv4-esp", e / Dot1AD(vlan=5) / Dot1Q(vlan=6) / v4(proto=50) / Raw(p1),
         _expect("esp", p1, 4, A4B, B4B, flags=VLAN, proto=50)),
        ("eth-ipv4-options-esp",
         e / IP(src=A4, dst=B4, proto=50, options=IPOption(b"\x01\x01\x01\x00")) / Raw(p2),
         _expect("esp", p2, 4, A4B, B4B, flags=IPV4_OPTIONS, proto=50)),
        ("eth-ipv4-udp4500-esp", e / IP(src=A4, dst=B4) / UDP(sport=4500, dport=4500) / Raw(p1),
         _expect("esp", p1, 4, A4B, B4B, 4500, 4500, proto=17)),
        ("eth-ipv4-udp-natted-esp", e / IP(src=B4, dst=A4) / UDP(sport=4500, dport=40123) / Raw(p2),
         _expect("esp", p2, 4, B4B, A4B, 4500, 40123, proto=17)),
        ("eth-ipv4-udp4500-ike", e / IP(src=A4, dst=B4) / UDP(sport=4500, dport=4500) / Raw(ike),
         _expect("other", ike, 4, A4B, B4B, 4500, 4500, flags=NON_ESP_MARKER, proto=17)),
        ("eth-ipv4-udp4500-keepalive", e / v4() / UDP(sport=4500, dport=4500) / Raw(b"\xff"),
         _expect("other", b"\xff", 4, A4B, B4B, 4500, 4500, flags=NAT_KEEPALIVE, proto=17)),
        ("eth-ipv4-udp1000-psp",
         e / v4() / UDP(sport=51000, dport=1000) / Raw(psp_bytes(0x80000001, 3)),
         _expect("psp", psp_bytes(0x80000001, 3), 4, A4B, B4B, 51000, 1000, proto=17)),
        ("eth-ipv6-udp1000-psp", e / v6() / UDP(sport=2222, dport=1000) / Raw(psp_bytes(5, 4)),
         _expect("psp", psp_bytes(5, 4), 6, A6B, B6B, 2222, 1000, proto=17)),
        ("eth-ipv4-udp-from-1000-not-psp",
         e / v4() / UDP(sport=1000, dport=2222) / Raw(b"abcdefgh"),
         _expect("other", b"abcdefgh", 4, A4B, B4B, 1000, 2222, proto=17)),
        ("eth-ipv4-udp-dns", e / IP(src=A4, dst=B4) / UDP(sport=53, dport=53) / Raw(b"\x12\x34"),
         _expect("other", b"\x12\x34", 4, A4B, B4B, 53, 53, proto=17)),
        ("eth-ipv6-ext-esp",
         e / IPv6(src=A6, dst=B6, nh=0) / IPv6ExtHdrHopByHop(nh=43)
         / IPv6ExtHdrRouting(nh=60, addresses=[]) / IPv6ExtHdrDestOpt(nh=50) / Raw(p1),
         _expect("esp", p1, 6, A6B, B6B, flags=IPV6_EXTENSIONS, proto=50)),
        ("eth-ipv6-first-fragment-esp",
         e / IPv6(src=A6, dst=B6, nh=44) / IPv6ExtHdrFragment(nh=50, offset=0, m=1, id=9) / Raw(p2),
         _expect("esp", p2, 6, A6B, B6B, flags=IPV6_EXTENSIONS | FRAGMENT, proto=50)),
        ("eth-ipv6-later-fragment",
         e / v6(nh=44) / IPv6ExtHdrFragment(nh=50, offset=10, m=0, id=9) / Raw(p1),
         _expect("other", p1, 6, A6B, B6B, proto=50,
                 flags=IPV6_EXTENSIONS | FRAGMENT | LATER_FRAGMENT)),
        ("eth-ipv4-first-fragment-esp", e / IP(src=A4, dst=B4, proto=50, flags="MF") / Raw(p2),
         _expect("esp", p2, 4, A4B, B4B, flags=FRAGMENT, proto=50)),
        ("eth-ipv4-later-fragment", e / IP(src=A4, dst=B4, proto=50, frag=100) / Raw(p1),
         _expect("other", p1, 4, A4B, B4B, flags=FRAGMENT | LATER_FRAGMENT, proto=50)),
        ("eth-ipv4-last-far-fragment", e / v4(proto=50, frag=0x1000) / Raw(p1),
         _expect("other", p1, 4, A4B, B4B, flags=FRAGMENT | LATER_FRAGMENT, proto=50)),
        ("eth-ipv6-long-ext-esp",
         e / v6(nh=0) / IPv6ExtHdrHopByHop(nh=60, options=[PadN(optdata=bytes(10))])
         / IPv6ExtHdrDestOpt(nh=43, options=[PadN(optdata=bytes(18))])
         / IPv6ExtHdrRouting(nh=50, addresses=[A6, B6]) / Raw(p2),
         _expect("esp", p2, 6, A6B, B6B, flags=IPV6_EXTENSIONS, proto=50)),
        ("eth-vlan-padded-ipv4-esp",
         e / Dot1Q(vlan=9) / v4(proto=50) / Raw(p3) / Padding(bytes(14)),
         _expect("esp", p3, 4, A4B, B4B, flags=VLAN | LINK_PADDING, proto=50)),
        ("eth-ipv4-ah-esp",
         e / v4(proto=51) / Raw(bytes([50, 4, 0, 0]) + b"\x00\x00\x01\x00" + bytes(16) + p1),
         _expect("esp", p1, 4, A4B, B4B, flags=AH, proto=50)),
        ("eth-ipv4-esp-empty-body", e / IP(src=A4, dst=B4, proto=50) / Raw(p3),
         _expect("esp", p3, 4, A4B, B4B, proto=50)),
        ("eth-arp", e / ARP(psrc=A4, pdst=B4), None),
    ]
    return frames


def check_dissection(d: Dissection, data: bytes, exp: dict, config=DissectConfig()):
    assert d.problem is None, d.problem
    assert d.kind == exp["kind"]
    assert d.ip_version == exp["ver"]
    assert d.src == exp["src"] and d.dst == exp["dst"]
    assert d.sport == exp["sport"] and d.dport == exp["dport"]
    assert d.flags == exp["flags"], hex(d.flags)
    if exp["proto"] is not None:
        assert d.ip_proto == exp["proto"]
    got = data[d.payload_offset:d.payload_offset + d.payload_length]
    assert got == exp["payload"]


# --------------------------------------------------------------------------
# Classic pcap written by scapy


def test_pcap_ethernet_records_and_payloads(tmp_path):
    frames = ethernet_frames()
    pkts = []
    for i, (_name, pkt, _exp) in enumerate(frames):
        pkt.time = 1_700_000_000 + i + 0.25
        pkts.append(pkt)
    path = tmp_path / "eth.pcap"
    wrpcap(str(path), pkts)
    raw = path.read_bytes()
    recs, reader = records(path)
    assert reader.ok and reader.format == "pcap"
    assert len(recs) == len(frames)
    offset = 24
    for i, (rec, (name, pkt, exp)) in enumerate(zip(recs, frames)):
        wire = bytes(pkt)
        assert rec.packet_number == i + 1
        assert rec.file_offset == offset, name
        assert rec.data_offset == offset + 16
        assert raw[rec.data_offset:rec.data_offset + rec.captured_len] == wire
        assert rec.data == wire and rec.captured_len == rec.original_len == len(wire)
        assert rec.linktype == 1 and rec.flags == 0
        assert rec.timestamp_ns == (1_700_000_000 + i) * 10**9 + 250_000_000
        offset += 16 + len(wire)
        d = dissect(rec.linktype, rec.data)
        if exp is None:
            assert d.kind == "other" and d.ip_version == 0 and d.problem is None
        else:
            check_dissection(d, rec.data, exp)
    assert offset == len(raw)


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, endian, nano):
    path = tmp_path / "t.pcap"
    frames = [bytes(Ether(**MACS) / v4(proto=50) / Raw(esp_bytes(7, s))) for s in (1, 2, 3)]
    w = RawPcapWriter(str(path), linktype=1, endianness=endian, nano=nano)
    w.write_header(None)
    fracs = [0, 999_999_999 if nano else 999_999, 123_456_789 if nano else 123_456]
    for i, (f, frac) in enumerate(zip(frames, fracs)):
        w.write_packet(f, sec=1_600_000_000 + i, usec=frac)
    w.close()
    raw = path.read_bytes()
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    assert raw[:4] == struct.pack(endian + "I", magic)  # the writer did what we asked
    recs, reader = records(path)
    assert reader.ok
    assert [r.packet_number for r in recs] == [1, 2, 3]
    for i, (rec, f, frac) in enumerate(zip(recs, frames, fracs)):
        assert rec.data == f
        assert rec.timestamp_ns == (1_600_000_000 + i) * 10**9 + frac * (1 if nano else 1000)
        d = dissect(1, rec.data)
        assert d.kind == "esp" and rec.data[d.payload_offset:][:8] == struct.pack("!II", 7, i + 1)


def _write_linktype(path, linktype, frames):
    w = RawPcapWriter(str(path), linktype=linktype)
    w.write_header(None)
    for f in frames:
        w.write_packet(bytes(f), sec=1, usec=0)
    w.close()


def cooked_cases():
    p1, p2 = esp_bytes(0x51, 1), esp_bytes(0x52, 2)
    cases = [
        (113, CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6)
         / IP(src=A4, dst=B4, proto=50) / Raw(p1), _expect("esp", p1, 4, A4B, B4B, proto=50)),
        (113, CookedLinux() / IPv6(src=A6, dst=B6) / UDP(sport=4500, dport=4500) / Raw(p2),
         _expect("esp", p2, 6, A6B, B6B, 4500, 4500, proto=17)),
        (113, CookedLinux(proto=0x8100) / Dot1Q(vlan=3) / IP(src=A4, dst=B4, proto=50) / Raw(p1),
         _expect("esp", p1, 4, A4B, B4B, flags=VLAN, proto=50)),
    ]
    if CookedLinuxV2 is not None:
        cases += [
            (276, CookedLinuxV2(ifindex=3) / IP(src=A4, dst=B4, proto=50) / Raw(p2),
             _expect("esp", p2, 4, A4B, B4B, proto=50)),
            (276, CookedLinuxV2() / v6() / UDP(sport=9, dport=1000) / Raw(psp_bytes(1, 1)),
             _expect("psp", psp_bytes(1, 1), 6, A6B, B6B, 9, 1000, proto=17)),
        ]
    return cases


def raw_ip_cases():
    p1, p2 = esp_bytes(0x61, 1), esp_bytes(0x62, 2)
    return [
        (101, IP(src=A4, dst=B4, proto=50) / Raw(p1), _expect("esp", p1, 4, A4B, B4B, proto=50)),
        (101, IPv6(src=A6, dst=B6, nh=50) / Raw(p2), _expect("esp", p2, 6, A6B, B6B, proto=50)),
        (228, IP(src=A4, dst=B4) / UDP(sport=4500, dport=4500) / Raw(b"\xff"),
         _expect("other", b"\xff", 4, A4B, B4B, 4500, 4500, flags=NAT_KEEPALIVE, proto=17)),
        (229, IPv6(src=A6, dst=B6, nh=50) / Raw(p1), _expect("esp", p1, 6, A6B, B6B, proto=50)),
    ]


@pytest.mark.parametrize("case", range(len(cooked_cases()) + len(raw_ip_cases())))
def test_pcap_other_link_types(tmp_path, case):
    linktype, pkt, exp = (cooked_cases() + raw_ip_cases())[case]
    path = tmp_path / "l.pcap"
    _write_linktype(path, linktype, [pkt, pkt])
    recs, reader = records(path)
    assert reader.ok and len(recs) == 2
    for rec in recs:
        assert rec.linktype == linktype and rec.data == bytes(pkt)
        check_dissection(dissect(linktype, rec.data), rec.data, exp)


def test_eesp_on_configured_ports():
    e = Ether(**MACS) / IP(src=A4, dst=B4)
    eesp = eesp_bytes(0x99)
    esp = esp_bytes(0x0100, 1)
    dedicated = DissectConfig(eesp_udp_port=4501)
    shared = DissectConfig(eesp_udp_port=4500)

    def run(cfg, sport, dport, payload):
        data = bytes(e / UDP(sport=sport, dport=dport) / Raw(payload))
        d = dissect(1, data, cfg)
        assert data[d.payload_offset:d.payload_offset + d.payload_length] == payload
        return d.kind

    assert run(dedicated, 4501, 4501, eesp) == "eesp"
    assert run(dedicated, 30000, 4501, eesp) == "eesp"
    assert run(dedicated, 4501, 30000, eesp) == "eesp"       # NAT'd peer
    assert run(dedicated, 4500, 4500, esp) == "esp"
    assert run(DissectConfig(), 4501, 4501, eesp) == "other"  # not configured
    assert run(shared, 4500, 4500, eesp) == "eesp"            # first bit 1
    assert run(shared, 4500, 4500, esp) == "esp"              # first bit 0
    # keepalive and IKE marker are recognised on the EESP port too
    assert run(dedicated, 4501, 4501, b"\xff") == "other"
    assert run(dedicated, 4501, 4501, b"\x00" * 8) == "other"
    # EESP as its own IP protocol once a number is configured
    data = bytes(Ether(**MACS) / IP(src=A4, dst=B4, proto=253) / Raw(eesp))
    assert dissect(1, data).kind == "other"
    d = dissect(1, data, DissectConfig(eesp_ip_proto=253))
    assert d.kind == "eesp" and data[d.payload_offset:] == eesp


def test_psp_port_configurable_and_disabled():
    data = bytes(Ether(**MACS) / v4() / UDP(sport=7, dport=1000) / Raw(psp_bytes(1, 2)))
    assert dissect(1, data).kind == "psp"
    assert dissect(1, data, DissectConfig(psp_udp_port=None)).kind == "other"
    data = bytes(Ether(**MACS) / v4() / UDP(sport=7, dport=1001) / Raw(psp_bytes(1, 2)))
    assert dissect(1, data, DissectConfig(psp_udp_port=1001)).kind == "psp"


def test_ethernet_padding_is_not_payload():
    payload = esp_bytes(0x10, 1, 0)  # 8 bytes: IP packet 28 bytes, frame padded to 60
    wire = bytes(Ether(**MACS) / IP(src=A4, dst=B4, proto=50) / Raw(payload))
    padded = wire + b"\x00" * (60 - len(wire))
    d = dissect(1, padded)
    assert d.kind == "esp" and d.flags == LINK_PADDING
    assert padded[d.payload_offset:d.payload_offset + d.payload_length] == payload
    with_fcs = bytes(Ether(**MACS) / v6(nh=50) / Raw(payload)) + b"\xee\xee\xee\xee"
    d = dissect(1, with_fcs)
    assert d.kind == "esp" and d.flags & LINK_PADDING and d.payload_length == len(payload)


def test_dissect_config_validation():
    assert DissectConfig(esp_udp_ports=[4500, 4600]).esp_udp_ports == (4500, 4600)
    with pytest.raises(ValueError):
        DissectConfig(esp_udp_ports=(70000,))
    with pytest.raises(ValueError):
        DissectConfig(eesp_ip_proto=50)
    # config objects are frozen and usable as cache keys
    with pytest.raises(Exception):
        DissectConfig().psp_udp_port = 5
    assert make_dissector(1, DissectConfig()) is make_dissector(1, DissectConfig())


# --------------------------------------------------------------------------
# pcapng


@pytest.mark.skipif(PcapNgWriter is None, reason="scapy without PcapNgWriter")
def test_pcapng_scapy_multiple_interfaces(tmp_path):
    path = tmp_path / "multi.pcapng"
    items = []
    for i in range(6):
        if i % 2:
            pkt = CookedLinux() / IP(src=A4, dst=B4, proto=50) / Raw(esp_bytes(0x70, i))
            pkt.sniffed_on = "any"
            linktype = 113
        else:
            pkt = Ether(**MACS) / IPv6(src=A6, dst=B6, nh=50) / Raw(esp_bytes(0x71, i))
            pkt.sniffed_on = "eth0"
            linktype = 1
        pkt.time = 1_650_000_000 + i + 0.5
        items.append((pkt, linktype))
    w = PcapNgWriter(str(path))
    for pkt, _lt in items:
        w.write(pkt)
    w.close()
    raw = path.read_bytes()
    recs, reader = records(path)
    assert reader.ok and reader.format == "pcapng"
    assert len(recs) == len(items)
    last = -1
    for i, (rec, (pkt, linktype)) in enumerate(zip(recs, items)):
        assert rec.packet_number == i + 1
        assert rec.linktype == linktype
        assert rec.file_offset > last
        last = rec.file_offset
        assert raw[rec.file_offset:rec.file_offset + 4] == struct.pack("<I", 6)  # an EPB
        assert rec.data_offset == rec.file_offset + 28
        assert raw[rec.data_offset:rec.data_offset + rec.captured_len] == bytes(pkt)
        assert rec.timestamp_ns == (1_650_000_000 + i) * 10**9 + 500_000_000
        d = dissect(rec.linktype, rec.data)
        spi = 0x70 if i % 2 else 0x71
        assert d.kind == "esp" and rec.data[d.payload_offset:][:8] == struct.pack("!II", spi, i)


class NgBuilder:
    """Minimal pcapng writer for cases scapy cannot produce.  Remembers the
    offset of every packet block it writes."""

    def __init__(self):
        self.out = bytearray()
        self.e = "<"
        self.packet_offsets = []
        self.block_ends = []

    def block(self, btype, body, *, trailer=None, packet=False):
        body = bytes(body) + b"\x00" * (-len(body) % 4)
        total = 12 + len(body)
        if packet:
            self.packet_offsets.append(len(self.out))
        self.out += struct.pack(self.e + "II", btype, total) + body
        self.out += struct.pack(self.e + "I", total if trailer is None else trailer)
        self.block_ends.append(len(self.out))
        return self

    def shb(self, endian="<", major=1):
        self.e = endian
        return self.block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, major, 0, -1))

    def idb(self, linktype, snaplen=0, tsresol=None, tsoffset=None):
        opts = b""
        if tsresol is not None:
            opts += struct.pack(self.e + "HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3
        if tsoffset is not None:
            opts += struct.pack(self.e + "HHq", 14, 8, tsoffset)
        if opts:
            opts += struct.pack(self.e + "HH", 0, 0)
        return self.block(1, struct.pack(self.e + "HHI", linktype, 0, snaplen) + opts)

    def epb(self, ifid, ts, data, orig=None, cap=None):
        cap = len(data) if cap is None else cap
        orig = len(data) if orig is None else orig
        body = struct.pack(self.e + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, cap, orig) + data
        return self.block(6, body, packet=True)

    def spb(self, data, orig=None):
        orig = len(data) if orig is None else orig
        return self.block(3, struct.pack(self.e + "I", orig) + data, packet=True)

    def opb(self, ifid, ts, data):
        body = struct.pack(self.e + "HHIIII", ifid, 0, ts >> 32, ts & 0xFFFFFFFF,
                           len(data), len(data)) + data
        return self.block(2, body, packet=True)

    def bytes(self):
        return bytes(self.out)


def _esp_frame(seq, linktype=1, body_len=40):
    payload = esp_bytes(0x4242, seq, body_len)
    ip = IP(src=A4, dst=B4, proto=50) / Raw(payload)
    frame = {1: Ether(**MACS) / ip, 101: ip, 113: CookedLinux() / ip}[linktype]
    return bytes(frame), payload


def test_pcapng_sections_byte_orders_blocks_and_resolutions(tmp_path):
    b = NgBuilder()
    expected = []  # (linktype, frame, payload, timestamp_ns)
    b.shb("<").idb(1).idb(101, tsresol=9)
    f, p = _esp_frame(1)
    b.epb(0, 1_000_000 * 1_700_000_000 + 5, f)
    expected.append((1, f, p, 1_700_000_000 * 10**9 + 5000))
    f, p = _esp_frame(2, 101)
    b.epb(1, 1_700_000_000 * 10**9 + 7, f)
    expected.append((101, f, p, 1_700_000_000 * 10**9 + 7))
    b.block(0x0BAD, b"custom block the reader must skip")
    b.block(5, b"\x00" * 20)  # interface statistics: skipped
    # second section, big-endian, new interface numbering
    b.shb(">").idb(113, tsresol=0x80 | 20, tsoffset=100).idb(1, snaplen=1500)
    f, p = _esp_frame(3, 113)
    b.epb(0, 3 << 20, f)  # 3 seconds in units of 2**-20 s, plus 100 s offset
    expected.append((113, f, p, 103 * 10**9))
    f, p = _esp_frame(4, 113)
    b.spb(f)
    expected.append((113, f, p, 0))
    f, p = _esp_frame(5)
    b.opb(1, 42, f)
    expected.append((1, f, p, 42_000))
    data = b.bytes()
    path = tmp_path / "sections.pcapng"
    path.write_bytes(data)
    for source in (path, data):
        recs, reader = records(source)
        assert reader.ok, reader.findings
        assert len(recs) == len(expected)
        for i, (rec, (linktype, frame, payload, ts)) in enumerate(zip(recs, expected)):
            assert rec.packet_number == i + 1
            assert rec.file_offset == b.packet_offsets[i]
            assert rec.linktype == linktype and rec.data == frame
            assert rec.timestamp_ns == ts
            assert data[rec.data_offset:rec.data_offset + rec.captured_len] == frame
            d = dissect(rec.linktype, rec.data)
            assert d.kind == "esp"
            assert rec.data[d.payload_offset:d.payload_offset + d.payload_length] == payload


def test_pcapng_spb_is_limited_by_snaplen():
    b = NgBuilder().shb().idb(1, snaplen=60)
    frame, _payload = _esp_frame(1, body_len=200)
    b.spb(frame[:60], orig=len(frame))
    recs, reader = records(b.bytes())
    assert reader.ok
    (rec,) = recs
    assert rec.captured_len == 60 and rec.original_len == len(frame)
    assert rec.flags == SNAP_CUT and rec.data == frame[:60]
    # without a snap length the block must hold the whole packet
    b = NgBuilder().shb().idb(1)
    b.spb(frame[:62], orig=len(frame)).spb(frame)
    recs, reader = records(b.bytes())
    assert [(r.packet_number, r.data) for r in recs] == [(2, frame)]
    f = only(reader.findings)
    assert f.kind == "bad-block" and f.packet_number == 1 and not f.fatal


# --------------------------------------------------------------------------
# Bad input


def write_pcap(path, frames, snaplen=65535, linktype=1):
    w = RawPcapWriter(str(path), linktype=linktype, snaplen=snaplen)
    w.write_header(None)
    for i, f in enumerate(frames):
        w.write_packet(f, sec=10 + i, usec=0)
    w.close()
    return path.read_bytes()


def five_frames():
    return [_esp_frame(i + 1, body_len=20 + 10 * i)[0] for i in range(5)]


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def assert_one_line(finding: CaptureFinding):
    msg = finding.message
    assert "\n" not in msg
    assert f"file offset {finding.file_offset}" in msg
    assert f"packet {finding.packet_number}" in msg
    assert str(finding) == msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    recs, reader = records(path)
    assert recs == []
    f = only(reader.findings)
    assert f.kind == "empty-file" and f.fatal and f.packet_number == 1 and f.file_offset == 0
    assert_one_line(f)
    with pytest.raises(EmptyFile):
        records(path, STRICT)


@pytest.mark.parametrize("cut", [3, 10, 23])
def test_truncated_pcap_file_header(tmp_path, cut):
    data = write_pcap(tmp_path / "ok.pcap", five_frames())
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:cut])
    recs, reader = records(path)
    assert recs == []
    f = only(reader.findings)
    assert f.kind == "truncated-file" and f.fatal
    assert_one_line(f)
    with pytest.raises(TruncatedFile):
        records(path, STRICT)


@pytest.mark.parametrize("cut", [4, 12, 20])
def test_truncated_pcapng_section_header(tmp_path, cut):
    data = NgBuilder().shb().idb(1).epb(0, 0, _esp_frame(1)[0]).bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(data[:cut])
    recs, reader = records(path)
    assert recs == []
    f = only(reader.findings)
    assert f.kind == "truncated-file"
    assert_one_line(f)
    with pytest.raises(TruncatedFile):
        records(path, STRICT)


@pytest.mark.parametrize("garbage", [
    b"hello, this is not a capture file at all\n",
    bytes(range(256)),
    b"\xa1\xb2\xcd\x34" + bytes(40),  # 'modified pcap'
])
def test_garbage_is_bad_magic(tmp_path, garbage):
    path = tmp_path / "garbage.pcap"
    path.write_bytes(garbage)
    recs, reader = records(path)
    assert recs == []
    f = only(reader.findings)
    assert f.kind == "bad-magic" and f.fatal and f.file_offset == 0
    assert_one_line(f)
    with pytest.raises(BadMagic):
        records(path, STRICT)


def test_bad_pcapng_byte_order_magic():
    data = bytearray(NgBuilder().shb().idb(1).bytes())
    data[8:12] = b"\x01\x02\x03\x04"
    recs, reader = records(bytes(data))
    assert recs == [] and only(reader.findings).kind == "bad-magic"


def test_unsupported_versions(tmp_path):
    data = bytearray(write_pcap(tmp_path / "ok.pcap", five_frames()))
    data[4:6] = struct.pack("<H", 3)
    recs, reader = records(bytes(data))
    assert recs == [] and only(reader.findings).kind == "unsupported-version"
    ng = NgBuilder().shb(major=2).idb(1).bytes()
    with pytest.raises(UnsupportedVersion):
        records(ng, STRICT)


def _record_offsets(frames):
    offs, off = [], 24
    for f in frames:
        offs.append(off)
        off += 16 + len(f)
    return offs, off


@pytest.mark.parametrize("where", ["data", "header"])
def test_file_cut_inside_a_record(tmp_path, where):
    frames = five_frames()
    data = write_pcap(tmp_path / "ok.pcap", frames)
    offs, end = _record_offsets(frames)
    assert end == len(data)
    cut = offs[3] + (16 + 7 if where == "data" else 9)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:cut])
    recs, reader = records(path)
    assert [r.packet_number for r in recs] == [1, 2, 3]
    assert [r.data for r in recs] == frames[:3]
    f = only(reader.findings)
    assert f.kind == "truncated-record" and f.fatal
    assert f.packet_number == 4 and f.file_offset == offs[3]
    assert_one_line(f)
    assert ("data truncated" if where == "data" else "header truncated") in f.message
    assert reader.stopped_early
    with pytest.raises(TruncatedRecord) as info:
        records(path, STRICT)
    assert info.value.packet_number == 4 and info.value.file_offset == offs[3]


def test_pcapng_cut_inside_a_block(tmp_path):
    b = NgBuilder().shb().idb(1)
    frames = [_esp_frame(i)[0] for i in range(1, 5)]
    for i, f in enumerate(frames):
        b.epb(0, i, f)
    data = b.bytes()
    cut = b.packet_offsets[2] + 30
    recs, reader = records(data[:cut])
    assert [r.data for r in recs] == frames[:2]
    f = only(reader.findings)
    assert f.kind == "truncated-record" and f.packet_number == 3
    assert f.file_offset == b.packet_offsets[2]
    assert_one_line(f)


def test_snap_length_cut_records_are_flagged(tmp_path):
    path = tmp_path / "snap.pcap"
    full = [_esp_frame(i, body_len=300)[0] for i in range(1, 4)]
    w = RawPcapWriter(str(path), linktype=1, snaplen=96)
    w.write_header(None)
    for f in full:
        w.write_packet(f[:96], sec=1, usec=0, wirelen=len(f))
    w.close()
    recs, reader = records(path)
    assert reader.ok and reader.snap_cut == 3  # a property of the capture, not an error
    for rec, f in zip(recs, full):
        assert rec.flags == SNAP_CUT
        assert rec.captured_len == 96 and rec.original_len == len(f) and rec.data == f[:96]
        d = dissect(rec.linktype, rec.data, snap_cut=True)
        assert d.kind == "esp" and d.problem is None and d.flags & PAYLOAD_CUT
        assert d.payload_offset == 34 and d.payload_length == 96 - 34
        # without knowing about the snap cut it is a malformed frame
        bad = dissect(rec.linktype, rec.data)
        assert bad.problem and "exceeds the 82 bytes captured" in bad.problem
    # iter_dissected passes the record's flag on: no findings
    reader = CaptureReader(path)
    pairs = list(iter_dissected(reader))
    assert len(pairs) == 3 and reader.ok
    # on request the cut becomes a finding, or an exception in strict mode
    recs, reader = records(path, ReaderConfig(report_snap_cut=True))
    assert len(recs) == 3 and len(reader.findings) == 3
    assert all(f.kind == "snap-truncated" and not f.fatal for f in reader.findings)
    assert_one_line(reader.findings[0])
    with pytest.raises(SnapTruncated):
        records(path, ReaderConfig(report_snap_cut=True, strict=True))


def test_caplen_above_snaplen(tmp_path):
    frames = five_frames()
    path = tmp_path / "snaplen.pcap"
    write_pcap(path, frames, snaplen=40)  # the writer does not cut: records exceed 40
    recs, reader = records(path)
    assert [r.data for r in recs] == frames  # still yielded
    assert all(r.flags == CAPLEN_OVER_SNAPLEN for r in recs)
    assert len(reader.findings) == 5
    assert {f.kind for f in reader.findings} == {"caplen-exceeds-snaplen"}
    assert not any(f.fatal for f in reader.findings)
    assert [f.packet_number for f in reader.findings] == [1, 2, 3, 4, 5]
    with pytest.raises(SnaplenExceeded):
        records(path, STRICT)


def test_absurd_record_length(tmp_path):
    frames = five_frames()
    data = bytearray(write_pcap(tmp_path / "ok.pcap", frames))
    offs, _ = _record_offsets(frames)
    data[offs[2] + 8:offs[2] + 16] = struct.pack("<II", 0x7FFFFFF0, 0x7FFFFFF0)
    recs, reader = records(bytes(data))
    assert len(recs) == 2
    f = only(reader.findings)
    assert f.kind == "absurd-length" and f.packet_number == 3 and f.file_offset == offs[2]
    with pytest.raises(AbsurdLength):
        records(bytes(data), STRICT)


def test_unknown_link_type(tmp_path):
    path = tmp_path / "lt.pcap"
    write_pcap(path, five_frames(), linktype=147)
    # a generic reader yields the records; the dissector cannot use them
    recs, reader = records(path)
    assert len(recs) == 5 and reader.ok
    reader = CaptureReader(path)
    pairs = list(iter_dissected(reader))
    assert len(pairs) == 5
    assert all(d[0] == "other" and d[10] for _r, d in pairs)
    f = only(reader.findings)  # once, not five times
    assert f.kind == "unknown-linktype" and not f.fatal
    assert_one_line(f)
    # a reader told which link types are usable rejects the file up front
    cfg = ReaderConfig(linktypes=SUPPORTED_LINKTYPES)
    recs, reader = records(path, cfg)
    assert recs == []
    f = only(reader.findings)
    assert f.kind == "unknown-linktype" and "147" in f.message
    with pytest.raises(UnknownLinkType):
        records(path, ReaderConfig(linktypes=SUPPORTED_LINKTYPES, strict=True))
    with pytest.raises(UnknownLinkType):
        list(iter_dissected(CaptureReader(path, STRICT)))


def test_pcapng_unknown_link_type_skips_only_that_interface():
    b = NgBuilder().shb().idb(147).idb(1)
    f1, f2 = _esp_frame(1)[0], _esp_frame(2)[0]
    b.epb(0, 0, f1).epb(1, 0, f2)
    recs, reader = records(b.bytes(), ReaderConfig(linktypes=SUPPORTED_LINKTYPES))
    assert [(r.packet_number, r.data) for r in recs] == [(2, f2)]
    assert only(reader.findings).kind == "unknown-linktype"


def test_pcapng_bad_blocks():
    f1, f2 = _esp_frame(1)[0], _esp_frame(2)[0]
    # trailing length differs from the leading one: framing lost, stop
    b = NgBuilder().shb().idb(1).epb(0, 0, f1)
    b.block(6, struct.pack("<IIIII", 0, 0, 0, len(f2), len(f2)) + f2, trailer=4, packet=True)
    b.epb(0, 0, f1)
    recs, reader = records(b.bytes())
    assert len(recs) == 1
    f = only(reader.findings)
    assert f.kind == "bad-block" and f.fatal and f.packet_number == 2
    assert f.file_offset == b.packet_offsets[1]
    with pytest.raises(BadBlock):
        records(b.bytes(), STRICT)
    # packet block naming a missing interface: skipped, reading continues
    b = NgBuilder().shb().idb(1).epb(5, 0, f1).epb(0, 0, f2)
    recs, reader = records(b.bytes())
    assert [(r.packet_number, r.data) for r in recs] == [(2, f2)]
    f = only(reader.findings)
    assert f.kind == "unknown-interface" and not f.fatal and f.packet_number == 1
    with pytest.raises(UnknownInterface):
        records(b.bytes(), STRICT)
    # captured length larger than the block: that packet skipped
    b = NgBuilder().shb().idb(1).epb(0, 0, f1, cap=len(f1) + 100).epb(0, 0, f2)
    recs, reader = records(b.bytes())
    assert [(r.packet_number, r.data) for r in recs] == [(2, f2)]
    assert only(reader.findings).kind == "bad-block"
    # total length not a multiple of 4
    bad_len = NgBuilder().shb().idb(1).bytes() + struct.pack("<II", 6, 33) + bytes(40)
    recs, reader = records(bad_len)
    assert recs == [] and only(reader.findings).kind == "bad-block"


def test_malformed_frames_become_findings(tmp_path):
    good = _esp_frame(1)[0]
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x44
    long_total = bytearray(good)
    long_total[16:18] = struct.pack("!H", 1500)
    bad_version = bytearray(good)
    bad_version[14] = 0x55
    frames = [
        good,
        good[:10],                           # Ethernet header truncated
        good[:24],                           # IPv4 header truncated
        bytes(bad_ihl),                      # IHL 4
        bytes(long_total),                   # total length > captured
        bytes(bad_version),                  # version 5 behind ethertype IPv4
        bytes(Ether(**MACS) / v4() / UDP(sport=4500, dport=4500, len=400) / Raw(b"abcdefgh")),
        bytes(Ether(**MACS) / v6(nh=50, plen=0) / Raw(esp_bytes(1, 1))),
        good,
    ]
    path = tmp_path / "malformed.pcap"
    write_pcap(path, frames)
    reader = CaptureReader(path)
    pairs = list(iter_dissected(reader))
    assert len(pairs) == len(frames)
    assert [d[0] for _r, d in pairs] == ["esp"] + ["other"] * 7 + ["esp"]
    assert [f.packet_number for f in reader.findings] == [2, 3, 4, 5, 6, 7, 8]
    offs, _ = _record_offsets(frames)
    for f in reader.findings:
        assert f.kind == "malformed-frame" and not f.fatal
        assert f.file_offset == offs[f.packet_number - 1]
        assert_one_line(f)
    msgs = [f.message for f in reader.findings]
    assert "Ethernet header truncated: 10 of 14" in msgs[0]
    assert "IPv4 header truncated: 10 of 20" in msgs[1]
    assert "IHL 4" in msgs[2]
    assert "total length 1500 exceeds" in msgs[3]
    assert "IP version 5" in msgs[4]
    assert "UDP length 400" in msgs[5]
    assert "IPv6 payload length 0" in msgs[6]
    with pytest.raises(MalformedFrame) as info:
        list(iter_dissected(CaptureReader(path, STRICT)))
    assert info.value.packet_number == 2


def test_iter_records_callback_and_strict(tmp_path):
    frames = five_frames()
    data = write_pcap(tmp_path / "ok.pcap", frames)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-5])
    seen = []
    got = list(iter_records(path, seen.append))
    assert [r[7] for r in got] == frames[:4]
    assert all(type(r) is tuple and len(r) == len(Record._fields) for r in got)
    assert len(seen) == 1 and seen[0].kind == "truncated-record" and seen[0].packet_number == 5
    with pytest.raises(TruncatedRecord):
        list(iter_records(path))
    assert [r[7] for r in iter_records(tmp_path / "ok.pcap")] == frames


def test_reader_can_be_iterated_twice_and_findings_reset(tmp_path):
    frames = five_frames()
    data = write_pcap(tmp_path / "ok.pcap", frames)
    reader = CaptureReader(data[:-3])
    assert len(list(reader)) == 4 and len(reader.findings) == 1
    assert len(list(reader)) == 4 and len(reader.findings) == 1


def test_findings_are_capped():
    frames = [_esp_frame(i)[0] for i in range(30)]
    w = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 10, 1))
    for f in frames:
        w += struct.pack("<IIII", 0, 0, len(f), len(f)) + f
    recs, reader = records(bytes(w), ReaderConfig(max_findings=7))
    assert len(recs) == 30 and len(reader.findings) == 7 and reader.findings_dropped == 23
    assert not reader.ok


def test_exception_classes_share_one_base():
    for cls in (EmptyFile, TruncatedFile, BadMagic, UnsupportedVersion, TruncatedRecord,
                AbsurdLength, BadBlock, SnaplenExceeded, SnapTruncated, UnknownInterface,
                UnknownLinkType, MalformedFrame):
        assert issubclass(cls, CaptureError)
    kinds = {cls.kind for cls in (EmptyFile, TruncatedFile, BadMagic, UnsupportedVersion,
                                  TruncatedRecord, AbsurdLength, BadBlock, SnaplenExceeded,
                                  SnapTruncated, UnknownInterface, UnknownLinkType,
                                  MalformedFrame)}
    assert len(kinds) == 12


# --------------------------------------------------------------------------
# Robustness: nothing but records and findings, whatever the bytes


def _valid_pcap():
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    ends = [len(out)]
    for i, (_n, pkt, _e) in enumerate(ethernet_frames()[:8]):
        f = bytes(pkt)
        out += struct.pack("<IIII", i, 0, len(f), len(f)) + f
        ends.append(len(out))
    return bytes(out), ends


def _valid_pcapng():
    b = NgBuilder().shb().idb(1).idb(101, tsresol=6)
    for i, (_n, pkt, _e) in enumerate(ethernet_frames()[:4]):
        b.epb(0, i, bytes(pkt))
    b.spb(_esp_frame(9)[0])
    b.shb(">").idb(113).epb(0, 1, _esp_frame(3, 113)[0])
    return b.bytes(), b.block_ends


VALID_WITH_ENDS = {"pcap": _valid_pcap(), "pcapng": _valid_pcapng()}
VALID = {name: data for name, (data, _ends) in VALID_WITH_ENDS.items()}
REAL_FRAMES = [bytes(pkt) for _n, pkt, _e in ethernet_frames()]


def _consume(source, config=ReaderConfig()):
    """Read and dissect everything; check the invariants; return counts."""
    reader = CaptureReader(source, config)
    n = 0
    last = 0
    for rec in reader.tuples():
        assert type(rec) is tuple and len(rec) == 9
        number, off, data_off, linktype, _ts, cap, orig, data, flags = rec
        assert number > last
        last = number
        assert 0 <= off < data_off and len(data) == cap
        d = make_dissector(linktype)(data, flags & SNAP_CUT)
        assert type(d) is tuple and len(d) == 11 and d[0] in KINDS
        assert 0 <= d[5] and d[5] + d[6] <= len(data)
        n += 1
    for f in reader.findings:
        assert isinstance(f, CaptureFinding) and "\n" not in f.message
    fatal = [f for f in reader.findings if f.fatal]
    assert len(fatal) <= 1 and (not fatal or reader.findings[-1].fatal)
    return n, reader


def test_every_truncation_of_valid_captures(tmp_path):
    for name, (data, ends) in VALID_WITH_ENDS.items():
        full, reader = _consume(data)
        assert reader.ok and full > 0
        path = tmp_path / f"t.{name}"
        prev = 0
        for cut in range(len(data)):
            n, reader = _consume(data[:cut])
            if cut % 5 == 0 or cut in ends:  # every cut in memory, a fifth via a file
                path.write_bytes(data[:cut])
                n_file, reader_file = _consume(path)
                assert n_file == n and reader_file.findings == reader.findings
            assert prev <= n <= full
            prev = n
            if cut in ends:  # a cut between records leaves a valid, shorter capture
                assert reader.ok
            else:
                assert len(reader.findings) == 1 and reader.findings[0].fatal, cut


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(blob):
    for prefix in (b"", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a"):
        _consume(prefix + blob)
    try:
        list(CaptureReader(blob, STRICT).tuples())
    except CaptureError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VALID)), st.data())
def test_mutated_captures_never_raise(name, data):
    raw = bytearray(VALID[name])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _consume(bytes(raw[:cut]))
    try:
        for rec in CaptureReader(bytes(raw[:cut]), STRICT).tuples():
            make_dissector(rec[3])(rec[7], rec[8] & SNAP_CUT)
    except CaptureError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(SUPPORTED_LINKTYPES) + [0, 147]), st.binary(max_size=200),
       st.booleans(), st.sampled_from([DissectConfig(), DissectConfig(eesp_udp_port=4500),
                                       DissectConfig(eesp_udp_port=4501, eesp_ip_proto=253)]))
def test_dissector_never_raises(linktype, blob, cut, config):
    d = make_dissector(linktype, config)(blob, cut)
    assert type(d) is tuple and len(d) == 11 and d[0] in KINDS
    assert 0 <= d[5] and d[5] + d[6] <= len(blob)
    if cut:
        assert d[10] is None or "truncated" not in d[10]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 20), st.data())
def test_dissector_survives_mutated_real_frames(index, data):
    raw = bytearray(REAL_FRAMES[index % len(REAL_FRAMES)])
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for snap in (False, True):
        d = make_dissector(1)(bytes(raw[:cut]), snap)
        assert d[0] in KINDS and 0 <= d[5] and d[5] + d[6] <= cut
