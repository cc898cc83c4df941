"""Directed wire-format cases, and the packet-building helpers the directed families share.

Theory of operation: the IUT sends and receives packets of every size on every sub-SA
(the judge decodes each one and checks layout, padding, alignment, SPI, SN and ICV), and
the IUT's receiver is fed packets the model's peer cannot make on its own: truncated,
bit-mangled and garbage bytes, headers with reserved bits, wrong versions and broken
options, and packets with a VALID ICV around a wrong body (padding content, pad length,
the Payload Info Header, the inner packet, next header 59). ``seal_custom`` builds the
last kind from the session's peer keys with the model's own codec, nonce and AAD, so the
receiver's body checks are reached after the ICV verified. Every such packet goes to the
IUT through ``inject``, which logs the bytes (hex) as a ``deliver_bytes`` step.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Callable, Iterator

from harness.engine.craft import seal_custom
from harness.contract import Capabilities
from harness.engine.judge import Finding
from harness.engine.session import Session, make_payload
from spec_model import Framing, Profile, Sender
from spec_model.errors import DecodeError, ProfileError
from spec_model.wire.payload import ESP_PAD, NEXT_HEADER_DUMMY, ZEROS, next_header_of_ip

from . import CaseContext, case

# --- helpers shared by the directed families ------------------------------------------------

Applies = Callable[[Profile, Capabilities], "str | None"]


@contextmanager
def opened(ctx: CaseContext, profile: Profile | None = None) -> Iterator[Session]:
    """A session that is closed when the scenario ends (pass or fail)."""
    s = ctx.session(profile)
    try:
        yield s
    finally:
        s.close()


def needs(*checks: Applies) -> Applies:
    """An ``applies`` rule: the first reason any check gives."""
    def applies(profile: Profile, caps: Capabilities) -> str | None:
        for check in checks:
            why = check(profile, caps)
            if why:
                return why
        return None
    return applies


def sub_sas(profile: Profile, caps: Capabilities) -> str | None:
    return None if profile.n_sub_sas > 1 else "profile has one sub-SA"


def set_counters(profile: Profile, caps: Capabilities) -> str | None:
    return None if caps.can_set_counters else "IUT cannot set counters"


def sequence_numbers(profile: Profile, caps: Capabilities) -> str | None:
    return None if profile.replay_protected else "no sequence number"


def limits_enforced(profile: Profile, caps: Capabilities) -> str | None:
    return None if caps.enforces_limits else "IUT does not enforce hard limits"


def variant(profile: Profile, caps: Capabilities, **changes) -> tuple[Profile | None, str | None]:
    """``profile.replace(**changes)`` when it is valid and the IUT supports it."""
    try:
        v = profile.replace(**changes)
    except ProfileError as e:
        return None, f"variant {changes} is not a valid profile: {e}"
    why = caps.unsupported(v)
    return (None, f"variant {changes}: {why}") if why else (v, None)


def inject(s: Session, wire: bytes, label: str) -> None:
    """Deliver bytes the scenario built itself (logged as a replayable ``deliver_bytes``)."""
    s.deliver_bytes(wire.hex(), label)


def _log_advance(s: Session, sub_sa: int, before: int) -> None:
    """Log the peer's counter moving past a packet built outside ``peer_send``, as the
    ``jump_peer`` step that does the same on replay."""
    after = s.judge.peer.counters[sub_sa]
    if after > before:
        s.log("jump_peer", sub_sa=sub_sa, delta=after - before)


def peer_custom(s: Session, sub_sa: int, body: bytes | Callable[[int], bytes], **kw) -> bytes:
    """``seal_custom`` with the session's peer (its counter moves, and the log says so)."""
    before = s.judge.peer.counters[sub_sa]
    wire = seal_custom(s.judge.peer, sub_sa, body, **kw)
    _log_advance(s, sub_sa, before)
    return wire


