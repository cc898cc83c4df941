"""Showing the impact of AEAD nonce reuse: GHASH key recovery and GCM tag forgery.

Theory of operation
-------------------
AES-GCM (NIST SP 800-38D) with a 96-bit nonce N authenticates with

    tag = GHASH_H(A, C) xor E_K(J0),   H = E_K(0^128),   J0 = N || 0x00000001

where GHASH_H(A, C) = X_1 H^m + X_2 H^(m-1) + ... + X_m H over GF(2^128); X_1..X_m are
the zero-padded AAD blocks, the zero-padded ciphertext blocks and the block of the two
64-bit bit lengths. Two messages under the same (K, N) share the mask E_K(J0), so

    tag1 xor tag2 = GHASH_H(A1, C1) xor GHASH_H(A2, C2)

is a polynomial equation in H whose coefficients the attacker knows (Joux, "Authentication
failures in NIST version of GCM", the "forbidden attack"). Its roots in GF(2^128) are the
candidates for H: ``recover_h`` makes the difference polynomial monic, takes its gcd with
X^(2^128) - X (computed by 128 squarings modulo the polynomial), which keeps exactly the
product of the distinct linear factors, then splits that with Cantor-Zassenhaus for
characteristic 2: for random r, gcd(g, Tr(rX) mod g), where Tr(u) = sum of u^(2^i) for
i < 128, separates the roots a with Tr(r a) = 0 from those with Tr(r a) = 1. Every further
sample under the same (K, N) gives another polynomial with root H; the roots common to all
are those of the gcd of all the polynomials, which is how candidate sets are intersected.
A polynomial of degree d has at most d roots, so a pair gives at most max(blocks)
candidates; for unrelated messages the count is 1 + Poisson(1) (1 to 3 in 92% of pairs), and
a third sample leaves H alone. Not so when the samples differ only in a structured way:
if every pair differs in one block only, at the same position (e.g. same plaintext, AAD
differing in one block), each difference polynomial is d_i X^k + c_i with c_i/d_i = H^k,
the gcd is X^k + H^k, and all its roots, gcd(k, 2^128 - 1) of them (3 for k = 3: one
AAD block, one ciphertext block, the length block), stay candidates however many such
samples come. A sample that differs elsewhere narrows them; otherwise try each candidate.

Once H is known the mask follows from any known message, E_K(J0) = tag xor GHASH_H(A, C),
and ``forge_tag`` authenticates any (A', C') under the same (K, N): the receiver decrypts
C' with the same CTR keystream, so flipping ciphertext bits flips the same plaintext bits.

Representation: a field element is a Python int holding the 16-byte block big-endian, the
bit-reflected order of SP 800-38D (the leftmost bit of the block is the coefficient of
x^0); ``gf_mul`` is the spec's "•". Internally elements are bit-reversed once so bit i is
the coefficient of x^i and multiplication is a carry-less product reduced modulo
x^128 + x^7 + x^2 + x + 1. GHASH under a fixed H uses a 16 x 256 table (Shoup's method);
polynomial arithmetic modulo a fixed polynomial packs the coefficients into one integer
(256 bits a slot), so squaring is a bit spread and reduction multiplies all slots at once.

Scope: recovery needs full 16-byte tags. With tags truncated to t bits (ESP's 8 and
12-byte ICVs) only t bits of GHASH are seen per message and the equation above does not
exist; Ferguson's attack ("Authentication weaknesses in GCM", 2005) on truncated tags
is a different, linear-algebra attack and is not implemented: ``TruncatedTag`` is raised.

ChaCha20-Poly1305 (RFC 8439): nonce reuse reuses the ChaCha20 keystream, which
``keystream`` and ``same_keystream`` show from known plaintexts, and with it the
one-time Poly1305 key (r, s) taken from keystream block 0. Forging from that is a
different algebra (mod 2^130 - 5 with s added mod 2^128) and is not done here.

All functions are pure: no I/O, and the randomness of the root splitting comes from a
fixed-seed generator (the result does not depend on it).
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Sequence

__all__ = [
    "GcmForgeryError",
    "NotEnoughSamples",
    "NoRoot",
    "TruncatedTag",
    "TAG_LEN",
    "gf_mul",
    "ghash",
    "find_roots",
    "recover_h",
    "forge_tag",
    "forge_from_collision",
    "keystream",
    "same_keystream",
]

TAG_LEN = 16
_BLOCK = 16


class GcmForgeryError(ValueError):
    """Base class: the samples or arguments do not allow the requested computation."""


class NotEnoughSamples(GcmForgeryError):
    """Fewer than two distinct (AAD, ciphertext) samples under one key and nonce."""


class NoRoot(GcmForgeryError):
    """The tag equation has no root in GF(2^128): the samples do not share key and nonce."""


class TruncatedTag(GcmForgeryError):
    """A tag shorter than 16 bytes: recovery would need Ferguson's attack (out of scope)."""


