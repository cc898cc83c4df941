"""Tests for suites.gcm_forgery: GF(2^128) and GHASH against SP 800-38D and the
``cryptography`` AES-GCM, H recovery from nonce-reusing messages, forgeries the real
AES-GCM accepts, and no forgery when the nonces differ."""

from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from suites import gcm_forgery as gf

# Example counts come from the Hypothesis profile (tests/conftest.py: "ci" 60, "certify"
# 2000); a recovery costs ~15-40 ms, so "ci" keeps this file at a few seconds.
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
ONE = 1 << 127  # the field's 1 in GCM bit order (leftmost bit = x^0)

elems = st.integers(min_value=0, max_value=(1 << 128) - 1)
keys = st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
nonces = st.binary(min_size=12, max_size=12)


def ref_mul(x: int, y: int) -> int:
    """SP 800-38D Algorithm 1 (6.3), bit by bit, as written in the spec."""
    r = 0xE1 << 120
    z, v = 0, y
    for i in range(128):
        if (x >> (127 - i)) & 1:
            z ^= v
        v = (v >> 1) ^ r if v & 1 else v >> 1
    return z


def aes_block(key: bytes, block: bytes) -> int:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return int.from_bytes(enc.update(block) + enc.finalize(), "big")


def true_h(key: bytes) -> int:
    return aes_block(key, bytes(16))


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes, bytes]:
    out = AESGCM(key).encrypt(nonce, plaintext, aad)
    return aad, out[:-16], out[-16:]


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


# messages as the brief describes them: plaintext 1..200 bytes, AAD 8..40 bytes
messages = st.tuples(st.binary(min_size=1, max_size=200), st.binary(min_size=8, max_size=40))


# ----------------------------------------------------------------------------- field, GHASH

@settings(**SETTINGS)
@given(elems, elems)
def test_gf_mul_matches_sp800_38d_algorithm_1(x, y):
    assert gf.gf_mul(x, y) == ref_mul(x, y)
    assert gf.gf_mul(x, ONE) == x
    assert gf.gf_mul(x, y) == gf.gf_mul(y, x)


def test_ghash_known_answer():
    # McGrew-Viega GCM spec, test case 2: K = 0^128, IV = 0^96, P = 0^128.
    h = int("66e94bd4ef8a2c3b884cfa59ca342b2e", 16)
    c = bytes.fromhex("0388dace60b6a392f328c2b971b2fe78")
    assert true_h(bytes(16)) == h
    assert gf.ghash(h, b"", c) == int("f38cbb1ad69223dcc3457ae5b6b0f885", 16)
    assert gf.ghash(h, b"", b"") == 0  # lengths block 0: GHASH of nothing is 0


@settings(**SETTINGS)
@given(key=keys, nonce=nonces,
       aad=st.one_of(st.just(b""), st.binary(max_size=70)),
       pt=st.one_of(st.just(b""), st.binary(max_size=70)))
def test_ghash_xor_ek_j0_is_the_aesgcm_tag(key, nonce, aad, pt):
    a, ct, tag = seal(key, nonce, pt, aad)
    ek_j0 = aes_block(key, nonce + b"\x00\x00\x00\x01")
    assert (gf.ghash(true_h(key), a, ct) ^ ek_j0).to_bytes(16, "big") == tag


# ----------------------------------------------------------------------------- root finding

def poly_mul(a: list[int], b: list[int]) -> list[int]:
    r = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            r[i + j] ^= ref_mul(x, y)
    return r


def trace_one() -> int:
    """The least element (as an int) of trace 1."""
    c = 1
    while trace(c) != ONE:
        c += 1
    return c


def trace(c: int) -> int:
    t, acc = c, c
    for _ in range(127):
        t = gf.gf_mul(t, t)
        acc ^= t
    return acc


@settings(**SETTINGS)
@given(roots=st.lists(elems, min_size=1, max_size=6, unique=True),
       c=elems, repeat=st.booleans())
def test_find_roots_finds_exactly_the_planted_roots(roots, c, repeat):
    # (X - r1)...(X - rk) * (X^2 + X + c') with Tr(c') = 1 (irreducible: no roots),
    # optionally with the first root squared (not square-free).
    if trace(c) != ONE:
        c ^= trace_one()  # the trace is GF(2)-linear
    p = [c, ONE, ONE]
    for r in roots + roots[:1] * repeat:
        p = poly_mul(p, [r, ONE])
    assert sorted(gf.find_roots(p)) == sorted(roots)