def peer_seal(s: Session, sub_sa: int, payload: bytes, next_header: int | None, **kw):
    """The peer's ``Sender.seal`` with options (crypt offset, extra padding), logged."""
    before = s.judge.peer.counters[sub_sa]
    sealed = s.judge.peer.seal(sub_sa, payload, next_header, **kw)
    _log_advance(s, sub_sa, before)
    return sealed




def padded_body(profile: Profile, header_len: int, payload: bytes, next_header: int, *,
                extra: int = 0, pad: bytes | None = None, pad_len: int | None = None,
                pih: bytes | None = None) -> bytes:
    """The encrypted body of the profile's framing, aligned after a header of header_len
    bytes, with ``extra`` more padding; ``pad`` replaces the padding content, ``pad_len``
    the pad length field and ``pih`` the first two PIH bytes (EESP full)."""
    f, align = profile.framing, profile.alignment
    if f is Framing.PSP:
        return payload
    overhead = {Framing.ESP: 2, Framing.EESP_FULL: 4, Framing.EESP_OPTIMIZED: 0}[f]
    n = -(header_len + overhead + len(payload)) % align + extra
    content = pad if pad is not None else (ESP_PAD[:n] if f is Framing.ESP else ZEROS[:n])
    assert len(content) == n, (len(content), n)
    field = n if pad_len is None else pad_len
    if f is Framing.ESP:
        return payload + content + bytes((field, next_header))
    if f is Framing.EESP_FULL:
        return (pih or b"\x00\x00") + bytes((next_header, field)) + payload + content
    return payload + content


def aligned(profile: Profile, payload: bytes, next_header: int, **kw
            ) -> Callable[[int], bytes]:
    """``padded_body`` as a function of the header length, for ``seal_custom``."""
    return lambda header_len: padded_body(profile, header_len, payload, next_header, **kw)


def payload_for(profile: Profile, size: int, fill: int = 0x5A, v6: bool = False
                ) -> tuple[bytes, int]:
    """``make_payload`` with the next header always spelled out (4/41 for tunnels)."""
    payload, nh = make_payload(profile, size, fill=fill, v6=v6)
    return payload, nh if nh is not None else next_header_of_ip(payload)


def in_flight_index(s: Session, wire: bytes) -> int:
    for i, (_, w) in enumerate(s.in_flight):
        if w == wire:
            return i
    raise LookupError("packet is not in flight")


def peer(s: Session, sub_sa: int, size: int = 8) -> bytes:
    """The peer's next packet on sub_sa, put in flight (it must not be refused)."""
    wire = s.peer_send(sub_sa, size)
    if wire is None:
        raise RuntimeError(f"the model's peer refused to send on sub-SA {sub_sa}: "
                           f"the scenario is wrong for profile {s.profile.name}")
    return wire


def deliver(s: Session, wire: bytes, keep: bool = False) -> None:
    """Deliver an in-flight packet; ``keep`` leaves a copy in flight for a replay."""
    i = in_flight_index(s, wire)
    if keep:
        s.duplicate(i)
    s.deliver(i)


def spi_offset(profile: Profile) -> int:
    return 0 if profile.framing is Framing.ESP else 4




def ends(profile: Profile) -> list[int]:
    """The first and the last sub-SA (one of them when there is one)."""
    return sorted({0, profile.n_sub_sas - 1})


# --- cases ----------------------------------------------------------------------------------

SIZES = (0, 1, 2, 3, 4, 7, 8, 63, 64, 255, 1400)


@case("wire", "every-field", requirements=(
    "WIRE-ESP-LAYOUT", "WIRE-ALIGN", "PAD-CONTENT-SEND", "WIRE-EESP-PIH",
    "WIRE-EESP-OPTIMIZED", "WIRE-PSP-HEADER", "SUBSA-ID-LOCATION", "SEQ-STRICTLY-INCREASING",
    "ICV-VERIFY", "RECV-ACCEPT-VALID"))