# --------------------------------------------------------------------------------------
# GF(2^128)
# --------------------------------------------------------------------------------------

_M128 = (1 << 128) - 1
_M256 = (1 << 256) - 1
_SLOT = 256  # bits per coefficient slot in a packed polynomial
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))  # bit-reverse each byte


def _to_nat(x: int) -> int:
    """GCM-order element (block read big-endian) -> bit i is the coefficient of x^i."""
    return int.from_bytes(x.to_bytes(16, "big").translate(_REV8), "little")


def _from_nat(n: int) -> int:
    return int.from_bytes(n.to_bytes(16, "little").translate(_REV8), "big")


def _reduce(p: int) -> int:
    """Reduce a polynomial of degree < 256 modulo x^128 + x^7 + x^2 + x + 1."""
    hi = p >> 128
    p = (p & _M128) ^ hi ^ (hi << 1) ^ (hi << 2) ^ (hi << 7)
    hi = p >> 128  # at most 7 bits
    return (p & _M128) ^ hi ^ (hi << 1) ^ (hi << 2) ^ (hi << 7)


def _clmul(a: int, b: int) -> int:
    """Carry-less product of two 128-bit polynomials (4-bit window on a)."""
    t = [0] * 16
    t[1] = a
    for k in range(2, 16, 2):
        t[k] = t[k >> 1] << 1
        t[k + 1] = t[k] ^ a
    r = 0
    for byte in b.to_bytes(16, "big"):
        r = (r << 8) ^ (t[byte >> 4] << 4) ^ t[byte & 15]
    return r


def _mul(a: int, b: int) -> int:
    """Product of two field elements in the natural (bit i = x^i) representation."""
    return _reduce(_clmul(a, b))


