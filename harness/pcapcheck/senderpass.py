"""One pass over a sender capture: every IPsec packet to the ``SaCheck`` of its SPI.

Theory of operation
-------------------
``run_pass(PassSpec)`` reads the capture once with espspec's own reader
(``harness.capture``: mmap + struct records, link/IP/UDP dissection), finds each ESP,
EESP or PSP packet's SA through the SPI tables of ``dispatch`` and feeds it to that SA's
``SaCheck``; it returns a ``PassResult`` (the sink's state, per-SA statistics, counts of
records, the packets each key protected) that can cross a process boundary. A pass may
own only some SAs and sub-SAs (``PassSpec.owned``, planned by ``jobs``): packets of the
others are recognised and skipped. Only the primary pass reports what concerns the
capture as a whole -- problems of the file (truncated, unknown link type, malformed
frames) and unknown SPIs -- so that several workers do not report them several times.
Problems of the capture are findings with their file offset and packet number, never
exceptions. An unknown SPI is tried against the known SAs' keys (an SPI or sub-SA ID
written in the wrong place is SUBSA-ID-LOCATION); only the first ``unknown_spis``
distinct ones are reported, the rest counted.

Speed: frames that are Ethernet + IPv4 without options or fragmentation + protocol 50
with nothing after the IP packet (``ETH_IP4_FIELDS``) skip the general dissector --
exactly the frames ``frames.ethernet`` classifies as ESP at offset 34, which the tests
check -- and go straight to the feed of their SPI; ``frames.make_dissector`` handles
everything else. What a ``SaCheck`` does with a packet is ``sacheck``'s.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from ..capture import (PAYLOAD_CUT, SNAP_CUT, SUPPORTED_LINKTYPES, CaptureReader,
                       DissectConfig, MalformedFrame, ReaderConfig, UnknownLinkType,
                       make_dissector)
from .config import CheckConfig
from .dispatch import SPI_FIELD, by_address, spi_tables
from .keys import SaKey
from .limits import key_usage
from .report import FindingSink, report_capture_findings
from .sacheck import PassContext, SaCheck

__all__ = ["ETH_IP4_FIELDS", "PassResult", "PassSpec", "run_pass"]

#: ethertype, IPv4 version/IHL, total length, flags/fragment offset, protocol of a frame
ETH_IP4_FIELDS = struct.Struct("!12xHBxHxxHxB")


@dataclass
class PassSpec:
    """What one pass (one process) checks."""
    source: object
    sas: list
    dissect: DissectConfig
    config: CheckConfig
    owned: dict              # SA index -> frozenset of sub-SAs, or None for all
    primary: bool            # report capture problems and unknown SPIs


@dataclass
class PassResult:
    sink_state: tuple
    stats: dict              # SA index -> SaStats
    records: int = 0
    ipsec: int = 0
    other: int = 0
    unknown_spi: int = 0
    snap_cut: int = 0
    key_usage: dict = field(default_factory=dict)   # key_id -> packets sent (lower bound)
    elapsed: float = 0.0


class _Skip:
    """The handler of an SA another worker checks."""

    __slots__ = ("sa",)

    def __init__(self, sa: SaKey) -> None:
        self.sa = sa

    @staticmethod
    def feed(*args) -> None:
        return None

    @staticmethod
    def cut(*args) -> None:
        return None


def run_pass(spec: PassSpec) -> PassResult:
    t0 = time.perf_counter()
    sink = FindingSink(spec.config.max_per_requirement)
    ctx = PassContext(spec.source, sink, spec.config)
    spaces: dict = {}
    checks: dict[int, SaCheck] = {}
    handlers: list = []
    for i, sa in enumerate(spec.sas):
        if i not in spec.owned:          # another worker's: known, but not checked here
            handlers.append((sa, _Skip(sa)))
            continue
        c = checks[i] = SaCheck(sa, ctx, spec.owned[i], spaces)
        for s in range(c.n):
            if c.owned is None or s in c.owned:
                c.sub_info(s)
        handlers.append((sa, c))
    # one handler per SPI; a list where addresses must decide
    tables = spi_tables(handlers)
    res = PassResult((), {})
    reader = CaptureReader(spec.source, ReaderConfig(linktypes=SUPPORTED_LINKTYPES))
    unknown: dict = {}
    diag: list = []
    u32 = SPI_FIELD.unpack_from
    eth_ip4 = ETH_IP4_FIELDS.unpack_from
    esp_t, eesp_t, psp_t = tables["esp"], tables["eesp"], tables["psp"]
    # SPI -> feed function, for the SPIs that need no address to find their SA
    skip = _Skip.feed
    esp_feed = {spi: (skip if h.__class__ is _Skip else h.feed) for spi, h in esp_t.items()
                if h.__class__ is not list}
    primary = spec.primary
    dissect = spec.dissect
    ipsec = other = unknown_n = snap = 0
    last_linktype = None
    fn = None
    reported_linktypes: set = set()
    try:
        for rec in reader.tuples():
            n, foff, dpos, linktype, _ts, caplen, _orig, data, _flags = rec
            # the dominant frame shape, without the general dissector: Ethernet, IPv4
            # without options, not a fragment, protocol 50, nothing after the IP packet
            # (exactly the frames frames.ethernet classifies as ESP at offset 34)
            if linktype == 1 and caplen >= 42:
                ethertype, vihl, total, frag, proto = eth_ip4(data, 0)
                if ethertype == 0x0800 and vihl == 0x45 and proto == 50 and \
                        not frag & 0x3FFF and total + 14 == caplen and total >= 28:
                    feed = esp_feed.get(u32(data, 34)[0])
                    if feed is not None:
                        ipsec += 1
                        if feed is not skip:
                            feed(n, foff, dpos, data, 34, total - 20)
                        continue
            if linktype != last_linktype:
                fn = make_dissector(linktype, dissect)
                last_linktype = linktype
            d = fn(data, rec[8] & SNAP_CUT)
            if d[10] is not None and primary:      # as iter_dissected reports them
                if linktype not in SUPPORTED_LINKTYPES:
                    if linktype not in reported_linktypes:
                        reported_linktypes.add(linktype)
                        reader.report(UnknownLinkType(
                            f"link type {linktype} is not supported; its frames are not "
                            f"dissected", file_offset=rec[1], packet_number=rec[0],
                            fatal=False))
                else:
                    reader.report(MalformedFrame(d[10], file_offset=rec[1],
                                                 packet_number=rec[0]))
            kind = d[0]
            if kind == "other":
                other += 1
                continue
            ipsec += 1
            off = d[5]
            ln = d[6]
            cut = d[9] & PAYLOAD_CUT
            if cut:
                snap += 1
            if kind == "esp":
                table = esp_t
                at = off
            else:
                table = eesp_t if kind == "eesp" else psp_t
                at = off + 4
            if at + 4 > off + ln:
                if primary:
                    sink.info("no-spi", rec[0], rec[1], None, None,
                              f"{kind.upper()} payload of {ln} bytes is too short to carry an "
                              f"SPI")
                continue
            spi = u32(data, at)[0]
            h = table.get(spi)
            if h.__class__ is list:
                h = by_address(h, d[2], d[3])
            if h is None:
                unknown_n += 1
                if primary:
                    _unknown_spi(sink, unknown, spec, kind, spi, rec, data[off:off + ln],
                                 diag, ctx, cut)
                continue
            if cut:
                h.cut(rec[0], rec[1], ln, spi)
                continue
            h.feed(rec[0], rec[1], rec[2], data, off, ln)
    finally:
        ctx.close()
    res.records = reader.packets_seen
    res.ipsec, res.other, res.unknown_spi, res.snap_cut = ipsec, other, unknown_n, snap
    if primary:
        report_capture_findings(reader, sink, "sender")
    for i, c in checks.items():
        res.stats[i] = c.stats()
        key_usage(c, res.key_usage)
    res.sink_state = sink.state()
    res.elapsed = time.perf_counter() - t0
    return res


def _unknown_spi(sink, unknown, spec, kind, spi, rec, pkt, diag, ctx, cut) -> None:
    key = (kind, spi)
    seen = unknown.get(key)
    if seen is not None:
        unknown[key] = seen + 1
        return
    if len(unknown) >= spec.config.unknown_spis:
        return
    unknown[key] = 1
    if cut:
        sink.info("unknown-spi", rec[0], rec[1], spi, None,
                  f"{kind.upper()} packet with SPI {spi:#010x}, which no SA in the key file "
                  f"has; cut by the snap length")
        return
    # does a known SA's key open it? (an SPI or sub-SA ID written in the wrong place)
    if not diag:
        diag.extend(SaCheck(sa, ctx, None, {}) for sa in spec.sas)
    for c in diag:
        if c.kind != kind or c.n == 1:
            continue
        j = c.authenticates_as(pkt)
        if j is not None:
            sink.check("SUBSA-ID-LOCATION", rec[0], rec[1], spi, j,
                       f"unknown SPI {spi:#010x}, but the packet is protected as sub-SA {j} of "
                       f"{c.sa.label()}: the sub-SA ID is not where the profile puts it")
            return
    sink.info("unknown-spi", rec[0], rec[1], spi, None,
              f"{kind.upper()} packet with SPI {spi:#010x}, which no SA in the key file has "
              f"(later packets with it are counted only)")
