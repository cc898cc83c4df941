"""Sender and receiver behaviour: sub-SAs, windows, ICV, limits, nonce uniqueness."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from spec_model import (NAMED, ConfigError, Delivered, DropReason, NonceLedger,
                        Profile, ProfileError, Receiver, Sender, SeqWire, named)
from spec_model.errors import CounterExhausted, HardLimitReached, SubSaOutOfRange
from spec_model.wire import codec_for

from .builders import SPI, keymat_for, payload_for
from .test_profile import all_structural_profiles


def pair(profile: Profile):
    km = keymat_for(profile)
    return Sender(profile, km, SPI), Receiver(profile, km, SPI)


def send(sender: Sender, sub_sa: int = 0, body: bytes = b"data"):
    payload, nh = payload_for(sender.profile, body)
    return sender.seal(sub_sa, payload, nh)


# --- sub-SAs ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["esp-subsa-spi", "esp-subsa-salt", "esp-subsa-seq",
                                  "eesp-v0", "psp-v0"])
def test_sub_sa_ids_on_the_wire(name):
    p = named(name)
    s, r = pair(p)
    codec = codec_for(p)
    for i in range(p.n_sub_sas):
        sealed = send(s, i)
        pkt = codec.decode(sealed.wire)
        out = r.open(sealed.wire)
        assert isinstance(out, Delivered) and out.sub_sa == i
        if p.subsa.value == "spi":
            assert pkt.spi == SPI | i
        elif p.subsa.value == "header":
            assert pkt.session_id == i
        elif p.subsa.value == "seq":
            assert pkt.seq >> 30 == i and pkt.seq & 0x3FFFFFFF == 1


def test_sender_refuses_sub_sa_out_of_range():
    s, _ = pair(named("eesp-v0"))
    with pytest.raises(SubSaOutOfRange):
        send(s, 4)


def test_receiver_drops_sub_sa_out_of_range_before_icv():
    p = named("eesp-v0").replace(n_sub_sas=3)
    s, r = pair(p)
    big = named("eesp-v0")           # same keys, 4 sub-SAs: sub-SA 3 is out of range for p
    wire = Sender(big, keymat_for(p), SPI).seal(3, payload_for(big)[0]).wire
    out = r.open(wire)
    assert out.reason is DropReason.SUBSA_OUT_OF_RANGE and out.requirement == "SUBSA-ID-RANGE"
    assert 3 not in r.windows


def test_windows_are_per_sub_sa_and_created_after_authentication():
    p = named("eesp-v0")
    s, r = pair(p)
    sealed = [send(s, 1) for _ in range(3)]
    forged = bytearray(send(s, 2).wire)
    forged[-1] ^= 1
    assert r.open(bytes(forged)).reason is DropReason.ICV
    assert r.windows == {}            # no window for a sub-SA that never authenticated
    for x in sealed:
        assert isinstance(r.open(x.wire), Delivered)
    assert set(r.windows) == {1}
    # sub-SA 0 starts its own counter at 1: not a replay of sub-SA 1's packet 1
    assert isinstance(r.open(send(s, 0).wire), Delivered)
    assert r.open(sealed[0].wire).reason is DropReason.REPLAY


# --- replay, ICV, window movement ----------------------------------------------------------

@pytest.mark.parametrize("name", ["esp", "esp-esn", "esp-iiv", "esp-subsa-seq", "eesp-v0",
                                  "eesp-v0-transport"])
def test_window_edges(name):
    p = named(name)
    s, r = pair(p)
    w = p.window
    packets = [send(s) for _ in range(w + 2)]
    # deliver the newest first: T = w + 2
    assert isinstance(r.open(packets[-1].wire), Delivered)
    top = w + 2
    assert isinstance(r.open(packets[top - (w - 1) - 1].wire), Delivered)   # W-1 behind
    # Left of the window. With ESN, RFC 4303 Appendix A (case A, Seql < Bl) takes such a
    # packet for one of the next subspace (Seqh = Th + 1), so its ICV fails instead.
    left = {DropReason.TOO_OLD, DropReason.ICV} if p.seq is SeqWire.ESN else {DropReason.TOO_OLD}
    assert r.open(packets[top - w - 1].wire).reason in left                  # W behind
    assert r.open(packets[top - (w + 1) - 1].wire).reason in left
    assert r.open(packets[-1].wire).reason is DropReason.REPLAY


@pytest.mark.parametrize("name", ["esp", "esp-esn", "eesp-v0", "esp-subsa-spi"])
def test_bit_flip_fails_icv_and_does_not_move_window(name):
    p = named(name)
    s, r = pair(p)
    first = send(s)
    assert isinstance(r.open(first.wire), Delivered)
    later = [send(s) for _ in range(p.window + 5)]
    flipped = bytearray(later[-1].wire)
    flipped[len(flipped) // 2] ^= 0x40
    out = r.open(bytes(flipped))
    assert out.reason is DropReason.ICV and out.requirement == "ICV-VERIFY"
    assert r.top(0) == first.seq
    assert isinstance(r.open(later[0].wire), Delivered)     # the window did not move


def test_forged_high_sequence_number_does_not_move_window():
    p = named("esp")
    s, r = pair(p)
    pkt = send(s)
    codec = codec_for(p)
    decoded = codec.decode(pkt.wire)
    forged = codec.encode(decoded.__class__(decoded.spi, 0xFFFFFF00, decoded.iv,
                                            decoded.ciphertext, decoded.icv))
    assert r.open(forged).reason is DropReason.ICV
    assert isinstance(r.open(pkt.wire), Delivered)


def test_sequence_number_zero_is_never_accepted():
    p = named("esp")
    s, r = pair(p)
    s.set_counter(0, 0)
    pkt = send(s)
    codec = codec_for(p)
    d = codec.decode(pkt.wire)
    zero = codec.encode(d.__class__(d.spi, 0, d.iv, d.ciphertext, d.icv))
    out = r.open(zero)
    assert out.reason is DropReason.REPLAY and out.requirement == "REPLAY-SEQ-ZERO"


@pytest.mark.parametrize("case_top", [(1 << 32) + 5, (3 << 32) - 10])
def test_esn_stream_across_wrap_reordered(case_top):
    """An ESN sender crosses 2^32 with packets reordered inside the window: every packet is
    delivered with its full 64-bit number (RFC 4303 Appendix A cases A and B)."""
    p = named("esp-esn")
    s, r = pair(p)
    start = case_top - 40
    s.set_counter(0, start)
    r.jump(0, start)
    packets = [send(s) for _ in range(60)]
    rng = random.Random(7)
    order = list(range(60))
    for i in range(0, 60, 10):
        chunk = order[i:i + 10]
        rng.shuffle(chunk)
        order[i:i + 10] = chunk
    for i in order:
        out = r.open(packets[i].wire)
        assert isinstance(out, Delivered), (i, out)
        assert out.seq == packets[i].seq


def test_dummy_packet_discarded():
    p = named("esp")
    s, r = pair(p)
    out = r.open(s.seal(0, b"\x00" * 10, 59).wire)
    assert out.reason is DropReason.DUMMY and out.requirement == "WIRE-DUMMY-DISCARD"


def test_unknown_spi():
    p = named("esp")
    s = Sender(p, keymat_for(p), SPI + 4)
    r = Receiver(p, keymat_for(p), SPI)
    assert r.open(send(s).wire).reason is DropReason.UNKNOWN_SPI


# --- limits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,counter_max", [("esp", (1 << 32) - 1),
                                              ("esp-subsa-seq", (1 << 30) - 1),
                                              ("esp-subsa-spi", (1 << 62) - 1),
                                              ("esp-esn", (1 << 64) - 1),
                                              ("eesp-v0", (1 << 64) - 1)])
def test_counter_never_wraps(name, counter_max):
    p = named(name)
    s, r = pair(p)
    s.set_counter(0, counter_max - 1)
    r.jump(0, counter_max - 1)
    last = send(s)
    assert last.counter == counter_max
    assert isinstance(r.open(last.wire), Delivered)
    with pytest.raises(CounterExhausted) as info:
        send(s)
    assert info.value.requirement == "SEQ-NO-WRAP"
    with pytest.raises(ConfigError):
        s.set_counter(0, counter_max + 1)


def test_hard_limit_divided_by_n_without_sums():
    p = named("esp-subsa-spi").replace(hard_packets=100)
    s, _ = pair(p)
    for _ in range(25):
        send(s, 2)
    with pytest.raises(HardLimitReached) as info:
        send(s, 2)
    assert info.value.requirement == "LIMIT-HARD-PER-SUBSA"
    send(s, 1)                                            # other sub-SAs keep their share


def test_hard_limit_on_the_sum_with_sums_kept():
    p = named("esp-subsa-spi").replace(hard_packets=100, sums_kept=True)
    s, _ = pair(p)
    for _ in range(100):
        send(s, 0)                                        # one sub-SA may take it all
    with pytest.raises(HardLimitReached) as info:
        send(s, 3)
    assert info.value.requirement == "LIMIT-HARD-SUM"


def test_byte_limits():
    p = named("esp-subsa-spi").replace(hard_bytes=4000)
    s, _ = pair(p)
    payload, _ = payload_for(p, bytes(480))               # 500 bytes
    s.seal(0, payload)
    s.seal(0, payload)
    with pytest.raises(HardLimitReached):
        s.seal(0, payload)                                # 1500 > 4000 / 4


def test_rekey_due_on_max_times_n_or_sum():
    p = named("esp-subsa-spi").replace(soft_packets=40, hard_packets=400)
    s, _ = pair(p)
    for _ in range(9):
        send(s, 0)
    assert s.rekey_due() is None
    send(s, 0)
    assert s.rekey_due() == "LIMIT-REKEY-MAX-N"          # 10 x 4 >= 40
    q = p.replace(sums_kept=True)
    s, _ = pair(q)
    for i in range(39):
        send(s, i % 4)
    assert s.rekey_due() is None
    send(s, 3)
    assert s.rekey_due() == "LIMIT-REKEY-SUM"


def test_shared_key_capped_at_2_to_64_packets():
    p = named("esp-subsa-salt")                           # ESN counters, one key, 4 sub-SAs
    s, _ = pair(p)
    s.set_counter(0, 1 << 62)
    with pytest.raises(HardLimitReached) as info:
        send(s, 0)
    assert info.value.requirement == "LIMIT-2POW64-SHARED-KEY"
    q = p.replace(sums_kept=True)
    s, _ = pair(q)
    for i in range(3):
        s.set_counter(i, 1 << 62)
    s.set_counter(3, (1 << 62) - 1)
    send(s, 3)                                            # the 2^64-th packet
    with pytest.raises(HardLimitReached):
        send(s, 1)


def test_per_sub_sa_keys_lift_the_shared_cap():
    p = named("eesp-v0")
    s, _ = pair(p)
    for i in range(p.n_sub_sas):
        s.set_counter(i, (1 << 64) - 2)
        send(s, i)


def test_receiver_enforces_per_sub_sa_hard_limit():
    p = named("esp-subsa-spi").replace(hard_packets=100)
    s, r = pair(p)
    s.policy = type(s.policy).of(named("esp-subsa-spi"))  # a sender that ignores the limit
    s.set_counter(1, 25)
    r.jump(1, 25)
    out = r.open(send(s, 1).wire)
    assert out.reason is DropReason.LIMIT and out.requirement == "LIMIT-RECEIVER-ENFORCE"


# --- nonce uniqueness ----------------------------------------------------------------------------

def _valid_16():
    out = []
    for axes in all_structural_profiles():
        if axes["n_sub_sas"] != 16:
            continue
        try:
            out.append(Profile(**axes))
        except ProfileError:
            pass
    return out


@pytest.mark.parametrize("profile", _valid_16(), ids=lambda p: "-".join(
    str(v) for k, v in p.axes().items() if k in ("framing", "seq", "subsa", "nonce", "mode")))
def test_no_nonce_repeats_over_1e5_packets_across_16_sub_sas(profile):
    """10^5 packets spread over 16 sub-SAs by a random schedule: every (key, nonce) the
    sender uses is distinct (NONCE-UNIQUE-PER-KEY). Payloads are empty to keep it fast."""
    s = Sender(profile, keymat_for(profile), SPI)
    ledger = NonceLedger()
    rng = random.Random(profile.axes().__repr__())
    payload, nh = payload_for(profile)
    for n in range(100_000):
        sealed = s.seal(rng.randrange(16), payload, nh)
        ledger.record(sealed.key_id, sealed.nonce, n, sealed.sub_sa)
    assert ledger.reuses == []
    assert len(ledger) == 100_000


def test_ledger_reports_reuse_across_sub_sas():
    """Two senders that share key and salt and each count from 1 — the insecure case the
    profile rules refuse — collide on their first packets, and the ledger names both."""
    p = named("esp")
    a = Sender(p, keymat_for(p), SPI)
    b = Sender(p, keymat_for(p), SPI + 4)
    ledger = NonceLedger()
    x, y = send(a), send(b)
    assert ledger.record(x.key_id, x.nonce, 1, 0) is None
    reuse = ledger.record(y.key_id, y.nonce, 2, 1)
    assert reuse is not None and (reuse.first_packet, reuse.second_packet) == (1, 2)
    assert "packet 1 (sub-SA 0)" in str(reuse) and reuse.requirement == "NONCE-UNIQUE-PER-KEY"


@settings(max_examples=40)
@given(st.sampled_from(sorted(NAMED)), st.lists(st.tuples(st.integers(0, 15),
                                                          st.integers(0, 3)), max_size=60))
def test_stream_with_duplicates_matches_set_oracle(name, script):
    """Random sends on random sub-SAs, each delivered 0..3 times in shuffled order: the
    receiver delivers each packet exactly once when it is inside the window."""
    p = NAMED[name]
    s, r = pair(p)
    wires = []
    for sub, copies in script:
        sealed = send(s, sub % p.n_sub_sas)
        wires += [sealed] * copies
    random.Random(len(wires)).shuffle(wires)
    delivered = set()
    for x in wires:
        out = r.open(x.wire)
        key = (x.sub_sa, x.counter)
        if isinstance(out, Delivered):
            assert key not in delivered or not p.replay_protected
            delivered.add(key)
        else:
            assert p.replay_protected and out.reason in (DropReason.REPLAY, DropReason.TOO_OLD)