def _inv(a: int) -> int:
    """Inverse in GF(2^128), natural representation (extended Euclid over GF(2)[x])."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^128)")
    u, v = a, (1 << 128) | 0x87
    g1, g2 = 1, 0
    while u != 1:
        j = u.bit_length() - v.bit_length()
        if j < 0:
            u, v, g1, g2 = v, u, g2, g1
            j = -j
        u ^= v << j
        g1 ^= g2 << j
    return _reduce(g1)


def gf_mul(x: int, y: int) -> int:
    """x • y of SP 800-38D (6.3), on 128-bit ints holding blocks big-endian."""
    return _from_nat(_mul(_to_nat(x), _to_nat(y)))


# --------------------------------------------------------------------------------------
# GHASH
# --------------------------------------------------------------------------------------

def _ghash_blocks(aad: bytes, ciphertext: bytes) -> list[int]:
    """X_1..X_m of GHASH_H(A, C) (SP 800-38D 7.1 step 5), natural representation."""
    data = (bytes(aad) + bytes(-len(aad) % _BLOCK) + bytes(ciphertext)
            + bytes(-len(ciphertext) % _BLOCK)
            + struct.pack(">QQ", 8 * len(aad), 8 * len(ciphertext)))
    tr = data.translate(_REV8)
    return [int.from_bytes(tr[i:i + _BLOCK], "little") for i in range(0, len(tr), _BLOCK)]


@functools.lru_cache(maxsize=64)
def _h_table(hn: int) -> tuple[tuple[int, ...], ...]:
    """Shoup 8-bit table: row i, entry n is (n x^(8i)) * H, for multiplying by fixed H."""
    rows = []
    base = hn
    for _ in range(16):
        row = [0] * 256
        v = base
        for j in range(8):
            row[1 << j] = v
            v <<= 1
            if v >> 128:
                v = (v & _M128) ^ 0x87
        for n in range(3, 256):
            if n & (n - 1):
                row[n] = row[n & -n] ^ row[n & (n - 1)]
        rows.append(tuple(row))
        base = v  # H x^(8(i+1))
    return tuple(rows)


def _check_elem(name: str, v: int) -> None:
    if not isinstance(v, int) or not 0 <= v <= _M128:
        raise GcmForgeryError(f"{name} must be an int in [0, 2^128), got {v!r}")


def ghash(h: int, aad: bytes, ciphertext: bytes) -> int:
    """GHASH_H(A, C) of SP 800-38D (7.1 steps 5-6) as a 128-bit int (block big-endian).

    ``h`` is H = E_K(0^128) as an int read big-endian. With a 96-bit nonce the GCM tag is
    ``(ghash(h, aad, ct) ^ E_K(nonce || 0x00000001)).to_bytes(16, "big")``.
    """
    _check_elem("h", h)
    table = _h_table(_to_nat(h))
    y = 0
    for x in _ghash_blocks(aad, ciphertext):
        r = 0
        for row, byte in zip(table, (y ^ x).to_bytes(16, "little")):
            r ^= row[byte]
        y = r
    return _from_nat(y)


# --------------------------------------------------------------------------------------
# Polynomials over GF(2^128): lists of natural-representation coefficients, lowest first,
# no trailing zeros (the zero polynomial is []).
# --------------------------------------------------------------------------------------

def _trim(p: list[int]) -> list[int]:
    while p and p[-1] == 0:
        p.pop()
    return p


def _monic(p: list[int]) -> list[int]:
    if p[-1] == 1:
        return p
    inv = _inv(p[-1])
    return [_mul(c, inv) for c in p[:-1]] + [1]


def _pdivmod(a: list[int], b: list[int]) -> tuple[list[int], list[int]]:
    """Quotient and remainder of a by b (b nonzero)."""
    db = len(b) - 1
    inv = _inv(b[-1])
    r = list(a)
    q = [0] * max(len(a) - db, 0)
    for i in range(len(a) - 1, db - 1, -1):
        c = r[i]
        if c:
            c = _mul(c, inv)
            q[i - db] = c
            s = i - db
            for j in range(db):
                if b[j]:
                    r[s + j] ^= _mul(c, b[j])
            r[i] = 0
    return _trim(q), _trim(r[:db])


def _pgcd(a: list[int], b: list[int]) -> list[int]:
    """Monic gcd (or [] if both are zero)."""
    a, b = _trim(list(a)), _trim(list(b))
    while b:
        a, b = b, _pdivmod(a, b)[1]
    return _monic(a) if a else a


def _pmul(a: list[int], b: list[int]) -> list[int]:
    if not a or not b:
        return []
    r = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                if y:
                    r[i + j] ^= _mul(x, y)
    return _trim(r)


def _pack(p: Sequence[int]) -> int:
    v = 0
    for i, c in enumerate(p):
        v |= c << (_SLOT * i)
    return v


@functools.lru_cache(maxsize=None)
def _lo_mask(slots: int) -> int:
    return int(("0" * 128 + "1" * 128) * slots, 2)


def _reduce_packed(v: int, slots: int) -> int:
    """Reduce every 256-bit slot of a packed polynomial modulo the GCM field polynomial."""
    lo = _lo_mask(slots)
    hi = (v >> 128) & lo
    v = (v & lo) ^ hi ^ (hi << 1) ^ (hi << 2) ^ (hi << 7)
    hi = (v >> 128) & lo
    return (v & lo) ^ hi ^ (hi << 1) ^ (hi << 2) ^ (hi << 7)


def _unpack(v: int, slots: int) -> list[int]:
    v = _reduce_packed(v, slots)
    return _trim([(v >> (_SLOT * i)) & _M128 for i in range(slots)])


class _ModPoly:
    """Arithmetic modulo a fixed monic g of degree d >= 1 on packed polynomials.

    A packed polynomial holds coefficient i in bits [256 i, 256 i + 256); slots may hold
    unreduced carry-less products (< 2^255) until ``_reduce_packed``.
    """

    __slots__ = ("d", "_table", "_keep")

    def __init__(self, g: list[int]) -> None:
        assert g and g[-1] == 1 and len(g) >= 2
        self.d = len(g) - 1
        low = _pack(g[:-1])  # the monic leading term is implicit
        t = [0] * 256
        t[1] = low
        for n in range(2, 256):
            t[n] = t[n >> 1] << 1 if n % 2 == 0 else t[n - 1] ^ low
        self._table = t
        self._keep = (1 << (_SLOT * self.d)) - 1

    def square(self, v: int) -> int:
        """v^2 mod g; v reduced (coefficients < 2^128, degree < d). Result reduced."""
        if not v:
            return 0
        # Frobenius is additive in characteristic 2: (sum c_i X^i)^2 = sum c_i^2 X^(2i),
        # and squaring a GF(2)[x] polynomial spreads its bits: one spread does all slots.
        s = int("0".join(format(v, "b")), 2)
        d, t = self.d, self._table
        for i in range(2 * d - 2, d - 1, -1):
            c = _reduce((s >> (_SLOT * i)) & _M256)
            if c:
                r = 0
                for byte in c.to_bytes(16, "big"):
                    r = (r << 8) ^ t[byte]
                s ^= r << (_SLOT * (i - d))  # subtract c X^(i-d) g (slot i is dropped)
        return _reduce_packed(s & self._keep, d)


def _roots_of_split(g: list[int], rng: random.Random) -> list[int]:
    """Roots of a monic g that is a product of distinct linear factors (Cantor-Zassenhaus)."""
    d = len(g) - 1
    if d <= 0:
        return []
    if d == 1:
        return [g[0]]  # X + g0: root g0 (characteristic 2)
    mp = _ModPoly(g)
    for _ in range(64):  # each try splits with probability >= 1/2
        r = rng.getrandbits(128) or 1
        u = _pack([0, r])  # r X, already reduced since d >= 2
        acc = u
        for _ in range(127):
            u = mp.square(u)
            acc ^= u
        tr = _unpack(acc, d)  # Tr(r X) mod g: each root a maps to Tr(r a) in {0, 1}
        f = _pgcd(g, tr) if tr else g
        if 0 < len(f) - 1 < d:
            q = _pdivmod(g, f)[0]
            return _roots_of_split(f, rng) + _roots_of_split(q, rng)
    raise RuntimeError("root splitting did not converge: the polynomial is not a product "
                       "of distinct linear factors")


def _roots(p: list[int]) -> list[int]:
    """Distinct roots in GF(2^128) of a nonzero polynomial (natural representation)."""
    g = _monic(_trim(list(p)))
    d = len(g) - 1
    if d <= 0:
        return []
    if d >= 2:
        mp = _ModPoly(g)
        v = _pack([0, 1])  # X
        for _ in range(128):
            v = mp.square(v)
        xq = _unpack(v, d)  # X^(2^128) mod g
        xq += [0] * max(0, 2 - len(xq))
        xq[1] ^= 1  # X^(2^128) - X
        g = _pgcd(g, _trim(xq)) if _trim(xq) else g
    return sorted(_roots_of_split(g, random.Random(0x6A09E667F3BCC908)))


def find_roots(coeffs: Sequence[int]) -> list[int]:
    """Distinct roots in GF(2^128) of sum(coeffs[i] X^i), coefficients and roots as
    GCM-order ints (block big-endian). Sorted in the natural representation's order."""
    if not any(coeffs):
        raise GcmForgeryError("the zero polynomial has every element as a root")
    for c in coeffs:
        _check_elem("coefficient", c)
    return [_from_nat(r) for r in _roots([_to_nat(c) for c in coeffs])]


