"""Fast capture reading for espspec.

Theory of operation
-------------------
Two layers, each usable alone:

* ``pcapfile`` walks a pcap or pcapng file (mmap + precompiled structs) and
  yields packet records; problems in the file become ``CaptureFinding``
  entries (or, in strict mode, ``CaptureError`` exceptions).
* ``frames`` dissects one record's bytes through the link layer, IP and UDP
  and says where the ESP, EESP or PSP payload is.

Checking the IPsec payload itself (SPIs, sequence numbers, ICVs) is left to
the code built on top of this package, e.g. ``espspec check-pcap``.

Typical hot loop::

    reader = CaptureReader(path)
    for rec, d in iter_dissected(reader, DissectConfig(eesp_udp_port=4501)):
        ...
    for finding in reader.findings:
        print(finding)
"""

from .frames import (
    AH,
    FRAGMENT,
    IPV4_OPTIONS,
    IPV6_EXTENSIONS,
    LATER_FRAGMENT,
    LINK_PADDING,
    NAT_KEEPALIVE,
    NON_ESP_MARKER,
    PAYLOAD_CUT,
    SUPPORTED_LINKTYPES,
    VLAN,
    DissectConfig,
    Dissection,
    MalformedFrame,
    dissect,
    iter_dissected,
    make_dissector,
)
from .pcapfile import (
    CAPLEN_OVER_ORIGLEN,
    CAPLEN_OVER_SNAPLEN,
    SNAP_CUT,
    AbsurdLength,
    BadBlock,
    BadMagic,
    CaptureError,
    CaptureFinding,
    CaptureReader,
    EmptyFile,
    InconsistentLengths,
    ReaderConfig,
    Record,
    SnaplenExceeded,
    SnapTruncated,
    TruncatedFile,
    TruncatedRecord,
    UnknownInterface,
    UnknownLinkType,
    UnsupportedVersion,
    iter_records,
)

__all__ = [
    "AH", "FRAGMENT", "IPV4_OPTIONS", "IPV6_EXTENSIONS", "LATER_FRAGMENT",
    "LINK_PADDING", "NAT_KEEPALIVE", "NON_ESP_MARKER", "PAYLOAD_CUT",
    "SUPPORTED_LINKTYPES", "VLAN", "DissectConfig", "Dissection", "MalformedFrame",
    "dissect", "iter_dissected", "make_dissector",
    "CAPLEN_OVER_ORIGLEN", "CAPLEN_OVER_SNAPLEN", "SNAP_CUT", "AbsurdLength",
    "BadBlock", "BadMagic", "CaptureError", "CaptureFinding", "CaptureReader",
    "EmptyFile", "InconsistentLengths", "ReaderConfig", "Record", "SnaplenExceeded",
    "SnapTruncated", "TruncatedFile", "TruncatedRecord", "UnknownInterface",
    "UnknownLinkType", "UnsupportedVersion", "iter_records",
]
