"""Reading charon's file log: the keys of each new CHILD_SA, and the ESP packets it dropped.

Theory of operation: a line of charon's file logger (``ike_name = yes``, no time stamp)
is ``TT[GRP] <conn|n> message``: the thread number, the subsystem, the IKE SA it concerns
(absent for daemon-wide messages) and the text. ``parse_line`` splits it; anything else
is ``None``.

Keys (``chd = 4``): the thread that installs a CHILD_SA logs, in this order, the state
change ``CHILD_SA name{id} state change: CREATED => INSTALLING``, a hexdump per key
(``encryption initiator key => 20 bytes @ 0x...`` and rows ``   0: 7D 5F ...``; the same
for the responder and, without an AEAD, for ``integrity``), then ``adding inbound ESP
SA`` and ``adding outbound ESP SA``, each followed by ``SPI 0x..., src ... dst ...``, and
ends with ``INSTALLING => INSTALLED``. Threads interleave, so ``KeyParser`` keeps one
record in progress per thread and hands out a ``KeyRecord`` when its CHILD_SA is
installed. Which key protects which direction is not decided here (it depends on who
initiated the CHILD_SA): ``KeyRecord.keys_for(initiator)`` says it, for either end.

Drops (``esp = 1``; an unknown SPI is logged only at ``esp = 2``): ``classify_drop`` maps
a line of the ESP subsystem that names no IKE SA to a ``Drop`` with one reason word from
``DROP_REASONS`` (``DROP_PATTERNS`` holds the texts 5.9.8 prints, found by provoking
each), or ``None`` for a line that reports no drop. ``drops_in`` does that for a stretch
of the log and folds in the detail line (SPI, sequence number) charon adds to a replay
drop.

Everything here is pure: lines in, records out. Reading the file is ``rig.py``'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LINE = re.compile(r"^(?P<thread>\d{2,})\[(?P<group>[A-Z]{3})\] (?:<(?P<ike>[^>]*)> )?"
                   r"(?P<msg>.*)$")
_STATE = re.compile(r"CHILD_SA (?P<name>\S+)\{(?P<id>\d+)\} state change: "
                    r"(?P<old>[A-Z_]+) => (?P<new>[A-Z_]+)")
_KEY = re.compile(r"^(?P<kind>encryption|integrity) (?P<role>initiator|responder) key "
                  r"=> (?P<len>\d+) bytes")
_ROW = re.compile(r"^\s*(?P<off>\d+): (?P<hex>(?:[0-9A-F]{2} ){0,15}[0-9A-F]{2})(?: |$)")
_ADDING = re.compile(r"^adding (?P<dir>inbound|outbound) (?P<proto>ESP|AH) SA")
_SPI = re.compile(r"^SPI 0x(?P<spi>[0-9a-f]{1,8}), src (?P<src>\S+) dst (?P<dst>\S+)")
_TUN = re.compile(r"created TUN device: (?P<name>\S+)")

#: the reason words a Drop carries
DROP_REASONS = ("replay", "icv", "padding", "unknown-spi", "other")

#: (reason, text in the message) for the ESP subsystem's lines, first match wins; the
#: texts are strongSwan 5.9.8's, as it printed them when provoked (unknown SPI only at
#: esp = 2). A line of the ESP subsystem that matches none is an "other" drop.
DROP_PATTERNS: tuple[tuple[str, str], ...] = (
    ("replay", "ESP sequence number verification failed"),      # duplicate, seq 0, old
    ("icv", "ESP decryption or ICV verification failed"),      # any changed byte
    ("padding", "parsing ESP payload failed: invalid padding"),  # pad bytes or length
    ("unknown-spi", "inbound ESP packet does not belong to an installed SA"),
    ("other", ""),                      # e.g. "ESP decryption failed: invalid length"
)

#: ESP-subsystem messages that report no drop (esp = 2 logs one per packet)
NOT_DROPS = ("parsed ESP header",)

_DETAIL = re.compile(r"^\s+src (?P<src>\S+), dst (?P<dst>\S+), SPI (?P<spi>[0-9a-f]{1,8}) "
                     r"\[seq (?P<seq>\d+)\]")


@dataclass(frozen=True)
class LogLine:
    thread: int
    group: str
    ike: str | None
    msg: str                 # as logged, leading spaces kept


@dataclass(frozen=True)
class EspSaLog:
    """One ``adding ... ESP SA`` entry."""
    spi: int
    src: str
    dst: str


@dataclass(frozen=True)
class KeyRecord:
    """What one charon logged while installing one CHILD_SA."""
    name: str
    unique_id: int
    keys: dict                # (kind, role) -> bytes, e.g. ("encryption", "initiator")
    inbound: EspSaLog
    outbound: EspSaLog

    def keys_for(self, initiator: bool) -> tuple[bytes, bytes, bytes, bytes]:
        """(out encryption, in encryption, out integrity, in integrity) of this end when
        it is (``initiator``) or is not the CHILD_SA's initiator: the initiator's
        outbound SA uses the initiator keys, its inbound SA the responder keys."""
        mine, theirs = ("initiator", "responder") if initiator else ("responder", "initiator")
        k = self.keys
        return (k.get(("encryption", mine), b""), k.get(("encryption", theirs), b""),
                k.get(("integrity", mine), b""), k.get(("integrity", theirs), b""))


@dataclass(frozen=True)
class Drop:
    """One dropped ESP packet as charon logged it."""
    reason: str              # one of DROP_REASONS
    line: str                # the raw log line (and its detail line, if one followed)
    offset: int = -1         # where the line starts in the log, when known
    spi: int | None = None   # from the detail line charon adds to replay drops
    seq: int | None = None


def parse_line(line: str) -> LogLine | None:
    m = _LINE.match(line.rstrip("\n"))
    if m is None:
        return None
    return LogLine(int(m["thread"]), m["group"], m["ike"], m["msg"])


def tun_name(lines) -> str | None:
    """The TUN device kernel-libipsec reports creating, or None."""
    for line in lines:
        m = _TUN.search(line)
        if m:
            return m["name"]
    return None


def classify_drop(line: str, offset: int = -1) -> Drop | None:
    """A Drop for a line that reports a dropped ESP packet, else None. Lines of the ESP
    subsystem that name an IKE SA are about installing SAs (``IPsec SA: ESN not
    supported``), not about packets, and are not drops."""
    parsed = parse_line(line)
    if parsed is None or parsed.group != "ESP" or parsed.ike is not None:
        return None
    msg = parsed.msg
    if _DETAIL.match(msg) or any(text in msg for text in NOT_DROPS):
        return None
    for reason, text in DROP_PATTERNS:
        if text in msg:
            return Drop(reason, line.rstrip("\n"), offset)
    return None  # pragma: no cover -- the last pattern matches everything


def drops_in(numbered) -> list[Drop]:
    """The drops among ``(offset, line)`` pairs in log order; a detail line (``src ...,
    dst ..., SPI ... [seq N]``) right after a drop of the same thread is folded into it."""
    out: list[Drop] = []
    last: dict[int, int] = {}                      # thread -> index in out
    for offset, line in numbered:
        parsed = parse_line(line)
        if parsed is None:
            continue
        detail = _DETAIL.match(parsed.msg) if parsed.group == "ESP" else None
        if detail is not None:
            i = last.pop(parsed.thread, None)
            if i is not None:
                d = out[i]
                out[i] = Drop(d.reason, f"{d.line} | {parsed.msg.strip()}", d.offset,
                              int(detail["spi"], 16), int(detail["seq"]))
            continue
        drop = classify_drop(line, offset)
        last.pop(parsed.thread, None)
        if drop is not None:
            last[parsed.thread] = len(out)
            out.append(drop)
    return out


@dataclass
class _Pending:
    name: str
    unique_id: int
    keys: dict = field(default_factory=dict)
    key_at: tuple | None = None       # (kind, role, length) of the hexdump being read
    data: bytearray = field(default_factory=bytearray)
    adding: str | None = None         # "inbound"/"outbound" awaiting its SPI line
    sas: dict = field(default_factory=dict)


class KeyParser:
    """Feed it lines in log order; ``feed`` returns a KeyRecord when one is complete."""

    def __init__(self) -> None:
        self._threads: dict[int, _Pending] = {}

    def feed(self, line: str) -> KeyRecord | None:
        parsed = parse_line(line)
        if parsed is None or parsed.group != "CHD":
            return None
        msg = parsed.msg.strip()
        state = _STATE.search(msg)
        if state:
            return self._state(parsed.thread, state)
        p = self._threads.get(parsed.thread)
        if p is None:
            return None
        if p.key_at is not None:
            row = _ROW.match(msg)
            if row and int(row["off"]) == len(p.data):
                p.data += bytes.fromhex(row["hex"])
                self._key_done(p)
                return None
            self._key_done(p, force=True)
        key = _KEY.match(msg)
        if key:
            p.key_at, p.data = (key["kind"], key["role"], int(key["len"])), bytearray()
            if p.key_at[2] == 0:
                self._key_done(p)
            return None
        adding = _ADDING.match(msg)
        if adding:
            p.adding = adding["dir"] if adding["proto"] == "ESP" else None
            return None
        spi = _SPI.match(msg)
        if spi and p.adding:
            p.sas[p.adding] = EspSaLog(int(spi["spi"], 16), spi["src"], spi["dst"])
            p.adding = None
        return None

    @staticmethod
    def _key_done(p: _Pending, force: bool = False) -> None:
        kind, role, length = p.key_at
        if len(p.data) >= length or force:
            if len(p.data) == length:
                p.keys[(kind, role)] = bytes(p.data)
            p.key_at, p.data = None, bytearray()

    def _state(self, thread: int, m: re.Match) -> KeyRecord | None:
        if m["old"] == "CREATED" and m["new"] == "INSTALLING":
            self._threads[thread] = _Pending(m["name"], int(m["id"]))
            return None
        p = self._threads.get(thread)
        if p is None or int(m["id"]) != p.unique_id:
            return None
        del self._threads[thread]
        if m["new"] != "INSTALLED" or set(p.sas) != {"inbound", "outbound"}:
            return None
        return KeyRecord(p.name, p.unique_id, dict(p.keys), p.sas["inbound"],
                         p.sas["outbound"])


def parse_keys(lines) -> list[KeyRecord]:
    """Every CHILD_SA installed in ``lines``, in the order installation completed."""
    parser = KeyParser()
    return [r for r in map(parser.feed, lines) if r is not None]


def parse_drops(lines) -> list[Drop]:
    """The drops in plain lines (offsets unknown)."""
    return drops_in((-1, line) for line in lines)