# --------------------------------------------------------------------------------------
# Recovery and forgery
# --------------------------------------------------------------------------------------

Sample = tuple[bytes, bytes, bytes]  # (aad, ciphertext, 16-byte tag)


def _check_tag(tag: bytes) -> None:
    if len(tag) < TAG_LEN:
        raise TruncatedTag(f"{len(tag)}-byte tag: H recovery needs full 16-byte tags "
                           "(truncated tags need Ferguson's attack, not implemented)")
    if len(tag) != TAG_LEN:
        raise GcmForgeryError(f"{len(tag)}-byte tag: GCM tags are at most 16 bytes")


def _tag_poly(aad: bytes, ciphertext: bytes, tag: bytes) -> list[int]:
    """GHASH_H(A, C) + tag as a polynomial in H (lowest degree first, natural rep)."""
    blocks = _ghash_blocks(aad, ciphertext)
    return [int.from_bytes(bytes(tag).translate(_REV8), "little")] + blocks[::-1]


def _padd(a: list[int], b: list[int]) -> list[int]:
    if len(a) < len(b):
        a, b = b, a
    r = list(a)
    for i, c in enumerate(b):
        r[i] ^= c
    return _trim(r)


def recover_h(samples: Sequence[Sample]) -> list[int]:
    """Candidates for H = E_K(0^128) from (aad, ciphertext, tag16) samples that share key
    and nonce; each candidate is an int holding the block big-endian. The true H is among
    them whenever the samples really share (K, nonce). With three or more unrelated
    samples there is one candidate; samples that all differ from each other in the same
    single block leave several (see the module docstring).

    Raises ``TruncatedTag`` for tags shorter than 16 bytes, ``NotEnoughSamples`` for
    fewer than two distinct (aad, ciphertext) pairs, ``NoRoot`` when no H fits them all.
    """
    seen: dict[tuple[bytes, bytes], bytes] = {}
    for s in samples:
        if len(s) != 3:
            raise GcmForgeryError("a sample is (aad, ciphertext, tag)")
        aad, ct, tag = (bytes(x) for x in s)
        _check_tag(tag)
        prev = seen.setdefault((aad, ct), tag)
        if prev != tag:
            raise NoRoot("two samples with the same AAD and ciphertext have different tags: "
                         "they do not share key and nonce")
    if len(seen) < 2:
        raise NotEnoughSamples(f"{len(seen)} distinct (aad, ciphertext) sample(s); "
                               "H recovery needs at least 2 under the same key and nonce")
    polys = [_tag_poly(a, c, t) for (a, c), t in seen.items()]
    g: list[int] = []
    for p in polys[1:]:
        g = _pgcd(g, _padd(polys[0], p))
        if len(g) == 1:
            break
    roots = _roots(g) if len(g) > 1 else []
    if not roots:
        raise NoRoot(f"no H in GF(2^128) fits all {len(seen)} samples: "
                     "they do not share key and nonce")
    return [_from_nat(r) for r in roots]


