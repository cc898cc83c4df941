"""``espspec gen-pcap``: captures of any profile, optionally with one seeded fault.

Theory of operation: ``generate_capture(GenConfig)`` builds K child SAs of one profile (base SPIs
``0x00010000 * (i + 1)``, deterministic key material from the seed), protects N inner
packets round robin over SAs and sub-SAs (packet j goes to SA j mod K, sub-SA (j div K)
mod N) with ``spec_model.Sender`` -- or with an implementation's ``protect`` verb
(``iut``: ``mutant:NAME``, ``scapy``, ``module:factory``, through ``harness.contract.load_iut``)
-- and writes a classic Ethernet pcap with struct-built records: ESP as IP protocol 50 (or
in UDP 4500 with ``udp``), EESP in UDP on ``eesp_port`` (4545 by default; EESP has no
IANA port or protocol number yet), PSP in UDP to port 1000. Inner packets are IPv4/UDP
(tunnel mode) or UDP datagrams (transport mode) of ``payload_size`` bytes that carry the
packet index, so every one is distinct. Beside the capture it writes the espspec key file
and the Wireshark esp_sa table (``output_paths``: ``X.pcap`` -> ``X.keys.json``,
``X.esp_sa``). With ``receiver_out`` it also writes what a receiver delivers when it gets
the capture in order: the model's ``Receiver`` or the implementation's ``unprotect``
(``iut_role``).

Faults (``FAULTS``) are seeded at packet index ``fault_at`` (default N/2): in the sender
(``nonce-reuse``, ``seq-wrap``, ``bad-padding``, ``over-limit``, ``over-bytes``; model
sender only) or on the way to the file (``bad-icv``, ``duplicate``, ``reorder``, ``late``
and ``too-late`` -- held back W - 1 or W packets of its sub-SA, just inside or just left
of the replay window --, ``unknown-spi``, ``snap-cut``, ``garbage``,
``truncated-file``). Each names what ``check-pcap`` must report (``GenResult.expect``;
for profiles without sequence numbers, order faults are INFO only) and ``GenResult``
says where each fault went (packet numbers). File faults also reach the receiver capture,
which is how receiver bugs (``--iut mutant:NAME --iut-role receiver``) become visible.

A request is bounded before anything is written: 1 to ``MAX_PACKETS`` packets
(``PacketCountError``), and the files must fit (``NoSpaceError``): ``output_sizes``
computes each file's size from the model's first packet (every record has its length;
faults add at most a record or a few bytes), the key files exactly, and the free space of
each output folder's file system (``shutil.disk_usage``, files to be replaced counted as
free) must hold what goes there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from dataclasses import dataclass, field

from spec_model import Mode, Profile, Receiver, Sender, Delivered
from spec_model.errors import EspSpecError, SendRefused
from spec_model.keying import keymat_len
from spec_model.limits import LimitPolicy
from spec_model.profile import Framing, SeqWire
from spec_model.wire.payload import EspTrailer

from .config import EESP_UDP_PORT
from .keys import SaKey, esp_sa_text, espspec_keys_text, write_esp_sa, write_espspec_keys
from .pcapwriter import (LINKTYPE_RAW, LINKTYPE_USER0, FrameBuilder, PcapWriter,
                         ipv4_header)

__all__ = ["FAULTS", "MAX_PACKETS", "Fault", "GenConfig", "GenError", "GenResult",
           "NoSpaceError", "PacketCountError", "generate_capture", "keymat_for",
           "output_paths", "output_sizes"]

#: the most packets one ``gen-pcap`` writes (about 15 GB of capture at 64-byte payloads,
#: and some minutes of sealing; a larger count is a typo more often than a plan)
MAX_PACKETS = 10 ** 8


class GenError(EspSpecError):
    """A generation request that cannot be honoured (fault vs profile, IUT, ...)."""


class PacketCountError(GenError):
    """The packet count is not in 1..``MAX_PACKETS``."""


class NoSpaceError(GenError):
    """The output folder has less free space than the files to write need."""


@dataclass(frozen=True)
class Fault:
    name: str
    where: str           # "sender" (needs the model sender) or "file"
    what: str
    expect: str          # requirement ID or capture-finding kind check-pcap must report


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("nonce-reuse", "sender", "one packet reuses the IV (so the nonce) of the sub-SA's "
          "previous packet", "NONCE-UNIQUE-PER-KEY"),
    Fault("seq-wrap", "sender", "sub-SA 0's counter jumps to its maximum and then wraps to "
          "1 instead of refusing", "SEQ-NO-WRAP"),
    Fault("bad-padding", "sender", "one packet's padding has the wrong content",
          "PAD-CONTENT-SEND"),
    Fault("over-limit", "sender", "the profile gets a hard packet limit of fault_at packets "
          "(key file overrides) and the sender ignores it", "LIMIT"),
    Fault("over-bytes", "sender", "the profile gets a hard byte limit of fault_at payloads "
          "and the sender ignores it", "LIMIT"),
    Fault("bad-icv", "file", "one packet's last ICV byte is flipped", "ICV-VERIFY"),
    Fault("duplicate", "file", "one frame is written twice", "SEQ-STRICTLY-INCREASING"),
    Fault("reorder", "file", "one packet is written after the next packet of its sub-SA",
          "SEQ-STRICTLY-INCREASING"),
    Fault("late", "file", "one packet is held back until W - 1 later packets of its sub-SA "
          "have passed (still inside a window of W)", "SEQ-STRICTLY-INCREASING"),
    Fault("too-late", "file", "one packet is held back until W later packets of its sub-SA "
          "have passed (just left of a window of W)", "SEQ-STRICTLY-INCREASING"),
    Fault("unknown-spi", "file", "one packet's SPI is changed to one no SA has",
          "unknown-spi"),
    Fault("snap-cut", "file", "one record is cut to 60 bytes by the snap length",
          "snap-cut"),
    Fault("garbage", "file", "a frame whose IPv4 header lies about its length is inserted",
          "malformed-frame"),
    Fault("truncated-file", "file", "the file ends in the middle of its last record",
          "truncated-record"),
)}

BASE_SPI = 0x0001_0000
PSP_PORT = 1000
NATT_PORT = 4500


@dataclass(frozen=True)
class GenConfig:
    profile: Profile
    packets: int
    out: str
    sas: int = 1
    payload_size: int = 64
    udp: bool = False                 # ESP in UDP 4500 (RFC 3948) instead of protocol 50
    ipv6: bool = False                # outer IPv6
    eesp_port: int = EESP_UDP_PORT    # NOT IANA-assigned
    faults: tuple[str, ...] = ()
    fault_at: int | None = None       # packet index (0-based) of the fault; default N // 2
    seed: int = 1
    iut: str | None = None            # IUT spec; None: the model
    iut_role: str = "both"            # "sender", "receiver" or "both"
    receiver_out: str | None = None   # also write what the receiver delivers
    start_counter: int = 0            # every sub-SA starts as if it had sent this many

    def __post_init__(self) -> None:
        if not 1 <= self.packets <= MAX_PACKETS:
            raise PacketCountError(f"--packets must be 1..{MAX_PACKETS} (10^8), not "
                                   f"{self.packets}")
        if not 1 <= self.sas <= 255:
            raise GenError("--sas must be 1..255")
        if self.iut_role not in ("sender", "receiver", "both"):
            raise GenError("--iut-role is sender, receiver or both")
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown:
            raise GenError(f"unknown fault {', '.join(unknown)}; known: {', '.join(FAULTS)}")


@dataclass
class GenResult:
    capture: str
    keys: str
    esp_sa: str
    receiver: str | None
    profile: Profile
    sas: list[SaKey]
    records: int = 0
    refused: int = 0                  # packets the sender refused (limits, counter)
    fault_packets: dict = field(default_factory=dict)   # fault -> first 1-based packet numbers
    expect: dict = field(default_factory=dict)          # fault -> requirement or kind
    delivered: int = 0                # records in the receiver capture


def keymat_for(profile: Profile, seed: int, index: int) -> bytes:
    """Deterministic key material of SA ``index`` for a seed."""
    n = keymat_len(profile)
    out = b""
    block = 0
    while len(out) < n:
        out += hashlib.sha256(f"espspec-gen:{seed}:{index}:{block}".encode()).digest()
        block += 1
    return out[:n]


def _addresses(i: int, v6: bool) -> tuple[str, str]:
    return ("2001:db8::1", f"2001:db8:1::{i + 1:x}") if v6 else \
        ("192.0.2.1", f"198.51.100.{i + 1}")


class _InnerMaker:
    """Distinct inner packets: IPv4/UDP for tunnel mode, UDP datagrams for transport."""

    def __init__(self, profile: Profile, size: int) -> None:
        self.tunnel = profile.mode is Mode.TUNNEL
        self.size = max(size, 36 if self.tunnel else 16)
        self.fill = bytes(range(256)) * (self.size // 256 + 1)
        self._v4: dict = {}

    def make(self, index: int, sa: int) -> tuple[bytes, int | None]:
        tag = struct.pack("!QI", index, sa)
        if self.tunnel:
            body_len = self.size - 28
            body = tag + self.fill[:body_len - 12]
            udp = struct.pack("!HHHH", 5000, 5001, 8 + body_len, 0)
            head = self._v4.get(sa)
            if head is None:
                head = self._v4[sa] = ipv4_header(bytes((10, 0, sa, 1)), bytes((10, 1, sa, 1)),
                                                  17, 8 + body_len)
            return head + udp + body, None
        body_len = self.size - 8
        return struct.pack("!HHHH", 5000, 5001, self.size, 0) + tag + \
            self.fill[:body_len - 12], 17


class _WrapSender(Sender):
    """Fault seq-wrap: at the counter maximum, wrap to 0 (next SN 1) instead of refusing."""

    wrapped = False

    def seal(self, sub_sa, payload, next_header=None, **options):
        if 0 <= sub_sa < self._n and self.counters[sub_sa] >= self.policy.counter_max:
            self.counters[sub_sa] = 0
            self.wrapped = True
        return super().seal(sub_sa, payload, next_header, **options)


class _LimitlessSender(Sender):
    """Faults over-limit / over-bytes: the sender ignores hard limits."""

    def __init__(self, profile, keymat, spi) -> None:
        super().__init__(profile, keymat, spi)
        self._limited = False


class _BadPad:
    """A body layout that writes its padding wrong (fault bad-padding)."""

    def __init__(self, layout) -> None:
        self.layout = layout
        self.overhead = layout.overhead

    def pack(self, payload: bytes, next_header: int, pad_len: int) -> bytes:
        body = bytearray(self.layout.pack(payload, next_header, pad_len))
        end = len(body) - (2 if self.layout is EspTrailer else 0)
        for k in range(end - pad_len, end):
            body[k] ^= 0xA5
        return bytes(body)


class _Model:
    """The model as the packet source: one Sender per SA."""

    def __init__(self, sas: list[SaKey], faults: set[str]) -> None:
        cls = _WrapSender if "seq-wrap" in faults else \
            _LimitlessSender if faults & {"over-limit", "over-bytes"} else Sender
        self.senders = [cls(sa.profile, sa.keymat, sa.spi) for sa in sas]

    def set_counter(self, i: int, sub: int, value: int) -> None:
        self.senders[i].set_counter(sub, value)

    def protect(self, i: int, sub: int, payload: bytes, nh, **options) -> bytes | None:
        try:
            return self.senders[i].seal(sub, payload, nh, **options).wire
        except SendRefused:
            return None


class _Iut:
    """An implementation as the packet source (and/or sink): one instance per SA."""

    def __init__(self, spec: str, sas: list[SaKey]) -> None:
        from ..contract import SaConfig
        from ..loader import load_iut   # noqa: PLC0415
        factory = load_iut(spec)
        self.iuts = []
        for sa in sas:
            iut = factory()
            why = iut.capabilities().unsupported(sa.profile)
            if why:
                raise GenError(f"{spec} cannot run profile {sa.profile.name}: {why}")
            cfg = SaConfig(sa.profile, sa.spi, sa.keymat)
            iut.install(cfg, cfg)
            self.iuts.append(iut)

    def set_counter(self, i: int, sub: int, value: int) -> None:
        self.iuts[i].set_counter(sub, value)

    def protect(self, i: int, sub: int, payload: bytes, nh, **options) -> bytes | None:
        out = self.iuts[i].protect(sub, payload, nh)
        return out if isinstance(out, (bytes, bytearray)) else None

    def unprotect(self, i: int, wire: bytes):
        return self.iuts[i].unprotect(wire)

    def close(self) -> None:
        for iut in self.iuts:
            iut.close()


def _profile_for(cfg: GenConfig) -> Profile:
    p = cfg.profile
    at = cfg.fault_at if cfg.fault_at is not None else cfg.packets // 2
    per_sa = max(1, at // cfg.sas)
    if "over-limit" in cfg.faults:
        p = p.replace(name=p.name, hard_packets=max(per_sa, p.n_sub_sas))
    if "over-bytes" in cfg.faults:
        p = p.replace(name=p.name, hard_bytes=max(per_sa, 1) * cfg.payload_size)
    return p


def _check_faults(cfg: GenConfig, p: Profile) -> None:
    for f in cfg.faults:
        if FAULTS[f].where == "sender" and cfg.iut and cfg.iut_role != "receiver":
            raise GenError(f"fault {f} is seeded in the model sender; it cannot be combined "
                           f"with --iut {cfg.iut} as the sender")
        if f == "nonce-reuse" and not p.iv_len:
            raise GenError(f"fault nonce-reuse needs an explicit IV; {p.name} has an "
                           f"implicit one")
        if f == "bad-padding" and p.framing is Framing.PSP:
            raise GenError("fault bad-padding needs padding; PSP has none")
        pol = LimitPolicy.of(p)
        if f == "seq-wrap" and pol.packets_per_subsa is not None and \
                pol.packets_per_subsa < pol.counter_max:
            raise GenError(f"fault seq-wrap: in {p.name} the hard limit "
                           f"({pol.packets_requirement}) stops a sub-SA before its counter "
                           f"maximum, so a wrap cannot be reached")
    if cfg.faults and cfg.packets < 4 * cfg.sas * cfg.profile.n_sub_sas:
        raise GenError(f"faults need at least {4 * cfg.sas * cfg.profile.n_sub_sas} packets")


def output_paths(out: str | os.PathLike) -> tuple[str, str, str]:
    """(capture, espspec key file, esp_sa table) of ``-o OUT``: the key files replace a
    ``.pcap`` suffix (``x.pcap`` -> ``x.keys.json``, ``x.esp_sa``), or follow any other
    name."""
    base = os.fspath(out)
    stem = base[:-5] if base.endswith(".pcap") else base
    return base, stem + ".keys.json", stem + ".esp_sa"


def _fault_index(cfg: GenConfig) -> int:
    at = cfg.fault_at if cfg.fault_at is not None else cfg.packets // 2
    return min(max(at, 0), max(cfg.packets - 1, 0))


def _wrap_start(cfg: GenConfig, p: Profile) -> int:
    """seq-wrap: SA 0's sub-SAs start so close to the counter maximum that they reach it
    at the fault index (0 without that fault)."""
    if "seq-wrap" not in cfg.faults:
        return 0
    return LimitPolicy.of(p).counter_max - max(_fault_index(cfg) // (cfg.sas * p.n_sub_sas), 1)


def _sas_for(cfg: GenConfig, p: Profile, wrap_start: int) -> list[SaKey]:
    sas = []
    for i in range(cfg.sas):
        src, dst = _addresses(i, cfg.ipv6)
        start = wrap_start if i == 0 and wrap_start else cfg.start_counter
        # with ESN the key file says where the receiver side starts
        sas.append(SaKey(BASE_SPI * (i + 1), p, keymat_for(p, cfg.seed, i), "out", src, dst,
                         start if p.seq is SeqWire.ESN else 0, f"gen-pcap SA {i}"))
    return sas


def _frame_builders(cfg: GenConfig, p: Profile, sas: list[SaKey]) -> list[FrameBuilder]:
    builders = []
    for i, sa in enumerate(sas):
        if p.framing is Framing.ESP:
            proto, sport, dport = (17, NATT_PORT, NATT_PORT) if cfg.udp else (50, 0, 0)
        elif p.framing is Framing.PSP:
            proto, sport, dport = 17, 40000 + i, PSP_PORT
        else:
            proto, sport, dport = 17, cfg.eesp_port, cfg.eesp_port
        builders.append(FrameBuilder(sa.src, sa.dst, proto, sport, dport))
    return builders


def _sizes(cfg: GenConfig, p: Profile, sas: list[SaKey],
           builders: list[FrameBuilder]) -> dict[str, int]:
    """Bytes each output file will have, at most: every record as long as the model's
    first packet (inner packets are all one size; an IUT as the source may differ a
    little), plus the records a fault adds."""
    capture, keys, esp_sa = output_paths(cfg.out)
    payload, nh = _InnerMaker(p, cfg.payload_size).make(0, 0)
    sender = _LimitlessSender(p, sas[0].keymat, sas[0].spi)
    frame = builders[0].frame(sender.seal(0, payload, nh).wire)
    faults = set(cfg.faults)
    extra = len({"duplicate", "garbage"} & faults)          # records a fault adds
    pad = p.alignment if "bad-padding" in faults else 0      # its packet's extra padding
    out = {capture: 24 + (cfg.packets + extra) * (16 + len(frame)) + pad,
           keys: len(espspec_keys_text(sas).encode()),
           esp_sa: len(esp_sa_text(sas).encode())}
    if cfg.receiver_out is not None:       # without replay protection a copy is delivered
        delivered = cfg.packets + ("duplicate" in faults)
        out[os.fspath(cfg.receiver_out)] = 24 + delivered * (16 + len(payload))
    return out


def output_sizes(cfg: GenConfig) -> dict[str, int]:
    """What ``generate_capture(cfg)`` will write: path -> bytes (an upper bound for
    captures of the model; exact for the key files). Writes nothing."""
    p = _profile_for(cfg)
    _check_faults(cfg, p)
    sas = _sas_for(cfg, p, _wrap_start(cfg, p))
    return _sizes(cfg, p, sas, _frame_builders(cfg, p, sas))


def _check_space(sizes: dict[str, int]) -> None:
    """NoSpaceError unless every file system gets what it needs: the files' sizes minus
    the files they replace, against its free space."""
    need: dict = {}
    for path, n in sizes.items():
        folder = os.path.dirname(os.path.abspath(path))
        dev = os.stat(folder).st_dev          # OSError when the folder does not exist
        if os.path.isfile(path):
            n -= os.path.getsize(path)        # truncated when it is written again
        at, total = need.get(dev, (folder, 0))
        need[dev] = (at, total + n)
    for folder, n in need.values():
        free = shutil.disk_usage(folder).free
        if n > free:
            raise NoSpaceError(f"{folder}: gen-pcap would write about {_mb(n)} there and "
                               f"only {_mb(free)} are free; write fewer --packets or choose "
                               f"another -o")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def generate_capture(cfg: GenConfig) -> GenResult:
    """Write the capture, the key files and optionally the receiver capture. Refuses
    (``NoSpaceError``) before writing anything when they would not fit."""
    p = _profile_for(cfg)
    _check_faults(cfg, p)
    faults = set(cfg.faults)
    at = _fault_index(cfg)
    stride = cfg.sas * p.n_sub_sas
    wrap_start = _wrap_start(cfg, p)
    sas = _sas_for(cfg, p, wrap_start)
    builders = _frame_builders(cfg, p, sas)
    _check_space(_sizes(cfg, p, sas, builders))
    base, keys, esp_sa = output_paths(cfg.out)
    res = GenResult(base, keys, esp_sa, cfg.receiver_out, p, sas)
    write_espspec_keys(res.keys, sas)
    write_esp_sa(res.esp_sa, sas)
    iut = _Iut(cfg.iut, sas) if cfg.iut else None
    source = iut if iut is not None and cfg.iut_role in ("sender", "both") else \
        _Model(sas, faults)
    rx_iut = iut if iut is not None and cfg.iut_role in ("receiver", "both") else None
    receivers = None if cfg.receiver_out is None or rx_iut is not None else \
        [Receiver(sa.profile, sa.keymat, sa.spi) for sa in sas]
    n_sub = p.n_sub_sas
    if cfg.start_counter:
        for i in range(cfg.sas):
            for s in range(n_sub):
                source.set_counter(i, s, cfg.start_counter)
    if wrap_start:
        for s in range(n_sub):
            source.set_counter(0, s, wrap_start)
    inner = _InnerMaker(p, cfg.payload_size)
    for f in faults:
        res.expect[f] = FAULTS[f].expect
    if not p.replay_protected:      # no sequence number: order is not a requirement
        for f, kind in (("duplicate", "duplicate"), ("reorder", "iv-order"),
                        ("late", "iv-order"), ("too-late", "iv-order")):
            if f in faults:
                res.expect[f] = kind
    if faults & {"over-limit", "over-bytes"}:
        pol = LimitPolicy.of(p)
        if "over-limit" in faults:
            res.expect["over-limit"] = pol.packets_requirement
        if "over-bytes" in faults:
            res.expect["over-bytes"] = pol.bytes_requirement
    writer = PcapWriter(base)
    rx_writer = None
    if cfg.receiver_out is not None:
        rx_writer = PcapWriter(cfg.receiver_out,
                               LINKTYPE_RAW if p.mode is Mode.TUNNEL else LINKTYPE_USER0)

    def emit(i: int, frame: bytes, wire: bytes | None, fault: str | None = None,
             orig_len: int | None = None) -> None:
        writer.write(frame, orig_len)
        if fault is not None:
            where = res.fault_packets.setdefault(fault, [])
            if len(where) < 100:              # the first ones are what a check names
                where.append(writer.records)
        if rx_writer is None or wire is None or orig_len is not None:
            return
        if rx_iut is not None:
            out = rx_iut.unprotect(i, wire)
        else:
            out = receivers[i].open(wire)
        if isinstance(out, Delivered):
            rx_writer.write(out.payload)
            res.delivered += 1

    held = None          # (due index, i, frame, wire, fault) of a held-back packet
    window = max(p.window, 2)
    try:
        for j in range(cfg.packets):
            i = j % cfg.sas
            sub = (j // cfg.sas) % n_sub
            payload, nh = inner.make(j, i)
            options = {}
            fault = None
            if j == at and "nonce-reuse" in faults:
                sender = source.senders[i]
                c = sender.counters[sub]
                if not c:
                    raise GenError("fault nonce-reuse needs fault_at after the first packet "
                                   "of its sub-SA")
                prefix = sender._sub.get(sub) or sender._sub_sa(sub)
                options["iv_override"] = prefix[3] | c
                fault = "nonce-reuse"
            if j == at and "bad-padding" in faults:
                sender = source.senders[i]
                sender.layout, saved = _BadPad(sender.layout), sender.layout
                options["extra_pad"] = p.alignment
                fault = "bad-padding"
            if faults & {"over-limit", "over-bytes"} and \
                    source.senders[i].refusal(sub, len(payload)) is not None:
                fault = "over-limit" if "over-limit" in faults else "over-bytes"
            wire = source.protect(i, sub, payload, nh, **options)
            if "seq-wrap" in faults and i == 0 and source.senders[0].wrapped:
                source.senders[0].wrapped = False
                fault = "seq-wrap"
            if j == at and "bad-padding" in faults:
                source.senders[i].layout = saved
            if wire is None:
                res.refused += 1
                continue
            if j == at and "bad-icv" in faults:
                wire = wire[:-1] + bytes((wire[-1] ^ 0x01,))
                fault = "bad-icv"
            if j == at and "unknown-spi" in faults:
                k = 0 if p.framing is Framing.ESP else 4
                wire = wire[:k] + (0x7EAD0000 + j).to_bytes(4, "big") + wire[k + 4:]
                fault = "unknown-spi"
            frame = builders[i].frame(wire)
            if j == at and "garbage" in faults:
                junk = builders[i].eth + bytes((0x45, 0, 0xFF, 0xFF)) + bytes(range(40))
                emit(i, junk, None, "garbage")
            if j == at and faults & {"reorder", "late", "too-late"}:
                f = "reorder" if "reorder" in faults else "late" if "late" in faults \
                    else "too-late"
                due = j + {"reorder": 1, "late": window - 1, "too-late": window}[f] * stride
                if due >= cfg.packets:
                    raise GenError(f"fault {f} at index {j} needs more than {due} packets")
                held = (due, i, frame, wire, f)
                continue
            if j == at and "snap-cut" in faults:
                emit(i, frame[:60], wire, "snap-cut", orig_len=len(frame))
                continue
            emit(i, frame, wire, fault)
            if j == at and "duplicate" in faults:
                emit(i, frame, wire, "duplicate")
            if held is not None and held[0] == j:
                emit(held[1], held[2], held[3], held[4])
                held = None
        if held is not None:
            emit(held[1], held[2], held[3], held[4])
    finally:
        writer.close()
        if rx_writer is not None:
            rx_writer.close()
        if iut is not None:
            iut.close()
    res.records = writer.records
    if "truncated-file" in faults and writer.records:
        size = os.path.getsize(base)
        with open(base, "r+b") as f:
            f.truncate(size - 7)
        res.fault_packets["truncated-file"] = [writer.records]
    return res