def test_find_roots_irreducible_quadratic_has_none():
    assert gf.find_roots([trace_one(), ONE, ONE]) == []
    with pytest.raises(gf.GcmForgeryError):
        gf.find_roots([0, 0])


# ----------------------------------------------------------------------------- recovery

@settings(**SETTINGS)
@given(key=keys, nonce=nonces, m1=messages, m2=messages)
def test_recover_h_two_messages(key, nonce, m1, m2):
    assume(m1 != m2)
    s1, s2 = seal(key, nonce, *m1), seal(key, nonce, *m2)
    cands = gf.recover_h([s1, s2])
    assert true_h(key) in cands
    # every candidate is a root of the tag equation: it reproduces s2's tag from s1
    for h in cands:
        assert gf.forge_tag(h, s1, s2[0], s2[1]) == s2[2]


@settings(**SETTINGS)
@given(key=keys, nonce=nonces, ms=st.lists(messages, min_size=3, max_size=3, unique=True))
def test_recover_h_three_messages(key, nonce, ms):
    samples = [seal(key, nonce, *m) for m in ms]
    cands = gf.recover_h(samples)
    assert true_h(key) in cands
    for h in cands:  # each candidate explains every sample
        assert all(gf.forge_tag(h, samples[0], a, c) == t for a, c, t in samples)


def test_recover_h_three_random_messages_single_candidate():
    # Unstructured messages (drawn from a seeded PRNG, not shrunk by Hypothesis): the
    # third sample leaves H alone. A spurious common root of two unrelated difference
    # polynomials has probability about deg^2 / 2^128. Pairs alone often leave several.
    rng = random.Random(20240229)
    pair_counts = []
    for _ in range(12):
        key, nonce = rng.randbytes(16), rng.randbytes(12)
        samples = [seal(key, nonce, rng.randbytes(rng.randint(1, 200)),
                        rng.randbytes(rng.randint(8, 40))) for _ in range(3)]
        assert gf.recover_h(samples) == [true_h(key)]
        pair_counts.append(len(gf.recover_h(samples[:2])))
    assert max(pair_counts) > 1  # else the third sample would not be shown to matter


def test_structured_samples_leave_several_candidates():
    # Same plaintext, AADs differing only in their single block: each difference is
    # d_i X^3 + c_i with c_i / d_i = H^3, so the three cube roots of H^3 all fit.
    key, nonce = bytes(range(16)), bytes(12)
    same = [seal(key, nonce, b"ping", b"SPI+seq-%d" % i) for i in range(4)]
    cands = gf.recover_h(same)
    assert len(cands) == 3 and true_h(key) in cands
    cube = lambda v: gf.gf_mul(v, gf.gf_mul(v, v))  # noqa: E731
    assert {cube(c) for c in cands} == {cube(true_h(key))}
    # a sample that differs elsewhere (another plaintext) narrows it to H
    other = seal(key, nonce, b"pong", b"SPI+seq-0")
    assert gf.recover_h(same + [other]) == [true_h(key)]


# ----------------------------------------------------------------------------- forgery

@settings(**SETTINGS)
@given(key=keys, nonce=nonces, m1=messages, m2=messages,
       aad_new=st.binary(min_size=8, max_size=40), data=st.data())
def test_forged_packet_is_accepted_by_aesgcm(key, nonce, m1, m2, aad_new, data):
    assume(m1 != m2)
    (p1, _), h = m1, true_h(key)
    s1, s2 = seal(key, nonce, *m1), seal(key, nonce, *m2)
    # the chosen plaintext: p1 with bits flipped, possibly truncated
    n = data.draw(st.integers(min_value=1, max_value=len(p1)), label="new length")
    flips = data.draw(st.binary(min_size=n, max_size=n), label="bit flips")
    target = xor(p1[:n], flips)
    ct_new = xor(s1[1][:n], flips)  # same keystream: ciphertext flips = plaintext flips
    assert ct_new == xor(gf.keystream(s1[1], p1), target)

    tags = gf.forge_from_collision([s1, s2], aad_new, ct_new)
    accepted = []
    for tag in tags:
        try:
            accepted.append(AESGCM(key).decrypt(nonce, ct_new + tag, aad_new))
        except InvalidTag:
            pass
    # The true-H candidate passes. Others may pass too when the forgery differs from s1
    # only where s2 does (e.g. both only in one AAD block: every root of d H^k = c gives
    # the same tag), but whatever passes decrypts to the target.
    assert gf.forge_tag(h, s1, aad_new, ct_new) in tags
    assert accepted and set(accepted) == {target}
    # and it is bit for bit what the key holder would have sent
    assert ct_new + gf.forge_tag(h, s2, aad_new, ct_new) == AESGCM(key).encrypt(
        nonce, target, aad_new)


