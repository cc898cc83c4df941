"""Judging a receiver from two captures: what it was sent and what it delivered.

Theory of operation: the sender capture is replayed, in capture order, through the model
``spec_model.Receiver`` of each SA (one per key file entry). For every IPsec packet the
model either delivers an inner payload or drops it with a reason and the requirement
that demands the drop (REPLAY-DUPLICATE-DROP, REPLAY-TOO-OLD-DROP, ICV-VERIFY,
PAD-CONTENT-CHECK, WIRE-DUMMY-DISCARD, ...). The receiver capture holds the inner packets
the implementation delivered, in the order it delivered them (raw IP or user link types
as they are; Ethernet and Linux cooked frames are stripped to the IP packet). The two
streams are merged like a diff with a two-record look-ahead:

* the payload of each sender packet is known when it authenticates (the model's
  delivery, or ``open_payload`` for a packet the model drops as a replay, as too
  old, as a dummy or for its padding); when the next receiver record equals it, the
  receiver delivered that packet;
* model delivers, receiver does not: RECV-ACCEPT-VALID, or REPLAY-WINDOW-SIZE when the
  packet was inside the window (below its sub-SA's highest accepted number);
* model drops, receiver delivers: the model's drop requirement;
* a receiver record that equals no sender payload (a forged or corrupted packet the
  model could not even open) is charged to the last such packet before it, with the
  model's requirement for dropping it; with none, RECV-ACCEPT-VALID (it delivered bytes
  no sender protected).

Matching is by content, so it assumes distinct inner packets (as ``gen-pcap`` writes
them; real traffic nearly always differs in IP ID, ports or TCP sequence numbers). Memory
is the model's windows and the look-ahead: nothing per packet is kept. The sender's own
rules are not judged here (``senderpass`` and ``sacheck`` do that, in their own pass).
"""

from __future__ import annotations

from collections import deque

from spec_model import Delivered, Receiver
from spec_model.errors import DecodeError, IcvMismatch
from spec_model.profile import Framing, SubSaLocation
from spec_model.replay import infer_esn
from spec_model.subsa import locate

from ..capture import PAYLOAD_CUT, CaptureReader, iter_dissected
from .dispatch import SPI_FIELD, SPI_OFFSET, by_address, spi_tables
from .report import FindingSink, ReceiverSummary, report_capture_findings
from .sacheck import PassContext, SaCheck
from .sequence import NEAREST_WINDOW

__all__ = ["inner_of", "judge_receiver", "open_payload"]

_RAW = frozenset({101, 228, 229}) | frozenset(range(147, 163))
_LINK_HEADER = {113: 16, 276: 20}
_VLAN = frozenset({0x8100, 0x88A8, 0x9100})


def inner_of(linktype: int, data: bytes) -> bytes | None:
    """The delivered inner packet of a receiver-capture record (None: not one)."""
    if linktype in _RAW:
        return data
    if linktype == 1:
        off = 12
        while len(data) >= off + 2 and int.from_bytes(data[off:off + 2], "big") in _VLAN:
            off += 4
        off += 2
    elif linktype in _LINK_HEADER:
        off = _LINK_HEADER[linktype]
    else:
        return None
    ip = data[off:]
    if len(ip) >= 4 and ip[0] >> 4 == 4:
        return ip[:int.from_bytes(ip[2:4], "big")]
    if len(ip) >= 6 and ip[0] >> 4 == 6:
        return ip[:40 + int.from_bytes(ip[4:6], "big")]
    return ip


def _records(reader: CaptureReader, sink: FindingSink):
    for rec in reader.tuples():
        inner = inner_of(rec[3], rec[7])
        if inner is None:
            sink.info("receiver-record", rec[0], rec[1], None, None,
                      f"record of link type {rec[3]} is not an inner packet; ignored",
                      capture="receiver")
            continue
        yield rec[0], rec[1], inner


