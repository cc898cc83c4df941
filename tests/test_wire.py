"""Wire codecs: decode(encode(x)) == x for every profile, and one exception per malformation."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, strategies as st

from spec_model import NAMED, Delivered, DropReason, Dropped, Receiver, Sender, named
from spec_model import errors
from spec_model.wire import codec_for
from spec_model.wire.eesp import Option

from .builders import SPI, ipv4_packet, keymat_for, payload_for, seal_raw_body

PROFILES = sorted(NAMED)


@st.composite
def sealed_packets(draw, name):
    p = NAMED[name]
    sender = Sender(p, keymat_for(p), SPI)
    sub_sa = draw(st.integers(0, p.n_sub_sas - 1))
    sender.set_counter(sub_sa, draw(st.integers(0, min(sender.policy.counter_max - 1, 1 << 40))))
    body = draw(st.binary(max_size=300))
    payload, nh = payload_for(p, body, v6=draw(st.booleans()))
    extra = draw(st.integers(0, 200 // p.alignment)) * p.alignment if p.framing.value != "psp" else 0
    co = draw(st.integers(0, p.max_crypt_offset)) if p.max_crypt_offset else None
    return p, sender.seal(sub_sa, payload, nh, extra_pad=extra, crypt_offset=co), payload


@pytest.mark.parametrize("name", PROFILES)
@given(data=st.data())
def test_decode_encode_roundtrip_of_sealed_packets(name, data):
    p, sealed, _ = data.draw(sealed_packets(name))
    codec = codec_for(p)
    pkt = codec.decode(sealed.wire)
    assert codec.encode(pkt) == sealed.wire
    assert codec.decode(codec.encode(pkt)) == pkt
    assert pkt.spi == sealed.spi
    if p.replay_protected:
        assert pkt.seq == sealed.seq & ((1 << (32 if p.seq.value in ("32", "esn") else 64)) - 1)


@pytest.mark.parametrize("name", PROFILES)
@given(data=st.data())
def test_decode_encode_roundtrip_of_arbitrary_field_values(name, data):
    """Any value in each cleartext field survives encode then decode."""
    p, sealed, _ = data.draw(sealed_packets(name))
    codec = codec_for(p)
    pkt = codec.decode(sealed.wire)
    changes = {"spi": data.draw(st.integers(0, (1 << 32) - 1)),
               "iv": data.draw(st.binary(min_size=len(pkt.iv), max_size=len(pkt.iv))),
               "ciphertext": data.draw(st.binary(min_size=len(pkt.ciphertext),
                                                 max_size=len(pkt.ciphertext))),
               "icv": data.draw(st.binary(min_size=len(pkt.icv), max_size=len(pkt.icv)))}
    if pkt.seq is not None:
        changes["seq"] = data.draw(st.integers(0, (1 << (8 * (8 if p.seq.value == "64" else 4))) - 1))
    if hasattr(pkt, "session_id") and p.framing.value.startswith("eesp"):
        changes["session_id"] = data.draw(st.integers(0, 0xFFFF))
    x = dataclasses.replace(pkt, **changes)
    assert codec.decode(codec.encode(x)) == x


@pytest.mark.parametrize("name", PROFILES)
@given(data=st.data())
def test_receiver_opens_what_sender_seals(name, data):
    p, sealed, payload = data.draw(sealed_packets(name))
    receiver = Receiver(p, keymat_for(p), SPI)
    if sealed.seq:
        receiver.jump(sealed.sub_sa, max(0, (sealed.counter or 0) - 1))
    out = receiver.open(sealed.wire)
    assert isinstance(out, Delivered), out
    assert out.payload == payload and out.sub_sa == sealed.sub_sa and out.seq == sealed.seq


@pytest.mark.parametrize("name", PROFILES)
@given(data=st.data())
def test_truncation_and_garbage_never_crash(name, data):
    """Every prefix and random bytes: a Delivered or a Dropped, never an exception."""
    p, sealed, _ = data.draw(sealed_packets(name))
    receiver = Receiver(p, keymat_for(p), SPI)
    cut = data.draw(st.integers(0, len(sealed.wire) - 1))
    out = receiver.open(sealed.wire[:cut])
    assert isinstance(out, Dropped)
    junk = data.draw(st.binary(max_size=200))
    assert isinstance(receiver.open(junk), (Dropped, Delivered))
    flipped = bytearray(sealed.wire)
    i = data.draw(st.integers(0, len(flipped) - 1))
    flipped[i] ^= 1 << data.draw(st.integers(0, 7))
    assert isinstance(receiver.open(bytes(flipped)), Dropped)


# --- one exception class per malformation ----------------------------------------------------

def _eesp():
    p = named("eesp-v0-transport")
    s = Sender(p, keymat_for(p), SPI)
    return p, s, s.seal(0, b"\x11" * 40, 17).wire


def test_eesp_header_malformations():
    p, _, wire = _eesp()
    codec = codec_for(p)
    cases = [
        (bytes([wire[0] & 0x7F]) + wire[1:], errors.BadFixedBit),
        (bytes([wire[0] | 0x08]) + wire[1:], errors.BadVersion),
        (bytes([wire[0] | 0x01]) + wire[1:], errors.ReservedBitsSet),
        (wire[:7], errors.Truncated),
        (wire[:20], errors.Truncated),
        (wire[:1] + bytes([wire[1] + 8]) + wire[2:], errors.OptionOverrun),
        (wire[:-1], errors.Misaligned),
    ]
    for data, cls in cases:
        with pytest.raises(cls) as info:
            codec.decode(data)
        assert info.value.requirement and info.value.offset is not None


def test_eesp_crypt_offset_option_malformations():
    p, _, wire = _eesp()
    codec = codec_for(p)
    pkt = codec.decode(wire)
    assert pkt.options[0].type == 2 and pkt.crypt_offset == 3
    bad_po = dataclasses.replace(pkt, options=(Option(2, bytes([0x10, 0x30])),) + pkt.options[1:])
    with pytest.raises(errors.PayloadOffsetMismatch):
        codec.decode(codec.encode(bad_po))
    over = (28 // 4) << 10 | 17 << 4     # crypt offset 17 > maximum 16
    with pytest.raises(errors.CryptOffsetAboveMaximum):
        codec.decode(codec.encode(dataclasses.replace(
            pkt, options=(Option(2, over.to_bytes(2, "big")),) + pkt.options[1:])))
    beyond = (28 // 4) << 10 | 16 << 4   # 64 clear bytes, more than the packet has
    with pytest.raises(errors.CryptOffsetBeyondPayload):
        codec.decode(codec.encode(dataclasses.replace(
            pkt, options=(Option(2, beyond.to_bytes(2, "big")),) + pkt.options[1:])))
    with pytest.raises(errors.BadOption):
        codec.decode(codec.encode(dataclasses.replace(
            pkt, options=(Option(2, b"\x00\x00\x00\x00"),))))


def _open_body(profile_name: str, body: bytes, co: int = 0) -> Dropped | Delivered:
    p = named(profile_name)
    sender = Sender(p, keymat_for(p), SPI)
    wire = seal_raw_body(sender, 0, body, crypt_offset=co)
    return Receiver(p, keymat_for(p), SPI).open(wire)


@pytest.mark.parametrize("profile,body,requirement", [
    # ESP trailer: pad length past the payload, wrong padding content
    ("esp", b"\x45" * 19 + b"\x01\x02\x03" + b"\x19\x04", "WIRE-PAD-LENGTH"),
    ("esp", b"\x45" * 20 + b"\x01\x03" + b"\x02\x04", "PAD-CONTENT-CHECK"),
    # EESP full: PIH reserved bits, pad length, non-zero padding, crypt offset past payload
    ("eesp-v0-transport", b"\x01\x00\x11\x00" + bytes(32), "WIRE-RESERVED-ZERO"),
    ("eesp-v0-transport", b"\x00\x00\x11\xff" + bytes(32), "WIRE-PAD-LENGTH"),
    ("eesp-v0-transport", b"\x00\x00\x11\x04" + bytes(28) + b"\x00\x00\x00\x01",
     "PAD-CONTENT-CHECK"),
    # EESP optimized: not an IP packet, inner length past the body, padding not zero
    ("eesp-v0", b"\x00" * 40, "WIRE-EESP-OPTIMIZED"),
    ("eesp-v0", ipv4_packet(bytes(12))[:2] + b"\x00\xff" + bytes(36), "WIRE-EESP-OPTIMIZED"),
    ("eesp-v0", ipv4_packet(bytes(12)) + b"\x00\x00\x00\x00\x00\x00\x00\x01", "PAD-CONTENT-CHECK"),
])
def test_body_malformations_dropped_with_requirement(profile, body, requirement):
    out = _open_body(profile, body)
    assert isinstance(out, Dropped) and out.reason is DropReason.MALFORMED, out
    assert out.requirement == requirement


def test_eesp_crypt_offset_beyond_inner_packet():
    # 3 units = 12 clear bytes, but PIH + payload are only 8 bytes (then 28 bytes of padding)
    body = b"\x00\x00\x11\x1c" + b"\xaa" * 4 + bytes(28)
    out = _open_body("eesp-v0-transport", body, co=3)
    assert isinstance(out, Dropped) and out.requirement == "CRYPTOFF-WITHIN-PAYLOAD"


def test_psp_header_malformations():
    p = named("psp-v0")
    codec = codec_for(p)
    wire = Sender(p, keymat_for(p), SPI).seal(0, b"x" * 30, 6).wire
    cases = [(wire[:3] + bytes([wire[3] & 0xFE]) + wire[4:], errors.BadFixedBit),
             (wire[:3] + bytes([wire[3] | 0x04]) + wire[4:], errors.BadVersion),
             (wire[:3] + bytes([wire[3] | 0x02]) + wire[4:], errors.BadOption),
             (wire[:2] + bytes([wire[2] | 0x80]) + wire[3:], errors.ReservedBitsSet),
             (wire[:2] + bytes([20]) + wire[3:], errors.CryptOffsetBeyondPayload),
             (wire[:1] + b"\x02" + wire[2:], errors.BadOption),
             (wire[:31], errors.Truncated)]
    for data, cls in cases:
        with pytest.raises(cls):
            codec.decode(data)


def test_esp_truncated_and_misaligned():
    p = named("esp")
    codec = codec_for(p)
    wire = Sender(p, keymat_for(p), SPI).seal(0, ipv4_packet(b"abc")).wire
    with pytest.raises(errors.Truncated):
        codec.decode(wire[:25])
    with pytest.raises(errors.Misaligned):
        codec.decode(wire + b"\x00")