def forge_tag(h: int, known: Sample, aad: bytes, ciphertext: bytes) -> bytes:
    """The 16-byte tag of (aad, ciphertext) under the key and nonce of ``known``:
    GHASH_H(aad, ct) xor (tag_known xor GHASH_H(aad_known, ct_known)); the second term is
    E_K(J0), which is the same for every message under that key and nonce."""
    k_aad, k_ct, k_tag = known
    _check_tag(bytes(k_tag))
    mask = int.from_bytes(k_tag, "big") ^ ghash(h, k_aad, k_ct)
    return (ghash(h, aad, ciphertext) ^ mask).to_bytes(TAG_LEN, "big")


def forge_from_collision(samples: Sequence[Sample], aad_new: bytes,
                         ct_new: bytes) -> list[bytes]:
    """Candidate tags for (aad_new, ct_new), one per candidate H of ``recover_h(samples)``
    and in the same order, to be tried against the implementation in turn."""
    return [forge_tag(h, samples[0], aad_new, ct_new) for h in recover_h(samples)]


# --------------------------------------------------------------------------------------
# Keystream reuse (any stream/CTR-based AEAD, GCM and ChaCha20-Poly1305 alike)
# --------------------------------------------------------------------------------------

def keystream(ciphertext: bytes, plaintext: bytes) -> bytes:
    """ciphertext xor plaintext over their common length: the keystream that encrypted a
    known plaintext (without any ICV appended to the ciphertext)."""
    n = min(len(ciphertext), len(plaintext))
    if n == 0:
        return b""
    x = int.from_bytes(ciphertext[:n], "big") ^ int.from_bytes(plaintext[:n], "big")
    return x.to_bytes(n, "big")


def same_keystream(a: bytes, b: bytes, min_len: int = 16) -> bool:
    """True iff keystreams a and b overlap in at least ``min_len`` bytes and agree on the
    overlap (their common prefix): evidence that both came from one (key, nonce).
    Overlaps shorter than ``min_len`` give False (too little evidence)."""
    if min_len < 1:
        raise GcmForgeryError("min_len must be at least 1")
    n = min(len(a), len(b))
    return n >= min_len and a[:n] == b[:n]