def every_field(ctx: CaseContext) -> None:
    """Every sub-SA sends and receives payloads of 0..1400 bytes (IPv4 and IPv6 inside tunnels, those the IUT carries); the judge checks every field."""
    with opened(ctx) as s:
        for sub in range(s.profile.n_sub_sas):
            for size in SIZES:
                for v6 in ctx.caps.inner_v6(s.profile):
                    s.iut_send(sub, size, v6)
                    if s.peer_send(sub, size, v6) is not None:
                        s.deliver(-1)


def _crypt_offset_variant(profile: Profile, caps: Capabilities
                          ) -> tuple[Profile | None, str | None]:
    if profile.crypt_offset:
        return profile, None
    return variant(profile, caps, crypt_offset=min(3, profile.max_crypt_offset))


def _applies_crypt_offset(profile: Profile, caps: Capabilities) -> str | None:
    if profile.max_crypt_offset == 0:
        return "profile forbids a crypt offset"
    return _crypt_offset_variant(profile, caps)[1]


@case("wire", "crypt-offset", requirements=(
    "CRYPTOFF-WITHIN-PAYLOAD", "CRYPTOFF-MAX", "CRYPTOFF-AUTHENTICATED", "WIRE-EESP-PIH",
    "AAD-EESP", "AAD-PSP", "RECV-ACCEPT-VALID"), applies=_applies_crypt_offset)
