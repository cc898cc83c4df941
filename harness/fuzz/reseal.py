"""Structure-aware mutation: open a packet to its fields, change one, seal it again.

Theory of operation: a byte flip in a sealed packet dies at the ICV, so the receiver's
checks behind it (replay, limits, padding, the Payload Info Header, the inner packet,
crypt offset, next header 59) are never reached by plain mutation. ``open_packet`` turns
an input the SA's keys open into ``Fields`` (sub-SA, counter, crypt offset, the PSP
header's next header, and the whole encrypted body, clear bytes included); ``MUTATIONS``
is the table of what may change -- the body (all of it, its head, its tail: plaintext,
padding, pad length, next header, PIH), the sequence number, the sub-SA ID, the crypt
offset, the header's next header, or the header bytes themselves, which are then
authenticated as they are -- and ``seal`` builds the packet again under the right key,
nonce and AAD (``harness.engine.craft.seal_custom``). ``mutate_for`` is atheris's custom
mutator: an input the keys do not open is mutated as plain bytes, so the fuzzer still
explores the decoders; ``shrink_for`` is the one ``-minimize_crash`` gets, which only
cuts (body bytes, sealed again, or raw bytes). Nothing here decides what the receiver
should answer.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, replace
from typing import Callable

from spec_model import DecodeError, Profile, Receiver, Sender
from spec_model.errors import EspSpecError, IcvMismatch
from spec_model.nonce import nonce_builder
from spec_model.profile import Framing, NonceScheme, SeqWire
from spec_model.replay import infer_esn
from spec_model.subsa import locate, owns_spi

from ..engine.craft import seal_custom
from .sas import PROFILES, SPI, history_counters, keymat, split


@dataclass(frozen=True)
class Fields:
    sub_sa: int
    counter: int          # the sub-SA's counter: the SN without sub-SA bits (PSP: the IV)
    crypt_offset: int
    next_header: int      # the PSP header's (0 elsewhere: the trailer or PIH carries it)
    body: bytes           # everything encrypted, with the clear bytes in front


_ENDS: dict[str, tuple[Sender, Receiver]] = {}


def ends(profile: Profile) -> tuple[Sender, Receiver]:
    """A sender and a receiver with the fuzz SA of ``profile`` (cached; never advanced)."""
    hit = _ENDS.get(profile.name)
    if hit is None:
        k = keymat(profile)
        hit = _ENDS[profile.name] = (Sender(profile, k, SPI), Receiver(profile, k, SPI))
    return hit


def open_packet(profile: Profile, data: bytes) -> Fields | None:
    """The fields of a packet the fuzz SA opens (whatever its window would say), or None."""
    rx = ends(profile)[1]
    p = profile
    try:
        pkt = rx.codec.decode(data)
    except DecodeError:
        return None
    if not owns_spi(p, SPI, pkt.spi):
        return None
    seq = pkt.seq
    if p.seq is SeqWire.ESN:
        seq = infer_esn(seq, 0, p.window)[0]
    sub_sa, counter = locate(p, SPI, pkt.spi, pkt.session_id, seq)
    if sub_sa >= p.n_sub_sas:
        return None
    cipher, salt, _ = rx.keying.get(sub_sa)
    iv = seq if p.nonce is NonceScheme.IMPLICIT_IV else int.from_bytes(pkt.iv, "big")
    if counter is None:
        counter = iv
    header = data[:rx.codec.header_len_of(data)]
    try:
        plain = cipher.open(nonce_builder(p)(salt, pkt.spi, iv), pkt.ciphertext, pkt.icv,
                            rx.codec.aad(header, seq) + pkt.exposed)
    except IcvMismatch:
        return None
    co = getattr(pkt, "crypt_offset", 0)
    nh = pkt.next_header if p.framing is Framing.PSP else 0
    return Fields(sub_sa, counter, co, nh, pkt.exposed + plain)


def seal(profile: Profile, f: Fields,
         rewrite_header: Callable[[bytes], bytes] | None = None,
         sender: Sender | None = None) -> bytes:
    """The packet of ``f`` under the fuzz SA's keys (or under ``sender``'s)."""
    return seal_custom(sender or ends(profile)[0], f.sub_sa, f.body, next_header=f.next_header,
                       counter=f.counter, crypt_offset=f.crypt_offset, advance=False,
                       rewrite_header=rewrite_header)


def counter_space(profile: Profile) -> int:
    return ends(profile)[0].policy.counter_max


# --- the mutations: one field each ----------------------------------------------------
Mutator = Callable[[bytes, int], bytes]     # atheris.Mutate(data, max_size)


def _bytes(data: bytes, mut: Mutator, rng: random.Random, max_size: int) -> bytes:
    return mut(data, max(max_size, len(data) + 1))


def _body(p, f, mut, rng, max_size):
    return replace(f, body=_bytes(f.body, mut, rng, max_size)), None


def _body_head(p, f, mut, rng, max_size):
    cut = min(len(f.body), 8)
    return replace(f, body=_bytes(f.body[:cut], mut, rng, 16) + f.body[cut:]), None


def _body_tail(p, f, mut, rng, max_size):
    cut = max(0, len(f.body) - 16)
    return replace(f, body=f.body[:cut] + _bytes(f.body[cut:], mut, rng, 32)), None


def _counter(p, f, mut, rng, max_size):
    top = counter_space(p)
    w = max(p.window, 1)
    seen = history_counters(p)
    t = seen[-1] if seen else 0               # the window's top after the history
    pick = rng.choice([0, 1, f.counter + 1, f.counter - 1, f.counter + w, f.counter + w + 1,
                       t, t + 1, t - w + 1, t - w, t - w - 1, 4,
                       0xFFFFFFFF, 1 << 32, (1 << 32) + 1, top, top - 1, rng.randrange(top + 1)])
    return replace(f, counter=min(max(pick, 0), top)), None


def _sub_sa(p, f, mut, rng, max_size):
    return replace(f, sub_sa=rng.choice([0, p.n_sub_sas - 1, rng.randrange(p.n_sub_sas)])), None


def _crypt_offset(p, f, mut, rng, max_size):
    if p.framing not in (Framing.PSP, Framing.EESP_FULL):
        return f, None
    return replace(f, crypt_offset=rng.choice([0, 1, p.max_crypt_offset,
                                               p.max_crypt_offset + 1, rng.randrange(64)]) % 64), None


def _next_header(p, f, mut, rng, max_size):
    if p.framing is not Framing.PSP:
        return f, None
    return replace(f, next_header=rng.choice([4, 17, 41, 59, rng.randrange(256)])), None


def _header(p, f, mut, rng, max_size):
    def rewrite(header: bytes) -> bytes:      # never shorter: the AAD reads its fields
        new = _bytes(header, mut, rng, len(header) + 8)
        return new + header[len(new):]
    return f, rewrite


MUTATIONS = {"body": _body, "body-head": _body_head, "body-tail": _body_tail,
             "counter": _counter, "sub-sa": _sub_sa, "crypt-offset": _crypt_offset,
             "next-header": _next_header, "header": _header}


def mutate_fields(profile: Profile, f: Fields, mutation: str, mut: Mutator,
                  rng: random.Random, max_size: int = 512) -> bytes:
    """One named mutation of ``f``, sealed."""
    f2, rewrite = MUTATIONS[mutation](profile, f, mut, rng, max_size)
    return seal(profile, f2, rewrite)


def mutate_for(names: tuple[str, ...] = PROFILES) -> Callable[[bytes, int, int], bytes]:
    """atheris's custom mutator for inputs whose first byte picks among ``names``: re-seal
    with one field changed, or (one time in ten, and for inputs the keys do not open)
    mutate the bytes as they are."""
    def mutate(data: bytes, max_size: int, seed: int, mut: Mutator | None = None) -> bytes:
        if mut is None:
            import atheris
            mut = atheris.Mutate
        rng = random.Random(seed)
        if not data or rng.random() < 0.1:
            return mut(data, max_size)
        profile, packet = split(data, names)
        f = open_packet(profile, packet)
        if f is None:
            return mut(data, max_size)
        name = rng.choice(sorted(MUTATIONS))
        try:
            return (data[:1] + mutate_fields(profile, f, name, mut, rng, max_size))[:max_size]
        except (EspSpecError, struct.error, ValueError):    # a field the sealer refuses
            return mut(data, max_size)
    return mutate


def shrink_for(names: tuple[str, ...] = PROFILES) -> Callable[[bytes, int, int], bytes]:
    """The mutator for ``-minimize_crash``: always shorter. A slice of the body of an
    input the keys open is cut out and the packet sealed again (so a crash behind the ICV
    shrinks too); any other input loses a slice of its bytes."""
    def shrink(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if len(data) <= 1:
            return data
        profile, packet = split(data, names)
        f = open_packet(profile, packet)
        if f is not None and f.body:
            i = rng.randrange(len(f.body))
            j = rng.randint(i + 1, min(len(f.body), i + 1 + rng.choice([1, 2, 4, 16, 64])))
            return data[:1] + seal(profile, replace(f, body=f.body[:i] + f.body[j:]))
        i = rng.randrange(1, len(data))
        return data[:i] + data[i + 1 + rng.randrange(min(8, len(data) - i)):]
    return shrink


mutate = mutate_for()
