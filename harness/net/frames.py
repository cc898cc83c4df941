"""Ethernet frames as the relay sees them: where the IP and UDP headers are, whether the
frame carries ESP, and the checksums that make a changed or built frame acceptable.

Theory of operation: ``layout(frame)`` finds the IP header (IPv4, or IPv6 with its
hop-by-hop, routing, destination-options and fragment headers walked), the transport
header and the end of the IP packet, or returns None for anything that is not IP (ARP).
``esp_offset(frame, lay, ...)`` says where ESP bytes start, or None: IP protocol 50 is
ESP; UDP to or from a NAT-traversal port (4500) is ESP when it carries at least 4 bytes
that are not the all-zero non-ESP marker (RFC 3948: those are IKE; a single 0xff byte is a
NAT keepalive); UDP to or from the EESP port, when one is configured, is EESP. A non-first
fragment has no transport header and is never ESP. ``replace_payload`` swaps the bytes
from an offset on and fixes every length and checksum in front of them (IPv4 header, UDP
or TCP; for IPv4 the UDP checksum may be zeroed instead, as RFC 768 allows, never for
IPv6). ``complete_checksum`` fills in a transport checksum the sender's kernel left to
offload (the frame arrived with ``TP_STATUS_CSUMNOTREADY``) and ``checksums_ok`` checks
them all, so the relay never forwards a broken frame without knowing. The arithmetic is
RFC 1071's, summed in native byte order and swapped once.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from dataclasses import dataclass

ETH_HLEN = 14
ETH_P_IPV4, ETH_P_IPV6 = 0x0800, 0x86DD
PROTO_TCP, PROTO_UDP, PROTO_ESP = 6, 17, 50
NAT_T_PORT = 4500
IKE_PORT = 500
_V6_EXT = {0, 43, 60}           # hop-by-hop, routing, destination options (8-octet units)
_LITTLE = sys.byteorder == "little"


@dataclass(frozen=True)
class Layout:
    """Where things are in one frame (offsets from the frame's first byte)."""
    version: int          # 4 or 6
    ip: int               # IP header
    proto: int            # the transport protocol (after IPv6 extension headers)
    l4: int               # transport header
    end: int              # end of the IP packet (Ethernet padding lies beyond)
    later_fragment: bool  # a non-first fragment: no transport header here


def layout(frame: bytes) -> Layout | None:
    if len(frame) < ETH_HLEN + 20:
        return None
    etype = (frame[12] << 8) | frame[13]
    ip = ETH_HLEN
    if etype == ETH_P_IPV4 and frame[ip] >> 4 == 4:
        ihl = (frame[ip] & 0x0F) * 4
        total = (frame[ip + 2] << 8) | frame[ip + 3]
        if ihl < 20 or total < ihl or ip + total > len(frame):
            return None
        frag = ((frame[ip + 6] << 8) | frame[ip + 7]) & 0x1FFF
        return Layout(4, ip, frame[ip + 9], ip + ihl, ip + total, frag != 0)
    if etype == ETH_P_IPV6 and len(frame) >= ip + 40 and frame[ip] >> 4 == 6:
        end = ip + 40 + ((frame[ip + 4] << 8) | frame[ip + 5])
        if end > len(frame):
            return None
        nh, at, later = frame[ip + 6], ip + 40, False
        while nh in _V6_EXT or nh == 44:
            if at + 8 > end:
                return None
            if nh == 44:
                later = later or (((frame[at + 2] << 8) | frame[at + 3]) & 0xFFF8) != 0
                nh, at = frame[at], at + 8
            else:
                nh, at = frame[at], at + 8 * (frame[at + 1] + 1)
        return Layout(6, ip, nh, at, end, later)
    return None


def udp_ports(frame: bytes, lay: Layout) -> tuple[int, int] | None:
    if lay.proto != PROTO_UDP or lay.later_fragment or lay.l4 + 8 > lay.end:
        return None
    return struct.unpack_from("!HH", frame, lay.l4)


def esp_offset(frame: bytes, lay: Layout, *, nat_ports: tuple[int, ...] = (NAT_T_PORT,),
               eesp_port: int | None = None) -> tuple[str, int] | None:
    """("esp", offset) for ESP, ("eesp", offset) for EESP, None for anything else."""
    if lay.later_fragment:
        return None
    if lay.proto == PROTO_ESP:
        return ("esp", lay.l4)
    ports = udp_ports(frame, lay)
    if ports is None:
        return None
    at = lay.l4 + 8
    if eesp_port is not None and eesp_port in ports:
        return ("eesp", at)
    if ports[0] in nat_ports or ports[1] in nat_ports:
        if lay.end - at >= 4 and frame[at:at + 4] != b"\0\0\0\0":
            return ("esp", at)
    return None


def _sum16(data) -> int:
    """The folded one's-complement sum of ``data`` as big-endian 16-bit words."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    s = sum(memoryview(data).cast("H"))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ((s & 0xFF) << 8) | (s >> 8) if _LITTLE else s


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ipv4_header_checksum(frame, lay: Layout) -> int:
    hdr = bytearray(frame[lay.ip:lay.l4])
    hdr[10:12] = b"\0\0"
    return (~_sum16(hdr)) & 0xFFFF


def _csum_at(lay: Layout) -> int | None:
    if lay.later_fragment:
        return None
    return {PROTO_UDP: lay.l4 + 6, PROTO_TCP: lay.l4 + 16}.get(lay.proto)


def l4_checksum(frame, lay: Layout) -> int:
    """The transport checksum the frame should carry (its own checksum field taken as 0)."""
    seg = bytearray(frame[lay.l4:lay.end])
    at = _csum_at(lay) - lay.l4
    seg[at:at + 2] = b"\0\0"
    n = len(seg)
    if lay.version == 4:
        pseudo = bytes(frame[lay.ip + 12:lay.ip + 20]) + struct.pack("!BBH", 0, lay.proto, n)
    else:
        pseudo = bytes(frame[lay.ip + 8:lay.ip + 40]) + struct.pack("!IxxxB", n, lay.proto)
    c = (~_fold(_sum16(pseudo) + _sum16(seg))) & 0xFFFF
    if lay.proto == PROTO_UDP and c == 0:
        c = 0xFFFF                                  # 0 means "no checksum" for UDP
    return c


def checksums_ok(frame, lay: Layout) -> bool:
    """The IPv4 header checksum and the UDP/TCP checksum (if any) are right."""
    if lay.version == 4 and struct.unpack_from("!H", frame, lay.ip + 10)[0] != \
            ipv4_header_checksum(frame, lay):
        return False
    at = _csum_at(lay)
    if at is None or at + 2 > lay.end:
        return True
    have = struct.unpack_from("!H", frame, at)[0]
    if lay.proto == PROTO_UDP and lay.version == 4 and have == 0:
        return True                                 # IPv4 UDP without a checksum
    return have == l4_checksum(frame, lay)


def complete_checksum(frame: bytes, lay: Layout) -> bytes:
    """The frame with its transport checksum (and IPv4 header checksum) filled in."""
    out = bytearray(frame)
    if lay.version == 4:
        struct.pack_into("!H", out, lay.ip + 10, ipv4_header_checksum(out, lay))
    at = _csum_at(lay)
    if at is not None and at + 2 <= lay.end:
        struct.pack_into("!H", out, at, l4_checksum(out, lay))
    return bytes(out)


def replace_payload(frame: bytes, lay: Layout, offset: int, payload: bytes, *,
                    zero_udp_checksum: bool = False) -> bytes:
    """``frame`` with everything from ``offset`` to the IP packet's end replaced by
    ``payload``; the IP and UDP lengths and every checksum fixed (Ethernet padding goes)."""
    out = bytearray(frame[:offset]) + payload
    ip_len = len(out) - lay.ip
    if lay.version == 4:
        struct.pack_into("!H", out, lay.ip + 2, ip_len)
    else:
        struct.pack_into("!H", out, lay.ip + 4, ip_len - 40)
    new = Layout(lay.version, lay.ip, lay.proto, lay.l4, len(out), lay.later_fragment)
    if lay.proto == PROTO_UDP and not lay.later_fragment:
        struct.pack_into("!H", out, lay.l4 + 4, len(out) - lay.l4)
    if lay.version == 4:
        struct.pack_into("!H", out, lay.ip + 10, ipv4_header_checksum(out, new))
    at = _csum_at(new)
    if at is not None:
        zero = zero_udp_checksum and lay.proto == PROTO_UDP and lay.version == 4
        struct.pack_into("!H", out, at, 0 if zero else l4_checksum(out, new))
    return bytes(out)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_packet(src: str, dst: str, protocol: int, payload: bytes, *, ttl: int = 64) -> bytes:
    """An IPv4 (header checksum filled in, DF set) or IPv6 packet carrying ``payload`` as
    protocol ``protocol``, as a TUN device or a tunnel's inner side carries it. The payload
    is left as it is (no transport checksum is touched)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version != d.version:
        raise ValueError(f"{src} and {dst} are of two IP versions")
    if s.version == 6:
        return struct.pack("!IHBB16s16s", 6 << 28, len(payload), protocol, ttl, s.packed,
                           d.packed) + payload
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, ttl,
                       protocol, 0, s.packed, d.packed)
    return head[:10] + struct.pack("!H", ~_sum16(head) & 0xFFFF) + head[12:] + payload


def ip_frame(src_mac: str, dst_mac: str, src: str, dst: str, protocol: int, payload: bytes,
             *, ttl: int = 64) -> bytes:
    """``ip_packet`` in an Ethernet frame (e.g. protocol 50, raw ESP), every length and
    checksum right: a UDP or TCP payload gets its transport checksum too."""
    packet = ip_packet(src, dst, protocol, payload, ttl=ttl)
    etype = ETH_P_IPV6 if packet[0] >> 4 == 6 else ETH_P_IPV4
    frame = mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", etype) + packet
    lay = layout(frame)
    return complete_checksum(frame, lay) if lay is not None else frame


def udp_frame(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int,
              payload: bytes, *, ttl: int = 64) -> bytes:
    """An Ethernet/IPv4 or IPv6/UDP frame with every length and checksum right."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ip_frame(src_mac, dst_mac, src, dst, PROTO_UDP, udp, ttl=ttl)