def crypt_offset(ctx: CaseContext) -> None:
    """Payloads around the crypt offset both ways: clear bytes are the plaintext prefix, offsets up to the maximum are accepted, beyond it or past the payload dropped."""
    profile = _crypt_offset_variant(ctx.profile, ctx.caps)[0]
    with opened(ctx, profile) as s:
        p = s.profile
        full = p.framing is Framing.EESP_FULL
        codec = s.judge.opener.codec
        clear = 4 * p.crypt_offset
        base = clear - 4 if full else clear
        sizes = sorted({0, 1, 2, 3} | {x for x in range(base - 6, base + 7) if x >= 0})
        # the IUT as sender: the bytes it leaves in clear are the start of the body
        for sub in ends(p):
            for size in sizes:
                payload, nh = make_payload(p, size)
                result = s.iut_send(sub, size)
                if not isinstance(result, bytes):
                    continue
                try:
                    pkt = codec.decode(result)
                except DecodeError:
                    continue          # the judge has reported it already
                s.judge_all(_check_clear(p, pkt, payload, nh, s.judge.sent))
        # the IUT as receiver: every offset up to the negotiated maximum
        peer_sender = s.judge.peer
        offsets = sorted({0, 1, p.crypt_offset, p.max_crypt_offset})
        for sub in ends(p):
            for co in offsets:
                for size in sorted({0, 3, 4, 4 * co - 4, 4 * co, 4 * co + 5} - {-4}):
                    payload, nh = payload_for(p, size)
                    sealed = peer_seal(s, sub, payload, nh, crypt_offset=co)
                    inject(s, sealed.wire, f"peer packet sub-SA {sub} SN {sealed.seq} with "
                                           f"crypt offset {co} on {len(payload)} bytes")
        # above the maximum (EESP: the field allows it when the maximum is below 63)
        if full and p.max_crypt_offset < 63:
            hi = Sender(p.replace(max_crypt_offset=p.max_crypt_offset + 1),
                        s.inbound.keymat, s.inbound.spi)
            hi.set_counter(0, peer_sender.counters[0] + 1000)
            payload, nh = payload_for(p, 4 * p.max_crypt_offset + 16)
            sealed = hi.seal(0, payload, nh, crypt_offset=p.max_crypt_offset + 1)
            inject(s, sealed.wire, f"packet with crypt offset {p.max_crypt_offset + 1} above "
                                   f"the maximum {p.max_crypt_offset}")
        # past the payload: into the padding (EESP full) or past the packet (PSP)
        payload, nh = payload_for(p, 4)
        if full:
            head = len(peer_sender.codec.header(s.inbound.spi, 0, 0, bytes(p.iv_len), 1, nh))
            body = padded_body(p, head, payload, nh, extra=p.alignment)
            co = len(body) // 4
            if co <= p.max_crypt_offset:
                wire = peer_custom(s, 0, body, next_header=nh, crypt_offset=co)
                inject(s, wire, f"crypt offset {co} reaching into the padding")
        elif len(payload) // 4 + 2 <= p.max_crypt_offset:
            wire = peer_custom(s, 0, payload, next_header=nh,
                               crypt_offset=len(payload) // 4 + 2)
            inject(s, wire, "crypt offset reaching past the end of the packet")
        # and the SA still works
        if s.peer_send(0, 8) is not None:
            s.deliver(-1)


def _check_clear(p: Profile, pkt, payload: bytes, nh: int, n: int) -> list[Finding]:
    exposed = pkt.exposed
    if p.framing is Framing.EESP_FULL:
        body_len = len(exposed) + len(pkt.ciphertext)
        if len(exposed) > 4 + len(payload):
            return [Finding.of("CRYPTOFF-WITHIN-PAYLOAD",
                               f"IUT packet {n} leaves {len(exposed)} bytes in clear, the PIH "
                               f"and payload have {4 + len(payload)}")]
        want = (bytes((0, 0, nh, (body_len - 4 - len(payload)) & 0xFF)) + payload)[:len(exposed)]
        if exposed != want:
            return [Finding.of("WIRE-EESP-PIH",
                               f"IUT packet {n}: the {len(exposed)} clear bytes are "
                               f"{exposed.hex()}, expected the PIH and payload prefix "
                               f"{want.hex()}")]
        return []
    if len(exposed) > len(payload):
        return [Finding.of("CRYPTOFF-WITHIN-PAYLOAD",
                           f"IUT packet {n} leaves {len(exposed)} bytes in clear, the payload "
                           f"has {len(payload)}")]
    if exposed != payload[:len(exposed)]:
        return [Finding.of("WIRE-PSP-HEADER",
                           f"IUT packet {n}: the {len(exposed)} clear bytes after the PSP "
                           f"header are not the payload prefix")]
    return []


def _mutations(p: Profile, wire: bytes, header_len: int, rng: random.Random
               ) -> list[tuple[str, bytes]]:
    """Malformed variants of a valid packet (and garbage), each labelled."""
    out: list[tuple[str, bytes]] = []
    n = len(wire)
    lengths = range(n) if n <= 128 else sorted(set(range(0, 48)) | set(range(48, n, 7))
                                                | set(range(n - 20, n)))
    out += [(f"truncated to {k} of {n} bytes", wire[:k]) for k in lengths]
    out += [(f"{k} bytes appended", wire + bytes(k)) for k in (1, 4, 8, 16)]
    out += [(f"{k} random bytes", rng.randbytes(k)) for k in (1, 7, 8, 16, 31, 32, 33, 64, n)]
    out.append(("valid header, random body", wire[:header_len] + rng.randbytes(n - header_len)))
    icv = p.aead_spec.icv_len
    out.append(("ICV zeroed", wire[:-icv] + bytes(icv)))
    out.append(("second half of the ICV zeroed", wire[:-(icv // 2)] + bytes(icv // 2)))
    for i in (n - icv, n - 1):
        out.append((f"ICV byte {i - n + icv} flipped", wire[:i] + bytes((wire[i] ^ 1,))
                    + wire[i + 1:]))
    so = spi_offset(p)
    spi = int.from_bytes(wire[so:so + 4], "big")
    for other in (0, 1, 255, spi ^ 0x8000_0000, spi + (1 << 16)):
        out.append((f"SPI {other:#x}", wire[:so] + other.to_bytes(4, "big") + wire[so + 4:]))
    b = bytearray(wire)

    def with_byte(i: int, v: int, label: str) -> None:
        c = bytearray(b)
        c[i] = v & 0xFF
        out.append((label, bytes(c)))

    if p.framing in (Framing.EESP_FULL, Framing.EESP_OPTIMIZED):
        for r in range(1, 8):
            with_byte(0, b[0] | r, f"EESP base header reserved bits {r:#x}")
        for v in (1, 2, 15):
            with_byte(0, (b[0] & 0x87) | v << 3, f"EESP version {v}")
        with_byte(0, b[0] & 0x7F, "EESP first bit 0")
        opt_len = b[1]
        rest = wire[8 + opt_len:]
        peer_len = header_len - 8 - opt_len

        def with_options(opts: bytes, label: str) -> None:
            out.append((label, wire[:1] + bytes((len(opts),)) + wire[2:8] + opts + rest))

        with_options(bytes((5, 16)) + bytes(6), "EESP option overrunning Opt Len")
        with_options(bytes((5, 200)), "EESP option overrunning the packet")
        with_options(bytes((2, 3, 0, 0, 0)) + bytes(3), "Crypt Offset option of 3 bytes")
        po = (8 + 8 + peer_len) // 4
        co = p.max_crypt_offset + 1
        if co <= 63:
            with_options(bytes((2, 2)) + ((po << 10) | (co << 4)).to_bytes(2, "big")
                         + bytes(4), f"crypt offset {co} above the maximum")
        with_options(bytes((2, 2)) + (((po + 1) << 10) | (1 << 4)).to_bytes(2, "big")
                     + bytes(4), "Crypt Offset option with a wrong Payload Offset")
        with_options(bytes((2, 2, 0, 0, 2, 2, 0, 0)), "two Crypt Offset options")
        with_byte(1, 252, "Opt Len past the packet")
        with_byte(2, b[2] ^ 0x80, "Session ID with its top bit flipped")
    if p.framing is Framing.PSP:
        with_byte(3, b[3] | 0x02, "PSP V bit (virtualization cookie) set")
        with_byte(3, b[3] & 0xFE, "PSP fixed bit 0")
        with_byte(3, b[3] ^ 0x04, "PSP version of the other AEAD")
        with_byte(3, b[3] | 0x3C, "PSP version 15")
        with_byte(3, b[3] | 0x80, "PSP S bit set")
        with_byte(3, b[3] | 0x40, "PSP D bit set")
        with_byte(2, b[2] | 0x80, "PSP reserved bit in byte 2")
        with_byte(2, b[2] | 0x3F, "PSP crypt offset 63")
        with_byte(1, 2, "PSP Hdr Ext Len 2")
        with_byte(1, 0, "PSP Hdr Ext Len 0")
        with_byte(0, b[0] ^ 0xFF, "PSP next header changed")
    return out


@case("wire", "malformed", requirements=(
    "WIRE-TRUNCATED", "SPI-UNKNOWN-DROP", "ICV-VERIFY", "ICV-LENGTH", "WIRE-ALIGN",
    "WIRE-EESP-BASE", "WIRE-VERSION", "WIRE-RESERVED-ZERO", "WIRE-EESP-OPTIONS",
    "CRYPTOFF-MAX", "WIRE-PSP-HEADER", "IUT-NO-CRASH"))
def malformed(ctx: CaseContext) -> None:
    """Truncations, appended and garbage bytes, a wrong SPI, reserved bits, versions, broken options and PSP header bits: the IUT drops every one and keeps working."""
    rng = random.Random(0xE5E5 ^ ctx.seed)
    with opened(ctx) as s:
        p = s.profile
        wire = peer(s, 0, 0)
        header_len = s.judge.reference.codec.header_len_of(wire)
        for label, bad in _mutations(p, wire, header_len, rng):
            inject(s, bad, label)
        deliver(s, wire)                   # the packet all the mutations came from
        if s.peer_send(p.n_sub_sas - 1, 40) is not None:
            s.deliver(-1)


def _padded(profile: Profile, caps: Capabilities) -> str | None:
    return "PSP has no padding" if profile.framing is Framing.PSP else None


@case("wire", "pad-content-check", requirements=("PAD-CONTENT-CHECK", "RECV-ACCEPT-VALID"),
      applies=_padded)
def pad_content_check(ctx: CaseContext) -> None:
    """Authentic packets with extra padding are accepted; with wrong padding content (ICV valid) they should be dropped."""
    with opened(ctx) as s:
        p = s.profile
        last = -3 if p.framing is Framing.ESP else -1      # the last padding byte
        for sub in ends(p):
            for size in (0, 5, 30):
                payload, nh = payload_for(p, size)
                for extra in (p.alignment, 4 * p.alignment):
                    wire = peer_custom(s, sub, aligned(p, payload, nh, extra=extra),
                                       next_header=nh)
                    inject(s, wire, f"sub-SA {sub}: {extra} bytes of extra padding")
                good = aligned(p, payload, nh, extra=p.alignment)
                for value in (0x00, 0xFF):
                    def wrong(h: int, good=good, value=value) -> bytes:
                        body = bytearray(good(h))
                        body[last] = value if body[last] != value else value ^ 0x80
                        return bytes(body)
                    wire = peer_custom(s, sub, wrong, next_header=nh)
                    inject(s, wire, f"sub-SA {sub}: authentic packet whose last padding "
                                    f"byte is wrong ({value:#04x} or near)")


@case("wire", "body-checks", requirements=(
    "WIRE-PAD-LENGTH", "WIRE-RESERVED-ZERO", "WIRE-EESP-PIH", "WIRE-EESP-OPTIMIZED",
    "RECV-ACCEPT-VALID"), applies=_padded)
def body_checks(ctx: CaseContext) -> None:
    """Authentic packets whose pad length, Payload Info Header or inner IP length is wrong are dropped, and the SA keeps working."""
    with opened(ctx) as s:
        p = s.profile
        payload, nh = payload_for(p, 12)
        bad: list[tuple[str, Callable[[int], bytes]]] = []
        if p.framing in (Framing.ESP, Framing.EESP_FULL):
            bad.append(("pad length 255 past the body", aligned(p, payload, nh, pad_len=255)))
        if p.framing is Framing.EESP_FULL:
            for r in (b"\x00\x01", b"\x10\x00", b"\x80\x00"):
                bad.append((f"Payload Info Header starting {r.hex()}",
                            aligned(p, payload, nh, pih=r)))
        if p.framing is Framing.EESP_OPTIMIZED:
            def length(k: int) -> bytes:
                return payload[:2] + k.to_bytes(2, "big") + payload[4:]
            bad += [("inner IPv4 length longer than the body",
                     aligned(p, length(len(payload) + 64), nh)),
                    ("inner IPv4 length 8", aligned(p, length(8), nh)),
                    ("inner packet of IP version 5",
                     aligned(p, bytes((0x55,)) + payload[1:], nh)),
                    ("inner packet followed by 300 zero bytes",
                     aligned(p, payload + bytes(300), nh))]
        for sub in ends(p):
            for label, body in bad:
                inject(s, peer_custom(s, sub, body, next_header=nh),
                       f"sub-SA {sub}: authentic packet, {label}")
            if s.peer_send(sub, 12) is not None:
                s.deliver(-1)


def _dummy_framings(profile: Profile, caps: Capabilities) -> str | None:
    if profile.framing not in (Framing.ESP, Framing.EESP_FULL):
        return "only ESP and EESP with the Payload Info Header carry a next header in the body"
    return None


@case("wire", "dummy-discard", requirements=("WIRE-DUMMY-DISCARD", "RECV-ACCEPT-VALID"),
      applies=_dummy_framings)
def dummy_discard(ctx: CaseContext) -> None:
    """Authentic packets with next header 59 (dummies) are discarded, never delivered; real traffic around them is."""
    rng = random.Random(59 ^ ctx.seed)
    with opened(ctx) as s:
        p = s.profile
        for sub in ends(p):
            for size in (0, 1, 16, 100):
                junk = rng.randbytes(size)
                wire = peer_custom(s, sub, aligned(p, junk, NEXT_HEADER_DUMMY),
                                   next_header=NEXT_HEADER_DUMMY)
                inject(s, wire, f"sub-SA {sub}: dummy packet (next header 59) of {size} bytes")
                if s.peer_send(sub, size) is not None:
                    s.deliver(-1)