def judge_receiver(args) -> tuple[tuple, ReceiverSummary]:
    path, rx_path, sas, dissect, config = args
    sink = FindingSink(config.max_per_requirement)
    quiet = FindingSink(0)
    ctx = PassContext(path, quiet, config)
    summary = ReceiverSummary(capture=str(rx_path))
    models = [Receiver(sa.profile, sa.keymat, sa.spi) for sa in sas]
    openers = [SaCheck(sa, ctx, None, {}) for sa in sas]
    tables = spi_tables((sa, i) for i, sa in enumerate(sas))
    rx_reader = CaptureReader(rx_path)
    stream = _records(rx_reader, sink)
    ahead: deque = deque()

    def peek(k: int):
        while len(ahead) <= k:
            nxt = next(stream, None)
            if nxt is None:
                return None
            ahead.append(nxt)
            summary.records += 1
        return ahead[k]

    pending = None      # (packet, offset, spi, requirement, detail) of a payload-less drop

    def charge_extra(rec) -> None:
        """A receiver record that matches no sender payload."""
        summary.unmatched += 1
        if pending is not None:
            pn, foff, spi, req, detail = pending
            summary.iut_extra += 1
            sink.check(req, pn, foff, spi, None,
                       f"the receiver delivered an inner packet (its record {rec[0]}) that "
                       f"no authentic sender packet carries, after this packet, which the "
                       f"model drops ({detail})", kind="receiver")
        else:
            sink.check("RECV-ACCEPT-VALID", rec[0], rec[1], None, None,
                       "the receiver delivered an inner packet that no sender packet "
                       "carries", capture="receiver", kind="receiver")

    reader = CaptureReader(path)
    drops: dict = {}
    try:
        for rec, d in iter_dissected(reader, dissect):
            kind = d[0]
            if kind == "other" or d[9] & PAYLOAD_CUT:
                continue
            data, off, ln = rec[7], d[5], d[6]
            at = off + SPI_OFFSET[kind]
            if at + 4 > off + ln:
                continue
            spi = SPI_FIELD.unpack_from(data, at)[0]
            i = tables[kind].get(spi)
            if i.__class__ is list:
                i = by_address(i, d[2], d[3])
            pkt = data[off:off + ln]
            n, foff = rec[0], rec[1]
            if i is None:
                summary.model_dropped += 1
                drops["unknown-spi"] = drops.get("unknown-spi", 0) + 1
                pending = (n, foff, spi, "SPI-UNKNOWN-DROP", "unknown SPI")
                continue
            model = models[i]
            out = model.open(pkt)
            if isinstance(out, Delivered):
                payload = out.payload
                summary.model_delivered += 1
            else:
                payload = open_payload(openers[i], pkt, model.top)
                summary.model_dropped += 1
                drops[out.reason.value] = drops.get(out.reason.value, 0) + 1
            if payload is None:
                pending = (n, foff, spi, out.requirement, f"{out.reason.value}: {out.detail}")
                summary.agree_dropped += 1     # until a record is charged to it
                continue
            r0 = peek(0)
            if r0 is not None and r0[2] != payload:
                r1 = peek(1)
                if r1 is not None and r1[2] == payload:
                    ahead.popleft()
                    if pending is not None:
                        summary.agree_dropped -= 1
                    charge_extra(r0)
                    r0 = r1
            pending = None
            delivered = r0 is not None and r0[2] == payload
            if delivered:
                ahead.popleft()
            if isinstance(out, Delivered):
                if delivered:
                    summary.agree_delivered += 1
                else:
                    summary.iut_missing += 1
                    inside = out.seq is not None and model.top(out.sub_sa) > out.seq
                    req = "REPLAY-WINDOW-SIZE" if inside else "RECV-ACCEPT-VALID"
                    sink.check(req, n, foff, spi, out.sub_sa,
                               f"the model delivers this packet (SN {out.seq}"
                               f"{', inside the window' if inside else ''}); the receiver "
                               f"did not deliver it", kind="receiver")
            elif delivered:
                summary.iut_extra += 1
                sink.check(out.requirement, n, foff, spi, out.sub_sa,
                           f"the receiver delivered this packet (its record {r0[0]}); the "
                           f"model drops it ({out.reason.value}: {out.detail})",
                           kind="receiver")
            else:
                summary.agree_dropped += 1
        while peek(0) is not None:
            rec = ahead.popleft()
            if reader.stopped_early:
                summary.unmatched += 1
                sink.info("receiver-unjudged", rec[0], rec[1], None, None,
                          "the sender capture ends early (it is truncated or corrupt), so "
                          "this delivered packet cannot be judged", capture="receiver")
                continue
            if pending is not None:
                summary.agree_dropped -= 1
            charge_extra(rec)
            pending = None
    finally:
        ctx.close()
    summary.drops_by_reason = drops
    report_capture_findings(rx_reader, sink, "receiver")
    return sink.state(), summary


def open_payload(check: SaCheck, pkt: bytes, top_of) -> bytes | None:
    """The inner payload of an authentic packet of ``check``'s SA, whatever a replay
    window would say (``top_of(sub)`` gives the highest counter for ESN inference).
    Wrong padding is stripped leniently: a receiver that skips the padding check delivers
    exactly this. None when the packet does not authenticate or cannot be decoded."""
    try:
        d = check.codec.decode(pkt)
    except DecodeError:
        return None
    seq = d.seq
    if check.loc is SubSaLocation.SEQ:
        sub = locate(check.profile, check.base, d.spi, d.session_id, seq)[0]
    else:
        sub = locate(check.profile, check.base, d.spi, d.session_id, None)[0]
        if check.esn:
            seq = infer_esn(seq, top_of(sub), NEAREST_WINDOW)[0]
    if not 0 <= sub < check.n:
        return None
    iv = seq if check.iiv else int.from_bytes(d.iv, "big")
    cipher, salt = check.sub_info(sub)[:2]
    header = pkt[:check.codec.header_len_of(pkt)]
    try:
        pt = cipher.open(check.nb(salt, d.spi, iv), d.ciphertext, d.icv,
                         check.codec.aad(header, seq) + d.exposed)
    except IcvMismatch:
        return None
    body = d.exposed + pt if d.exposed else pt
    try:
        return check.layout.unpack(body, d.next_header if check.psp else None).payload
    except DecodeError:
        return _lenient_payload(check.profile.framing, body)


def _lenient_payload(framing: Framing, body: bytes) -> bytes | None:
    """The payload a receiver that ignores the padding content would deliver."""
    n = len(body)
    if framing is Framing.ESP and n >= 2 and body[-2] <= n - 2:
        return body[:n - 2 - body[-2]]
    if framing is Framing.EESP_FULL and n >= 4 and body[3] <= n - 4:
        return body[4:n - body[3]]
    if framing is Framing.EESP_OPTIMIZED and n >= 20:
        v = body[0] >> 4
        length = int.from_bytes(body[2:4], "big") if v == 4 else \
            40 + int.from_bytes(body[4:6], "big") if v == 6 and n >= 40 else 0
        return body[:length] if 20 <= length <= n else None
    return None