@settings(**SETTINGS)
@given(key=keys, n1=nonces, n2=nonces, m1=messages, m2=messages,
       aad_new=st.binary(min_size=8, max_size=40))
def test_no_forgery_across_different_nonces(key, n1, n2, m1, m2, aad_new):
    assume(n1 != n2 and m1 != m2)
    s1, s2 = seal(key, n1, *m1), seal(key, n2, *m2)
    ct_new = bytes([s1[1][0] ^ 1]) + s1[1][1:]
    try:
        cands = gf.recover_h([s1, s2])
    except gf.NoRoot:
        return  # no candidate at all: nothing to forge with
    assert true_h(key) not in cands
    for tag in gf.forge_from_collision([s1, s2], aad_new, ct_new):
        with pytest.raises(InvalidTag):
            AESGCM(key).decrypt(n1, ct_new + tag, aad_new)


def test_no_root_is_reported_for_unrelated_samples():
    # Three samples under three nonces: a common root of the two difference polynomials
    # has negligible probability.
    key = bytes(range(16))
    samples = [seal(key, bytes([i]) * 12, bytes([i]) * 40, b"aad-%d" % i) for i in range(3)]
    with pytest.raises(gf.NoRoot):
        gf.recover_h(samples)


# ----------------------------------------------------------------------------- errors

def test_truncated_tags_are_out_of_scope():
    key, nonce = bytes(16), bytes(12)
    s1, s2 = seal(key, nonce, b"a" * 20, b"x" * 8), seal(key, nonce, b"b" * 20, b"y" * 8)
    for n in (8, 12):
        with pytest.raises(gf.TruncatedTag) as e:
            gf.recover_h([(s1[0], s1[1], s1[2][:n]), (s2[0], s2[1], s2[2][:n])])
        assert "Ferguson" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(gf.TruncatedTag):
            gf.forge_tag(true_h(key), (s1[0], s1[1], s1[2][:n]), b"", b"")
    assert issubclass(gf.TruncatedTag, gf.GcmForgeryError)
    assert issubclass(gf.GcmForgeryError, ValueError)


def test_not_enough_samples():
    key, nonce = bytes(16), bytes(12)
    s1 = seal(key, nonce, b"hello", b"12345678")
    for samples in ([], [s1], [s1, s1, s1]):
        with pytest.raises(gf.NotEnoughSamples):
            gf.recover_h(samples)


def test_same_message_different_tags_has_no_root():
    s1 = seal(bytes(16), bytes(12), b"hello", b"12345678")
    s2 = seal(bytes(16), bytes(12), b"hello", b"12345678")
    bad = (s2[0], s2[1], bytes([s2[2][0] ^ 1]) + s2[2][1:])
    with pytest.raises(gf.NoRoot):
        gf.recover_h([s1, bad])


# ----------------------------------------------------------------------------- keystream

@settings(**SETTINGS)
@given(key=st.binary(min_size=32, max_size=32), n1=nonces, n2=nonces,
       p1=st.binary(min_size=16, max_size=100), p2=st.binary(min_size=16, max_size=100),
       aead=st.sampled_from([AESGCM, ChaCha20Poly1305]))
def test_keystream_reuse_is_detected(key, n1, n2, p1, p2, aead):
    c = aead(key)
    k1 = gf.keystream(c.encrypt(n1, p1, b""), p1)
    k_same = gf.keystream(c.encrypt(n1, p2, b"other"), p2)
    k_other = gf.keystream(c.encrypt(n2, p2, b""), p2)
    assert len(k1) == len(p1)  # the appended tag is not part of the keystream
    assert gf.same_keystream(k1, k_same, 16)
    assert gf.same_keystream(k1, k_other, 16) == (n1 == n2)


def test_same_keystream_needs_min_overlap():
    ks = bytes(range(40))
    assert gf.same_keystream(ks, ks[:16], 16)
    assert not gf.same_keystream(ks, ks[:15], 16)
    assert not gf.same_keystream(ks, bytes([ks[0] ^ 1]) + ks[1:], 16)
    assert not gf.same_keystream(ks, ks[:30] + bytes([ks[30] ^ 0x80]) + ks[31:], 16)
    with pytest.raises(gf.GcmForgeryError):
        gf.same_keystream(ks, ks, 0)
    assert gf.keystream(b"\x0f\xf0", b"\xff") == b"\xf0"
