"""Link-layer, IP and UDP dissection down to the ESP, EESP or PSP bytes.

Theory of operation
-------------------
Given a record's link type and captured bytes, this module finds where the
IPsec payload starts and how long it is, and nothing beyond that: it does not
parse SPIs, sequence numbers or ICVs, verify checksums, reassemble fragments
or decrypt.  Reading capture files lives in ``pcapfile.py``.

Supported link types: Ethernet (1, with any number of 802.1Q / 802.1ad
tags), Linux cooked capture v1 (113) and v2 (276), raw IP (101) and raw
IPv4 / IPv6 (228 / 229).  IPv4 options are skipped through the IHL; IPv6
hop-by-hop, routing, destination-options and fragment headers are walked, as
is an AH header in front of the payload.  Fragments are flagged; a non-first
fragment has no transport header, so it is never classified as IPsec.

Classification (first match wins):

* IP protocol 50 is ESP; ``DissectConfig.eesp_ip_proto`` (the number is not
  yet assigned) is EESP.
* UDP whose destination port is a NAT-traversal port (``esp_udp_ports`` or
  ``eesp_udp_port``), else whose destination port is ``psp_udp_port`` (PSP),
  else whose source port is a NAT-traversal port.  On a NAT-traversal port a
  single 0xff byte is a NAT-keepalive and four zero bytes are the non-ESP
  marker in front of IKE (RFC 3948); both are ``other`` with a flag.  The
  rest is EESP when it arrives on the EESP port and either the port is not
  shared with ESP or the first payload bit is 1 (an ESP SPI has its top bit
  0 on a shared port); otherwise ESP.
* Everything else is ``other``.

A dissector returns a plain tuple in :class:`Dissection` field order (the hot
path cannot afford to build named tuples); :func:`dissect` wraps it in a
:class:`Dissection`.  Dissectors never raise on any input: a malformed frame
is reported through the ``problem`` string (kind ``other``), and
:func:`iter_dissected` turns those into :class:`MalformedFrame` findings on
the reader.  When a record was cut by the snap length, data missing at the
end is not a problem: the frame is flagged ``PAYLOAD_CUT`` instead and
whatever part of the payload was captured is located.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Optional

from .pcapfile import SNAP_CUT, CaptureError, CaptureReader, UnknownLinkType

__all__ = [
    "AH",
    "DissectConfig",
    "Dissection",
    "FRAGMENT",
    "IPV4_OPTIONS",
    "IPV6_EXTENSIONS",
    "LATER_FRAGMENT",
    "LINK_PADDING",
    "MalformedFrame",
    "NAT_KEEPALIVE",
    "NON_ESP_MARKER",
    "PAYLOAD_CUT",
    "SUPPORTED_LINKTYPES",
    "VLAN",
    "dissect",
    "iter_dissected",
    "make_dissector",
]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES = frozenset({
    LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4,
    LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2,
})

KINDS = ("esp", "eesp", "psp", "other")

# --------------------------------------------------------------------------
# Dissection flags (bit mask in Dissection.flags)

VLAN = 0x001             #: one or more 802.1Q / 802.1ad tags were skipped
IPV4_OPTIONS = 0x002     #: the IPv4 header carries options (IHL > 5)
IPV6_EXTENSIONS = 0x004  #: IPv6 extension headers were walked
FRAGMENT = 0x008         #: the IP packet is a fragment (payload incomplete)
LATER_FRAGMENT = 0x010   #: a non-first fragment: no transport header here
NON_ESP_MARKER = 0x020   #: four zero bytes on a NAT-T port: IKE, not IPsec
NAT_KEEPALIVE = 0x040    #: single 0xff byte on a NAT-T port
PAYLOAD_CUT = 0x080      #: the IP packet extends past the captured bytes
LINK_PADDING = 0x100     #: bytes after the IP packet (Ethernet padding, FCS)
AH = 0x200               #: an AH header was skipped


class MalformedFrame(CaptureError):
    """A frame whose headers cannot be walked (truncated, inconsistent)."""

    kind = "malformed-frame"
    fatal = False


class Dissection(NamedTuple):
    """Where a frame's IPsec payload is.  Dissectors return plain tuples in
    this field order."""

    kind: str                 #: "esp", "eesp", "psp" or "other"
    ip_version: int           #: 4 or 6; 0 when no IP header was reached
    src: bytes                #: source address (4 or 16 bytes; b"" if none)
    dst: bytes                #: destination address
    ip_proto: int             #: protocol after IP/extension/AH headers; -1 if none
    payload_offset: int       #: offset in the frame of the ESP/EESP/PSP header
    payload_length: int       #: its length up to the end of the IP/UDP packet
    sport: Optional[int]      #: UDP source port, None when not UDP
    dport: Optional[int]      #: UDP destination port
    flags: int                #: VLAN | FRAGMENT | ... (see module constants)
    problem: Optional[str]    #: why the frame is malformed, else None


@dataclass(frozen=True)
class DissectConfig:
    """Which ports and protocol numbers carry which protocol.

    esp_udp_ports: UDP ports carrying ESP-in-UDP (RFC 3948).
    eesp_udp_port: UDP port carrying EESP-in-UDP, or None; may be one of
        ``esp_udp_ports`` (then the first payload bit tells them apart).
    psp_udp_port: UDP destination port carrying PSP, or None.
    eesp_ip_proto: IP protocol number for EESP, or None (not yet assigned).
    """

    esp_udp_ports: tuple = (4500,)
    eesp_udp_port: Optional[int] = None
    psp_udp_port: Optional[int] = 1000
    eesp_ip_proto: Optional[int] = None

    def __post_init__(self) -> None:
        ports = tuple(int(p) for p in self.esp_udp_ports)
        object.__setattr__(self, "esp_udp_ports", ports)
        for p in ports + tuple(x for x in (self.eesp_udp_port, self.psp_udp_port)
                               if x is not None):
            if not 0 < p < 65536:
                raise ValueError(f"UDP port {p} out of range")
        if self.eesp_ip_proto is not None and not (0 <= self.eesp_ip_proto < 256
                                                   and self.eesp_ip_proto != 50):
            raise ValueError(f"EESP IP protocol {self.eesp_ip_proto} is not usable")


DEFAULT_DISSECT = DissectConfig()

_ETH_IP4 = struct.Struct("!12xHBxHxxHxB2x4s4s")  # ethertype + IPv4 header fields
_IP4 = struct.Struct("!BxHxxHxB2x4s4s")  # ver/ihl, total, frag, proto, src, dst
_IP6 = struct.Struct("!IHBx16s16s")      # ver/tc/flow, payload len, next hdr, src, dst
_UDP = struct.Struct("!HHH")             # sport, dport, length
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
_IPV6_EXT = frozenset({0, 43, 44, 60})   # hop-by-hop, routing, fragment, dest opts
_NON_ESP_MARKER = b"\x00\x00\x00\x00"

Dissector = Callable[..., tuple]


def _build(linktype: int, cfg: DissectConfig) -> Dissector:
    """Make the dissector for one link type and configuration."""
    esp_ports = frozenset(cfg.esp_udp_ports)
    eesp_port = cfg.eesp_udp_port if cfg.eesp_udp_port is not None else -1
    eesp_shared = eesp_port in esp_ports
    nat_ports = esp_ports | ({eesp_port} if eesp_port >= 0 else set())
    psp_port = cfg.psp_udp_port if cfg.psp_udp_port is not None else -1
    eesp_proto = cfg.eesp_ip_proto if cfg.eesp_ip_proto is not None else -1
    ip4_unpack = _IP4.unpack_from
    ip6_unpack = _IP6.unpack_from
    udp_unpack = _UDP.unpack_from

    def short(what, have, need, ver, src, dst, proto, flags, cut):
        if cut:
            return ("other", ver, src, dst, proto, 0, 0, None, None,
                    flags | PAYLOAD_CUT, None)
        return ("other", ver, src, dst, proto, 0, 0, None, None, flags,
                f"{what} truncated: {have} of {need} bytes captured")

    def bad(why, ver, src, dst, proto, flags):
        return ("other", ver, src, dst, proto, 0, 0, None, None, flags, why)

    def udp(data, off, end, ver, src, dst, flags, cut):
        if end - off < 8:
            return short("UDP header", end - off, 8, ver, src, dst, 17, flags, cut)
        sport, dport, ulen = udp_unpack(data, off)
        if not flags & FRAGMENT:
            if ulen < 8:
                return bad(f"UDP length {ulen} is below 8", ver, src, dst, 17, flags)
            if ulen <= end - off:
                end = off + ulen
            elif not flags & PAYLOAD_CUT:
                return bad(f"UDP length {ulen} exceeds the {end - off} bytes of IP payload",
                           ver, src, dst, 17, flags)
        p = off + 8
        plen = end - p
        if dport in nat_ports:
            port = dport
        elif dport == psp_port:
            return ("psp", ver, src, dst, 17, p, plen, sport, dport, flags, None)
        elif sport in nat_ports:
            port = sport
        else:
            return ("other", ver, src, dst, 17, p, plen, sport, dport, flags, None)
        if plen >= 4:
            first = data[p]
            if first == 0 and data[p:p + 4] == _NON_ESP_MARKER:
                return ("other", ver, src, dst, 17, p, plen, sport, dport,
                        flags | NON_ESP_MARKER, None)
        elif plen == 0:
            return ("other", ver, src, dst, 17, p, 0, sport, dport, flags, None)
        else:
            first = data[p]
            if plen == 1 and first == 0xFF:
                return ("other", ver, src, dst, 17, p, 1, sport, dport,
                        flags | NAT_KEEPALIVE, None)
        if port == eesp_port and (first & 0x80 or not eesp_shared):
            return ("eesp", ver, src, dst, 17, p, plen, sport, dport, flags, None)
        return ("esp", ver, src, dst, 17, p, plen, sport, dport, flags, None)

    def transport(data, off, end, proto, ver, src, dst, flags, cut):
        while proto == 51:  # AH: next header, payload length in 4-octet units minus 2
            if end - off < 8:
                return short("AH header", end - off, 8, ver, src, dst, 51, flags, cut)
            alen = (data[off + 1] + 2) * 4
            if end - off < alen:
                return short("AH header", end - off, alen, ver, src, dst, 51, flags, cut)
            flags |= AH
            proto = data[off]
            off += alen
        if proto == 50:
            return ("esp", ver, src, dst, 50, off, end - off, None, None, flags, None)
        if proto == 17:
            return udp(data, off, end, ver, src, dst, flags, cut)
        if proto == eesp_proto:
            return ("eesp", ver, src, dst, proto, off, end - off, None, None, flags, None)
        return ("other", ver, src, dst, proto, off, end - off, None, None, flags, None)

    def ipv4(data, off, flags, cut):
        n = len(data)
        have = n - off
        if have < 20:
            return short("IPv4 header", have, 20, 0, b"", b"", -1, flags, cut)
        vihl, tot, frag, proto, src, dst = ip4_unpack(data, off)
        if vihl >> 4 != 4:
            return bad(f"IP version {vihl >> 4} where IPv4 was expected",
                       0, b"", b"", -1, flags)
        ihl = (vihl & 15) * 4
        if ihl < 20:
            return bad(f"IPv4 header length {ihl} (IHL {vihl & 15}) is below 20",
                       4, src, dst, proto, flags)
        if ihl > 20:
            flags |= IPV4_OPTIONS
            if have < ihl:
                return short("IPv4 header with options", have, ihl, 4, src, dst,
                             proto, flags, cut)
        if tot < ihl:
            return bad(f"IPv4 total length {tot} is below its header length {ihl}",
                       4, src, dst, proto, flags)
        if tot > have:
            if not cut:
                return bad(f"IPv4 total length {tot} exceeds the {have} bytes captured",
                           4, src, dst, proto, flags)
            flags |= PAYLOAD_CUT
            end = n
        else:
            end = off + tot
            if tot < have:
                flags |= LINK_PADDING
        if frag & 0x3FFF:  # MF or a fragment offset
            flags |= FRAGMENT
            if frag & 0x1FFF:
                return ("other", 4, src, dst, proto, off + ihl, end - off - ihl,
                        None, None, flags | LATER_FRAGMENT, None)
        return transport(data, off + ihl, end, proto, 4, src, dst, flags, cut)

    def ipv6(data, off, flags, cut):
        n = len(data)
        have = n - off
        if have < 40:
            return short("IPv6 header", have, 40, 0, b"", b"", -1, flags, cut)
        vtf, plen, nh, src, dst = ip6_unpack(data, off)
        if vtf >> 28 != 6:
            return bad(f"IP version {vtf >> 28} where IPv6 was expected",
                       0, b"", b"", -1, flags)
        if plen == 0 and nh != 59:
            return bad("IPv6 payload length 0 (jumbograms are not supported)",
                       6, src, dst, nh, flags)
        if 40 + plen > have:
            if not cut:
                return bad(f"IPv6 packet length {40 + plen} exceeds the {have} bytes captured",
                           6, src, dst, nh, flags)
            flags |= PAYLOAD_CUT
            end = n
        else:
            end = off + 40 + plen
            if 40 + plen < have:
                flags |= LINK_PADDING
        p = off + 40
        while nh in _IPV6_EXT:
            flags |= IPV6_EXTENSIONS
            if end - p < 8:
                return short(f"IPv6 extension header {nh}", end - p, 8, 6, src, dst,
                             nh, flags, cut)
            if nh == 44:
                fo = (data[p + 2] << 8) | data[p + 3]
                nh = data[p]
                if fo & 0xFFF9:  # offset or M bit; else an atomic fragment
                    flags |= FRAGMENT
                    if fo & 0xFFF8:
                        return ("other", 6, src, dst, nh, p + 8, end - p - 8,
                                None, None, flags | LATER_FRAGMENT, None)
                p += 8
            else:
                hlen = (data[p + 1] + 1) * 8
                if end - p < hlen:
                    return short(f"IPv6 extension header {nh}", end - p, hlen, 6,
                                 src, dst, nh, flags, cut)
                nh = data[p]
                p += hlen
        return transport(data, p, end, nh, 6, src, dst, flags, cut)

    def by_ethertype(data, off, et, flags, cut):
        while et in _VLAN_TPIDS:
            flags |= VLAN
            if len(data) - off < 4:
                return short("802.1Q tag", len(data) - off, 4, 0, b"", b"", -1, flags, cut)
            et = (data[off + 2] << 8) | data[off + 3]
            off += 4
        if et == 0x0800:
            return ipv4(data, off, flags, cut)
        if et == 0x86DD:
            return ipv6(data, off, flags, cut)
        return ("other", 0, b"", b"", -1, off, len(data) - off, None, None, flags, None)

    eth_ip4_unpack = _ETH_IP4.unpack_from

    def ethernet(data, cut=False):
        have = len(data) - 14
        if have >= 20:
            # Fast path: untagged IPv4 without options, not fragmented, and
            # wholly captured.
            et, vihl, tot, frag, proto, src, dst = eth_ip4_unpack(data, 0)
            if et == 0x0800 and vihl == 0x45 and not frag & 0x3FFF:
                if 20 <= tot <= have:
                    if proto == 50:
                        return ("esp", 4, src, dst, 50, 34, tot - 20, None, None,
                                0 if tot == have else LINK_PADDING, None)
                    return transport(data, 34, 14 + tot, proto, 4, src, dst,
                                     0 if tot == have else LINK_PADDING, cut)
        if len(data) < 14:
            return short("Ethernet header", len(data), 14, 0, b"", b"", -1, 0, cut)
        return by_ethertype(data, 14, (data[12] << 8) | data[13], 0, cut)

    def linux_sll(data, cut=False):
        if len(data) < 16:
            return short("Linux cooked header", len(data), 16, 0, b"", b"", -1, 0, cut)
        return by_ethertype(data, 16, (data[14] << 8) | data[15], 0, cut)

    def linux_sll2(data, cut=False):
        if len(data) < 20:
            return short("Linux cooked v2 header", len(data), 20, 0, b"", b"", -1, 0, cut)
        return by_ethertype(data, 20, (data[0] << 8) | data[1], 0, cut)

    def raw_ip(data, cut=False):
        if not data:
            return short("IP header", 0, 20, 0, b"", b"", -1, 0, cut)
        version = data[0] >> 4
        if version == 4:
            return ipv4(data, 0, 0, cut)
        if version == 6:
            return ipv6(data, 0, 0, cut)
        return bad(f"raw IP packet with IP version {version}", 0, b"", b"", -1, 0)

    def raw_ipv4(data, cut=False):
        return ipv4(data, 0, 0, cut)

    def raw_ipv6(data, cut=False):
        return ipv6(data, 0, 0, cut)

    def unsupported(data, cut=False):
        return ("other", 0, b"", b"", -1, 0, len(data), None, None, 0,
                f"link type {linktype} is not supported")

    return {
        LINKTYPE_ETHERNET: ethernet,
        LINKTYPE_LINUX_SLL: linux_sll,
        LINKTYPE_LINUX_SLL2: linux_sll2,
        LINKTYPE_RAW: raw_ip,
        LINKTYPE_IPV4: raw_ipv4,
        LINKTYPE_IPV6: raw_ipv6,
    }.get(linktype, unsupported)


_CACHE: dict = {}


def make_dissector(linktype: int, config: DissectConfig = DEFAULT_DISSECT) -> Dissector:
    """Return ``f(data, snap_cut=False) -> tuple`` for one link type.

    The tuple has :class:`Dissection`'s fields in order.  ``snap_cut`` says
    the record was cut by the snap length (``Record.flags & SNAP_CUT``).
    """
    key = (linktype, config)
    fn = _CACHE.get(key)
    if fn is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        fn = _CACHE[key] = _build(linktype, config)
    return fn


def dissect(linktype: int, data: bytes, config: DissectConfig = DEFAULT_DISSECT,
            snap_cut: bool = False) -> Dissection:
    """Dissect one frame (convenience form of :func:`make_dissector`)."""
    return Dissection._make(make_dissector(linktype, config)(data, snap_cut))


def iter_dissected(reader: CaptureReader,
                   config: DissectConfig = DEFAULT_DISSECT) -> Iterator[tuple]:
    """Yield ``(record, dissection)`` plain-tuple pairs for every record.

    Malformed frames are reported on ``reader`` as :class:`MalformedFrame`
    (raised in strict mode); a link type this module cannot dissect is
    reported once as a non-fatal :class:`UnknownLinkType`.  Records are
    yielded either way, so packet numbering stays complete.
    """
    reported: set = set()
    last_linktype = None
    fn = None
    snap_cut = SNAP_CUT
    for rec in reader.tuples():
        linktype = rec[3]
        if linktype != last_linktype:
            fn = make_dissector(linktype, config)
            last_linktype = linktype
        d = fn(rec[7], rec[8] & snap_cut)
        if d[10] is not None:
            if linktype not in SUPPORTED_LINKTYPES:
                if linktype not in reported:
                    reported.add(linktype)
                    reader.report(UnknownLinkType(
                        f"link type {linktype} is not supported; its frames are not dissected",
                        file_offset=rec[1], packet_number=rec[0], fatal=False))
            else:
                reader.report(MalformedFrame(d[10], file_offset=rec[1],
                                             packet_number=rec[0]))
        yield rec, d
