"""Writing classic pcap files fast: struct-built records and outer headers.

Theory of operation: ``pcap_bytes`` is a small capture in memory (evidence of a failing
case); ``PcapWriter`` appends records (16-byte header + frame) to a list and
writes them in large chunks. ``FrameBuilder`` wraps an (E)ESP/PSP packet in Ethernet, an
IPv4 or IPv6 header and, for ESP-in-UDP, EESP and PSP, a UDP header. Outer IPv4 headers
differ only in their total length, so the header (with its checksum) is cached per length;
UDP over IPv6 gets a real checksum (zero is not allowed there), computed with
``array``'s C loop. Nothing here knows IPsec: callers hand in finished packets.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from array import array

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_USER0 = 147

_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_ETH_MAC = bytes.fromhex("020000000002" "020000000001")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4_header(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int = 0,
                ttl: int = 64) -> bytes:
    head = _IP4.pack(0x45, 0, 20 + payload_len, ident, 0x4000, ttl, proto, 0, src, dst)
    return head[:10] + checksum(head).to_bytes(2, "big") + head[12:]


def pcap_bytes(frames, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> bytes:
    """A whole classic pcap in memory from ``(time, frame)`` pairs (seconds as floats, e.g.
    ``time.monotonic()``), in time order (a stable sort: frames of one time keep theirs);
    frames above ``snaplen`` are cut, their original length recorded."""
    out = [_FILE_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for at, frame in sorted(frames, key=lambda f: f[0]):
        micros = max(0, round(at * 1_000_000))
        n = min(len(frame), snaplen)
        out.append(_RECORD.pack(micros // 1_000_000, micros % 1_000_000, n, len(frame)))
        out.append(bytes(frame[:n]))
    return b"".join(out)


class PcapWriter:
    """A classic pcap (microsecond timestamps, little-endian) being written."""

    def __init__(self, path, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144,
                 start_s: int = 1_700_000_000) -> None:
        self.path = path
        self._f = open(path, "wb")
        self._f.write(_FILE_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        self._chunk: list[bytes] = []
        self._start = start_s
        self.records = 0
        self.bytes = 24

    def write(self, frame: bytes, orig_len: int | None = None) -> int:
        """Append one record; return its file offset. ``orig_len`` > len(frame) makes a
        record cut by the snap length."""
        i = self.records
        n = len(frame)
        off = self.bytes
        self._chunk.append(_RECORD.pack(self._start + i // 1_000_000, i % 1_000_000, n,
                                        n if orig_len is None else orig_len))
        self._chunk.append(frame)
        self.records = i + 1
        self.bytes = off + 16 + n
        if len(self._chunk) >= 8192:
            self._f.write(b"".join(self._chunk))
            self._chunk.clear()
        return off

    def close(self) -> None:
        if self._f is not None:
            self._f.write(b"".join(self._chunk))
            self._chunk.clear()
            self._f.close()
            self._f = None

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FrameBuilder:
    """Ethernet + IP (+ UDP) around packets of one flow."""

    def __init__(self, src: str, dst: str, proto: int, sport: int = 0,
                 dport: int = 0) -> None:
        self.src = ipaddress.ip_address(src).packed
        self.dst = ipaddress.ip_address(dst).packed
        if len(self.src) != len(self.dst):
            raise ValueError("source and destination must be of one IP version")
        self.v6 = len(self.src) == 16
        self.proto = proto            # 50 (ESP) or 17 (UDP)
        self.sport, self.dport = sport, dport
        self.eth = _ETH_MAC + (b"\x86\xdd" if self.v6 else b"\x08\x00")
        self._v4: dict[int, bytes] = {}

    def frame(self, payload: bytes) -> bytes:
        if self.proto == 17:
            ulen = 8 + len(payload)
            if self.v6:
                pseudo = self.src + self.dst + struct.pack("!IxxxB", ulen, 17)
                csum = checksum(pseudo + _UDP.pack(self.sport, self.dport, ulen, 0) + payload)
                payload = _UDP.pack(self.sport, self.dport, ulen, csum or 0xFFFF) + payload
            else:
                payload = _UDP.pack(self.sport, self.dport, ulen, 0) + payload
        n = len(payload)
        if self.v6:
            return self.eth + _IP6.pack(6 << 28, n, self.proto, 64, self.src, self.dst) + payload
        head = self._v4.get(n)
        if head is None:
            head = self._v4[n] = self.eth + ipv4_header(self.src, self.dst, self.proto, n)
        return head + payload
