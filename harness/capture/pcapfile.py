"""Record reader for classic pcap and pcapng capture files.

Theory of operation
-------------------
This module turns a capture file into a stream of packet records and nothing
more: it knows file formats, not protocols (link-layer and IP dissection live in
``frames.py``).  The file is mapped with ``mmap`` and walked with precompiled
``struct.Struct`` objects; no per-packet object survives the iteration step, so
memory stays flat however large the capture is.

Each record is a plain tuple laid out as :class:`Record` (``CaptureReader``
yields :class:`Record` named tuples; ``CaptureReader.tuples()`` yields the
same fields as plain tuples, which is several times cheaper to build and is
what hot loops should use).  ``data`` is a ``bytes`` copy of the captured
bytes, so a caller may keep it after the file is closed.

Every way in which the input can be wrong has its own exception class derived
from :class:`CaptureError`.  The reader never lets one escape in its default
(lenient) mode: each becomes a :class:`CaptureFinding` in ``reader.findings``.
A *fatal* finding means the framing of the file is lost, so reading stops
there; every record read before it has already been yielded.  A non-fatal
finding (for example a captured length above the snap length) leaves the
framing intact and reading goes on.  In strict mode (``ReaderConfig(strict=
True)``) the first problem is raised as its exception instead.

A record cut by the capture's snap length (captured_len < original_len) is
not an error of the file: it is yielded with the ``SNAP_CUT`` flag set, and
only reported as a :class:`SnapTruncated` finding when the configuration asks
for it.

What does not live here: decoding of link layers, IP, UDP or IPsec; reading
compressed captures; writing captures.  Errors of the operating system (a
missing file, no permission) are not capture errors and propagate as
``OSError``.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, replace
from typing import Callable, Iterator, NamedTuple, Optional, Union

__all__ = [
    "AbsurdLength",
    "BadBlock",
    "BadMagic",
    "CaptureError",
    "CaptureFinding",
    "CaptureReader",
    "CAPLEN_OVER_ORIGLEN",
    "CAPLEN_OVER_SNAPLEN",
    "EmptyFile",
    "InconsistentLengths",
    "ReaderConfig",
    "Record",
    "SNAP_CUT",
    "SnaplenExceeded",
    "SnapTruncated",
    "TruncatedFile",
    "TruncatedRecord",
    "UnknownInterface",
    "UnknownLinkType",
    "UnsupportedVersion",
    "iter_records",
]

# --------------------------------------------------------------------------
# Record flags (bit mask in Record.flags)

SNAP_CUT = 0x1             #: captured_len < original_len: cut by the snap length
CAPLEN_OVER_SNAPLEN = 0x2  #: captured_len > the snap length the file declares
CAPLEN_OVER_ORIGLEN = 0x4  #: captured_len > original_len (inconsistent record)


class Record(NamedTuple):
    """One packet record.  ``CaptureReader.tuples()`` yields the same layout
    as plain tuples."""

    packet_number: int   #: 1-based, counts every packet record in the file
    file_offset: int     #: offset of the record (or pcapng block) header
    data_offset: int     #: offset of the first captured byte in the file
    linktype: int        #: LINKTYPE_* value of the record's interface
    timestamp_ns: int    #: capture time in ns since the epoch (0: pcapng SPB has none)
    captured_len: int    #: bytes present in the file (== len(data))
    original_len: int    #: length of the packet on the wire
    data: bytes          #: the captured bytes
    flags: int           #: SNAP_CUT | CAPLEN_OVER_SNAPLEN | CAPLEN_OVER_ORIGLEN


# --------------------------------------------------------------------------
# Errors and findings


class CaptureError(Exception):
    """Base class: the capture file (or a frame in it) is not as it should be.

    ``str(err)`` is a single line naming the file offset and the 1-based packet
    number.  ``fatal`` tells whether reading had to stop there.
    """

    kind = "capture-error"
    fatal = True

    def __init__(
        self,
        what: str,
        *,
        file_offset: int,
        packet_number: int,
        in_packet: bool = True,
        fatal: Optional[bool] = None,
    ) -> None:
        self.what = what
        self.file_offset = file_offset
        self.packet_number = packet_number
        if fatal is not None:
            self.fatal = fatal
        where = "packet" if in_packet else "before packet"
        super().__init__(f"file offset {file_offset}, {where} {packet_number}: {what}")


class EmptyFile(CaptureError):
    """The file has no bytes at all."""

    kind = "empty-file"


class TruncatedFile(CaptureError):
    """The file ends inside its file header (pcap header or first pcapng SHB)."""

    kind = "truncated-file"


class BadMagic(CaptureError):
    """The file does not start with a pcap or pcapng magic number (or a pcapng
    section has an invalid byte-order magic)."""

    kind = "bad-magic"


class UnsupportedVersion(CaptureError):
    """A pcap or pcapng major version this reader does not understand."""

    kind = "unsupported-version"


class TruncatedRecord(CaptureError):
    """The file ends inside a record header, record data or pcapng block."""

    kind = "truncated-record"


class AbsurdLength(CaptureError):
    """A record or block length larger than any sane capture would hold."""

    kind = "absurd-length"


class BadBlock(CaptureError):
    """A pcapng block whose internal lengths are inconsistent."""

    kind = "bad-block"


class SnaplenExceeded(CaptureError):
    """captured_len is larger than the snap length declared for the interface."""

    kind = "caplen-exceeds-snaplen"
    fatal = False


class InconsistentLengths(CaptureError):
    """captured_len is larger than original_len."""

    kind = "caplen-exceeds-origlen"
    fatal = False


class SnapTruncated(CaptureError):
    """A record was cut by the snap length (reported only on request)."""

    kind = "snap-truncated"
    fatal = False


class UnknownInterface(CaptureError):
    """A pcapng packet block names an interface no IDB has described."""

    kind = "unknown-interface"
    fatal = False


class UnknownLinkType(CaptureError):
    """A link type outside the set the caller can dissect."""

    kind = "unknown-linktype"


class CaptureFinding(NamedTuple):
    """A problem found in the input, recorded instead of raised."""

    kind: str
    packet_number: int
    file_offset: int
    message: str
    fatal: bool

    @classmethod
    def from_error(cls, err: CaptureError) -> "CaptureFinding":
        return cls(err.kind, err.packet_number, err.file_offset, str(err), err.fatal)

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ReaderConfig:
    """How the reader treats questionable input.

    strict: raise the first problem as its CaptureError subclass instead of
        recording a finding.
    max_record_len: captured lengths above this are treated as corruption
        (262144 is the largest snap length libpcap and Wireshark use).
    max_block_len: pcapng blocks above this are treated as corruption.
    report_snap_cut: also record a SnapTruncated finding for every record cut
        by the snap length (records are flagged SNAP_CUT either way).
    linktypes: if not None, the link types the caller can use; a file or
        interface with another link type gets an UnknownLinkType finding and
        its records are not yielded.
    max_findings: non-fatal findings kept per iteration; later ones are only
        counted in ``CaptureReader.findings_dropped`` (a fatal one is always
        kept).
    """

    strict: bool = False
    max_record_len: int = 262144
    max_block_len: int = 16 * 1024 * 1024
    report_snap_cut: bool = False
    linktypes: Optional[frozenset] = None
    max_findings: int = 1000

    def __post_init__(self) -> None:
        if self.linktypes is not None and not isinstance(self.linktypes, frozenset):
            object.__setattr__(self, "linktypes", frozenset(self.linktypes))
        if self.max_record_len <= 0 or self.max_block_len <= 0 or self.max_findings < 0:
            raise ValueError("ReaderConfig limits must be positive")


DEFAULT_CONFIG = ReaderConfig()

# --------------------------------------------------------------------------
# Formats

_PCAP_HEADER_LEN = 24
_PCAP_RECORD_LEN = 16

_MAGIC_USEC = 0xA1B2C3D4
_MAGIC_NSEC = 0xA1B23C4D
_MAGIC_MODIFIED = 0xA1B2CD34
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D

_BLOCK_IDB = 1
_BLOCK_OPB = 2
_BLOCK_SPB = 3
_BLOCK_EPB = 6

_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14

_NS_PER_S = 1_000_000_000


class _Formats:
    """Precompiled structs for one byte order."""

    def __init__(self, e: str) -> None:
        self.pcap_header = struct.Struct(e + "IHHiIII")
        self.pcap_record = struct.Struct(e + "IIII")
        self.u16 = struct.Struct(e + "H")
        self.u32 = struct.Struct(e + "I")
        self.i64 = struct.Struct(e + "q")
        self.block_head = struct.Struct(e + "II")
        # type, total length, then the fixed EPB fields (interface, ts high,
        # ts low, captured length, original length)
        self.epb = struct.Struct(e + "IIIIIII")
        self.opb = struct.Struct(e + "IIHHIIII")
        self.spb = struct.Struct(e + "III")
        self.shb = struct.Struct(e + "IIIHH")
        self.idb = struct.Struct(e + "IIHHI")
        self.opt = struct.Struct(e + "HH")


_LE = _Formats("<")
_BE = _Formats(">")

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


_WINDOW = 16 * 1024 * 1024


def _page_releaser(buf) -> Callable[[int], None]:
    """Return ``release(upto)`` dropping mapped pages before ``upto``.

    Only for an mmap (a no-op for bytes).  The pages stay in the page cache;
    the records already yielded hold copies, so nothing refers to them.
    """
    advise = getattr(buf, "madvise", None)
    dontneed = getattr(mmap, "MADV_DONTNEED", None)
    if advise is None or dontneed is None:
        return lambda upto: None
    page = mmap.PAGESIZE
    done = [0]

    def release(upto: int) -> None:
        upto -= upto % page
        if upto > done[0]:
            try:
                advise(dontneed, done[0], upto - done[0])
            except (OSError, ValueError):
                pass
            done[0] = upto

    return release


class _Stop(Exception):
    """Internal: a fatal problem was recorded, leave the walk."""


class _Interface:
    __slots__ = ("linktype", "snaplen", "ts_mul", "ts_div", "ts_add", "usable")

    def __init__(self, linktype: int, snaplen: int, usable: bool) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.ts_mul = 1000  # default resolution: microseconds
        self.ts_div = 1
        self.ts_add = 0
        self.usable = usable


# --------------------------------------------------------------------------
# Reader


class CaptureReader:
    """Iterate over the packet records of one pcap or pcapng capture.

    ``source`` is a path or the capture's bytes.  Iterating the reader yields
    :class:`Record` named tuples; :meth:`tuples` yields the same fields as
    plain tuples (faster).  After (or during) an iteration, ``findings`` holds
    the problems met so far; each new iteration starts afresh.
    """

    def __init__(self, source: Source, config: ReaderConfig = DEFAULT_CONFIG) -> None:
        self.source = source
        self.config = config
        self.findings: list[CaptureFinding] = []
        self.findings_dropped = 0
        self.format: Optional[str] = None  # "pcap", "pcapng" or None
        self.packets_seen = 0   # packet records met, yielded or not
        self.snap_cut = 0       # records flagged SNAP_CUT
        self.stopped_early = False

    # -- public ---------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        return map(Record._make, self.tuples())

    def tuples(self) -> Iterator[tuple]:
        """Yield records as plain tuples in :class:`Record` field order."""
        self.findings = []
        self.findings_dropped = 0
        self.format = None
        self.packets_seen = 0
        self.snap_cut = 0
        self.stopped_early = False
        return self._walk()

    def report(self, err: CaptureError) -> None:
        """Record ``err`` as a finding, or raise it in strict mode."""
        if self.config.strict:
            raise err
        if err.fatal:
            self.stopped_early = True
        if len(self.findings) < self.config.max_findings or err.fatal:
            self.findings.append(CaptureFinding.from_error(err))
        else:
            self.findings_dropped += 1

    @property
    def ok(self) -> bool:
        """True when no finding at all was recorded."""
        return not self.findings and not self.findings_dropped

    # -- internals ------------------------------------------------------

    def _fail(self, err: CaptureError) -> None:
        """Report a fatal problem and leave the walk."""
        self.report(err)
        raise _Stop

    def _open(self):
        """Return (buffer, cleanup) for the source."""
        src = self.source
        if isinstance(src, (bytes, bytearray, memoryview)):
            return bytes(src), lambda: None
        fobj = open(src, "rb")
        try:
            if os.fstat(fobj.fileno()).st_size == 0:
                return b"", fobj.close
            mm = mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ)
        except BaseException:
            fobj.close()
            raise

        def cleanup() -> None:
            mm.close()
            fobj.close()

        return mm, cleanup

    def _walk(self) -> Iterator[tuple]:
        # The classic pcap loop lives here rather than in a helper generator:
        # every generator level a record passes through costs measurable time.
        buf, cleanup = self._open()
        try:
            size = len(buf)
            fmt, nano = self._sniff(buf, size)
            if fmt is None:
                self.format = "pcapng"
                yield from self._pcapng(buf, size)
                return
            self.format = "pcap"
            linktype, snaplen, ts_mul, fast_limit = self._pcap_header(buf, size, fmt, nano)
            unpack = fmt.pcap_record.unpack_from
            ns_per_s = _NS_PER_S
            off = _PCAP_HEADER_LEN
            n = 0
            stop = size - _PCAP_RECORD_LEN
            # The file is walked in windows; after each, the pages behind us
            # are dropped from the mapping so the resident set stays flat.
            release = _page_releaser(buf)
            try:
                while True:
                    limit = min(stop, off + _WINDOW)
                    while off <= limit:
                        sec, frac, cap, orig = unpack(buf, off)
                        body = off + 16  # _PCAP_RECORD_LEN
                        end = body + cap
                        if cap == orig and cap <= fast_limit and end <= size:
                            n += 1
                            yield (n, off, body, linktype, sec * ns_per_s + frac * ts_mul,
                                   cap, orig, buf[body:end], 0)
                            off = end
                            continue
                        # slow path: something about this record is unusual
                        flags = self._check_lengths(n + 1, off, cap, orig, snaplen,
                                                    size - body, "record")
                        n += 1
                        yield (n, off, body, linktype, sec * _NS_PER_S + frac * ts_mul,
                               cap, orig, buf[body:end], flags)
                        off = end
                    if off > stop:
                        break
                    release(off)
            finally:
                self.packets_seen = n
            if off != size:
                self._fail(TruncatedRecord(
                    f"record header truncated: {size - off} of {_PCAP_RECORD_LEN} "
                    f"bytes present", file_offset=off, packet_number=n + 1))
        except _Stop:
            return
        finally:
            cleanup()

    def _sniff(self, buf, size: int):
        """Return (formats, nano) for classic pcap, (None, False) for pcapng."""
        if size == 0:
            self._fail(EmptyFile("file is empty (0 bytes)", file_offset=0,
                                 packet_number=1, in_packet=False))
        if size < 4:
            self._fail(TruncatedFile(
                f"file is only {size} bytes long, too short for any capture file header",
                file_offset=0, packet_number=1, in_packet=False))
        magic_le = _LE.u32.unpack_from(buf, 0)[0]
        magic_be = _BE.u32.unpack_from(buf, 0)[0]
        if magic_le == _PCAPNG_SHB:
            return None, False
        for fmt, magic in ((_LE, magic_le), (_BE, magic_be)):
            if magic in (_MAGIC_USEC, _MAGIC_NSEC):
                return fmt, magic == _MAGIC_NSEC
            if magic == _MAGIC_MODIFIED:
                self._fail(BadMagic(
                    "magic 0x%08x is the 'modified pcap' variant, which is not supported"
                    % magic, file_offset=0, packet_number=1, in_packet=False))
        self._fail(BadMagic(
            "no pcap or pcapng magic number: file starts with %s" % bytes(buf[:4]).hex(),
            file_offset=0, packet_number=1, in_packet=False))

    # -- classic pcap ---------------------------------------------------

    def _pcap_header(self, buf, size: int, fmt: _Formats, nano: bool):
        """Check the pcap file header; return (linktype, snaplen, ts_mul,
        fast_limit)."""
        cfg = self.config
        if size < _PCAP_HEADER_LEN:
            self._fail(TruncatedFile(
                f"pcap file header truncated: {size} of {_PCAP_HEADER_LEN} bytes present",
                file_offset=0, packet_number=1, in_packet=False))
        _magic, major, minor, _zone, _sigfigs, snaplen, network = \
            fmt.pcap_header.unpack_from(buf, 0)
        if major != 2:
            self._fail(UnsupportedVersion(
                f"pcap version {major}.{minor} is not supported (expected 2.x)",
                file_offset=4, packet_number=1, in_packet=False))
        linktype = network & 0xFFFF  # upper bits carry FCS information
        if cfg.linktypes is not None and linktype not in cfg.linktypes:
            self._fail(UnknownLinkType(
                f"link type {linktype} is not one of the supported link types "
                f"{sorted(cfg.linktypes)}", file_offset=20, packet_number=1,
                in_packet=False))
        max_len = cfg.max_record_len
        # Records with captured_len == original_len <= fast_limit that fit in
        # the file take the fast path.
        fast_limit = min(snaplen, max_len) if snaplen else max_len
        return linktype, snaplen, (1 if nano else 1000), fast_limit

    def _check_lengths(self, number: int, off: int, cap: int, orig: int,
                       snaplen: int, room: int, what: str,
                       framed: bool = False) -> int:
        """Judge an unusual record's lengths; return its flags or stop.

        ``room`` is how many bytes the record's data may occupy: the rest of
        the file (classic pcap) or of the block (pcapng, ``framed=True``).
        In a framed block a bad length spoils only this record, so the
        problem is non-fatal and -1 is returned to mean "skip it".
        """
        cfg = self.config
        if cap > cfg.max_record_len:
            err = AbsurdLength(
                f"{what} captured length {cap} is beyond the {cfg.max_record_len}-byte limit",
                file_offset=off, packet_number=number, fatal=not framed)
            if framed:
                self.report(err)
                return -1
            self._fail(err)
        if cap > room:
            if framed:
                self.report(BadBlock(
                    f"{what} captured length {cap} does not fit in its block "
                    f"({room} bytes of room)", file_offset=off,
                    packet_number=number, fatal=False))
                return -1
            self._fail(TruncatedRecord(
                f"{what} data truncated: {room} of {cap} bytes present",
                file_offset=off, packet_number=number))
        flags = 0
        if snaplen and cap > snaplen:
            flags |= CAPLEN_OVER_SNAPLEN
            self.report(SnaplenExceeded(
                f"{what} captured length {cap} exceeds the snap length {snaplen}",
                file_offset=off, packet_number=number))
        if cap < orig:
            flags |= SNAP_CUT
            self.snap_cut += 1
            if cfg.report_snap_cut:
                self.report(SnapTruncated(
                    f"{what} cut by the snap length: {cap} of {orig} bytes captured",
                    file_offset=off, packet_number=number))
        elif cap > orig:
            flags |= CAPLEN_OVER_ORIGLEN
            self.report(InconsistentLengths(
                f"{what} captured length {cap} exceeds its original length {orig}",
                file_offset=off, packet_number=number))
        return flags

    # -- pcapng ---------------------------------------------------------

    def _pcapng(self, buf, size: int) -> Iterator[tuple]:
        cfg = self.config
        fmt = _LE
        interfaces: list[_Interface] = []
        n = 0
        off = 0
        max_block = cfg.max_block_len
        release = _page_releaser(buf)
        next_release = _WINDOW
        try:
            while off < size:
                if off >= next_release:
                    release(off)
                    next_release = off + _WINDOW
                left = size - off
                if left < 12:
                    self._truncated_block(off, n, left, 12, "block header")
                btype, blen = fmt.block_head.unpack_from(buf, off)
                if btype == _PCAPNG_SHB:
                    fmt = self._section_order(buf, off, n)
                    blen = fmt.u32.unpack_from(buf, off + 4)[0]
                    interfaces = []
                is_packet = btype in (_BLOCK_EPB, _BLOCK_SPB, _BLOCK_OPB)
                number = n + 1
                if blen < 12 or blen % 4:
                    self._fail(BadBlock(
                        f"block type 0x{btype:08x} has invalid total length {blen}",
                        file_offset=off, packet_number=number, in_packet=is_packet))
                if blen > max_block:
                    self._fail(AbsurdLength(
                        f"block type 0x{btype:08x} length {blen} is beyond the "
                        f"{max_block}-byte limit", file_offset=off,
                        packet_number=number, in_packet=is_packet))
                if blen > left:
                    self._truncated_block(off, n, left, blen,
                                          f"block (type 0x{btype:08x})", is_packet)
                end = off + blen
                if fmt.u32.unpack_from(buf, end - 4)[0] != blen:
                    self._fail(BadBlock(
                        f"block type 0x{btype:08x}: trailing length "
                        f"{fmt.u32.unpack_from(buf, end - 4)[0]} differs from "
                        f"leading length {blen}", file_offset=off,
                        packet_number=number, in_packet=is_packet))

                if btype == _BLOCK_EPB:
                    n = number
                    rec = self._epb(buf, off, blen, n, fmt, interfaces)
                    if rec is not None:
                        yield rec
                elif btype == _PCAPNG_SHB:
                    if blen < 28:
                        self._fail(BadBlock(
                            f"section header block length {blen} is below the minimum 28",
                            file_offset=off, packet_number=number, in_packet=False))
                elif btype == _BLOCK_IDB:
                    interfaces.append(self._idb(buf, off, blen, n, fmt, len(interfaces)))
                elif btype == _BLOCK_SPB:
                    n = number
                    rec = self._spb(buf, off, blen, n, fmt, interfaces)
                    if rec is not None:
                        yield rec
                elif btype == _BLOCK_OPB:
                    n = number
                    rec = self._opb(buf, off, blen, n, fmt, interfaces)
                    if rec is not None:
                        yield rec
                # any other block type is skipped by its length
                off = end
        finally:
            self.packets_seen = n

    def _truncated_block(self, off: int, n: int, left: int, need: int,
                         what: str, is_packet: bool = False) -> None:
        cls = TruncatedFile if off == 0 else TruncatedRecord
        self._fail(cls(f"{what} truncated: {left} of {need} bytes present",
                       file_offset=off, packet_number=n + 1, in_packet=is_packet))

    def _section_order(self, buf, off: int, n: int) -> _Formats:
        left = len(buf) - off
        if left < 16:
            self._truncated_block(off, n, left, 28, "section header block")
        for fmt in (_LE, _BE):
            _t, _len, bom, major, minor = fmt.shb.unpack_from(buf, off)
            if bom == _PCAPNG_BOM:
                if major != 1:
                    self._fail(UnsupportedVersion(
                        f"pcapng version {major}.{minor} is not supported (expected 1.x)",
                        file_offset=off + 12, packet_number=n + 1, in_packet=False))
                return fmt
        self._fail(BadMagic(
            "pcapng section header has an invalid byte-order magic %s"
            % bytes(buf[off + 8:off + 12]).hex(),
            file_offset=off + 8, packet_number=n + 1, in_packet=False))
        raise AssertionError("unreachable")

    def _idb(self, buf, off: int, blen: int, n: int, fmt: _Formats,
             index: int) -> _Interface:
        cfg = self.config
        if blen < 20:
            self._fail(BadBlock(
                f"interface description block length {blen} is below the minimum 20",
                file_offset=off, packet_number=n + 1, in_packet=False))
        _t, _l, linktype, _res, snaplen = fmt.idb.unpack_from(buf, off)
        usable = True
        if cfg.linktypes is not None and linktype not in cfg.linktypes:
            usable = False
            self.report(UnknownLinkType(
                f"interface {index} has link type {linktype}, not one of the supported "
                f"link types {sorted(cfg.linktypes)}; its packets are skipped",
                file_offset=off, packet_number=n + 1, in_packet=False, fatal=False))
        iface = _Interface(linktype, snaplen, usable)
        self._idb_options(buf, off + 16, off + blen - 4, fmt, iface, off, n)
        return iface

    def _idb_options(self, buf, pos: int, end: int, fmt: _Formats,
                     iface: _Interface, off: int, n: int) -> None:
        while pos + 4 <= end:
            code, length = fmt.opt.unpack_from(buf, pos)
            if code == 0:
                return
            value = pos + 4
            if value + length > end:
                self.report(BadBlock(
                    f"interface description option {code} overruns its block; "
                    f"remaining options ignored", file_offset=off,
                    packet_number=n + 1, in_packet=False, fatal=False))
                return
            if code == _OPT_IF_TSRESOL and length >= 1:
                res = buf[value]
                exp = res & 0x7F
                if res & 0x80:      # 2**-exp seconds
                    iface.ts_mul, iface.ts_div = _NS_PER_S, 1 << exp
                elif exp <= 9:      # 10**-exp seconds
                    iface.ts_mul, iface.ts_div = 10 ** (9 - exp), 1
                else:
                    iface.ts_mul, iface.ts_div = 1, 10 ** (exp - 9)
            elif code == _OPT_IF_TSOFFSET and length >= 8:
                iface.ts_add = fmt.i64.unpack_from(buf, value)[0] * _NS_PER_S
            pos = value + ((length + 3) & ~3)

    def _interface(self, interfaces: list, ifid: int, off: int, n: int,
                   what: str) -> Optional[_Interface]:
        if ifid < len(interfaces):
            iface = interfaces[ifid]
            return iface if iface.usable else None
        self.report(UnknownInterface(
            f"{what} refers to interface {ifid} but the section describes "
            f"{len(interfaces)}; packet skipped", file_offset=off, packet_number=n))
        return None

    def _epb(self, buf, off: int, blen: int, n: int, fmt: _Formats,
             interfaces: list) -> Optional[tuple]:
        if blen < 32:
            self.report(BadBlock(
                f"enhanced packet block length {blen} is below the minimum 32; "
                f"packet skipped", file_offset=off, packet_number=n, fatal=False))
            return None
        _t, _l, ifid, ts_hi, ts_lo, cap, orig = fmt.epb.unpack_from(buf, off)
        iface = self._interface(interfaces, ifid, off, n, "enhanced packet block")
        if iface is None:
            return None
        body = off + 28
        snaplen = iface.snaplen
        if cap == orig and cap <= blen - 32 and (not snaplen or cap <= snaplen) \
                and cap <= self.config.max_record_len:
            flags = 0
        else:
            flags = self._check_lengths(n, off, cap, orig, snaplen, blen - 32,
                                        "packet", framed=True)
            if flags < 0:
                return None
        ts = (ts_hi << 32) | ts_lo
        return (n, off, body, iface.linktype,
                ts * iface.ts_mul // iface.ts_div + iface.ts_add,
                cap, orig, buf[body:body + cap], flags)

    def _opb(self, buf, off: int, blen: int, n: int, fmt: _Formats,
             interfaces: list) -> Optional[tuple]:
        if blen < 32:
            self.report(BadBlock(
                f"packet block length {blen} is below the minimum 32; packet skipped",
                file_offset=off, packet_number=n, fatal=False))
            return None
        _t, _l, ifid, _drops, ts_hi, ts_lo, cap, orig = fmt.opb.unpack_from(buf, off)
        iface = self._interface(interfaces, ifid, off, n, "packet block")
        if iface is None:
            return None
        flags = 0
        if cap != orig or cap > blen - 32 or cap > self.config.max_record_len \
                or (iface.snaplen and cap > iface.snaplen):
            flags = self._check_lengths(n, off, cap, orig, iface.snaplen, blen - 32,
                                        "packet", framed=True)
            if flags < 0:
                return None
        body = off + 28
        ts = (ts_hi << 32) | ts_lo
        return (n, off, body, iface.linktype,
                ts * iface.ts_mul // iface.ts_div + iface.ts_add,
                cap, orig, buf[body:body + cap], flags)

    def _spb(self, buf, off: int, blen: int, n: int, fmt: _Formats,
             interfaces: list) -> Optional[tuple]:
        if blen < 16:
            self.report(BadBlock(
                f"simple packet block length {blen} is below the minimum 16; "
                f"packet skipped", file_offset=off, packet_number=n, fatal=False))
            return None
        orig = fmt.spb.unpack_from(buf, off)[2]
        iface = self._interface(interfaces, 0, off, n, "simple packet block")
        if iface is None:
            return None
        # The captured length is implied: the original length, limited by
        # the interface's snap length.  The block must have room for it.
        cap = min(orig, iface.snaplen) if iface.snaplen else orig
        flags = 0
        if cap != orig or cap > blen - 16 or cap > self.config.max_record_len:
            flags = self._check_lengths(n, off, cap, orig, 0, blen - 16,
                                        "packet", framed=True)
            if flags < 0:
                return None
        body = off + 12
        return (n, off, body, iface.linktype, 0, cap, orig, buf[body:body + cap], flags)


def iter_records(
    source: Source,
    on_error: Optional[Callable[[CaptureFinding], None]] = None,
    config: ReaderConfig = DEFAULT_CONFIG,
) -> Iterator[tuple]:
    """Yield the records of ``source`` as plain tuples (see :class:`Record`).

    With ``on_error=None`` the reader is strict: the first problem raises its
    :class:`CaptureError` subclass.  Otherwise every problem is passed to
    ``on_error`` as a :class:`CaptureFinding` and never raised; after a fatal
    one the iteration simply ends.
    """
    if on_error is None:
        reader = CaptureReader(source, replace(config, strict=True))
        yield from reader.tuples()
        return
    reader = CaptureReader(source, config)
    seen = 0
    for rec in reader.tuples():
        while seen < len(reader.findings):
            on_error(reader.findings[seen])
            seen += 1
        yield rec
    while seen < len(reader.findings):
        on_error(reader.findings[seen])
        seen += 1
