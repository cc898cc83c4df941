"""Nonce uniqueness per key, across sub-SAs and SAs (NONCE-UNIQUE-PER-KEY).

Theory of operation
-------------------
A nonce space is one key and one nonce prefix (the salt, or PSP's SPI):
``sub_identity`` says which one a sub-SA is in, and every sub-SA of the check that is in
it joins its ``NonceSpace``. Sub-SAs meet in one space when they share key and salt
(``partitioned-iv``; the sub-SA ID in a sequence number that is also the IV; two SAs
given the same key material), not when a KDF or the salt XOR sub-SA ID keeps them apart;
``sub_identity`` is also what the job planner (``jobs``) keeps together in one worker.

Nothing is stored for the common packet: one whose IV follows the profile's rule
(``spec_model.nonce.iv_value``: the sub-SA's prefix | counter) and whose counter is a new
maximum cannot repeat a nonce of its sub-SA, and the prefixes keep the sub-SAs of a space
apart. ``NonceRules`` (the part of ``SaCheck`` that judges nonces) handles the rest:

* a packet that breaks the rule is reported once per sub-SA (NONCE-SUBSA-SEPARATION when
  its IV leaves the sub-SA's own part of a shared key's IV space, INFO otherwise) and its
  nonce goes into the space's exact table (bounded by ``CheckConfig.exact_nonces``, then
  an INFO says later ones are not compared); it is also looked up in the counter rings of
  the space's sub-SAs whose rule could have produced the same IV, so a reuse names both
  packet numbers;
* once the exact table holds anything, rule-following packets of the space are looked up
  in it too;
* sub-SAs with the same key, salt *and* IV prefix (two SAs with the same key material)
  alias: equal counters are equal nonces, so each packet is looked up in the other's
  ring, and a marker in the exact table sends every packet of the space down the full
  path (the ESP fast path steps aside whenever the table is not empty).

A repeat with exactly the same bytes (read back from the capture at the earlier packet's
file position) is a duplicate, not a second use of the nonce. Counters going back within
one sub-SA (a wrap, a counter used again) are found by ``sequence``, which names the
nonce reuse that follows from them.
"""

from __future__ import annotations

from spec_model.keying import Keying
from spec_model.nonce import iv_value, nonce_builder
from spec_model.subsa import seq_for, spi_for

from .keys import SaKey

__all__ = ["NonceRules", "NonceSpace", "sub_identity"]

#: key of the entry that marks a nonce space shared by several sub-SAs' counters (never a
#: real 12-byte nonce); its presence sends every packet of the space down the full path
_ALIASED = b"aliased"


def sub_identity(sa: SaKey, keying: Keying, sub: int) -> tuple[str, bytes, int]:
    """(key_id, nonce prefix, IV prefix) of one sub-SA: what decides its nonce space."""
    p = sa.profile
    _cipher, salt, key_id = keying.get(sub)
    spi = spi_for(p, sa.spi, sub)
    seq_prefix = seq_for(p, sub, 0) if p.replay_protected else None
    return key_id, nonce_builder(p)(salt, spi, 0)[:4], iv_value(p, sub, seq_prefix, 0)


class NonceSpace:
    """One nonce space: one key and one nonce prefix (the salt, or PSP's SPI)."""

    __slots__ = ("label", "members", "exact", "capped")

    def __init__(self, label: str) -> None:
        self.label = label
        self.members: list[tuple] = []       # (SaCheck, sub-SA) in this space
        # nonce -> (packet, SPI, sub-SA, file position, length) of rule-breaking packets
        self.exact: dict[bytes, tuple[int, int, int, int, int]] = {}
        self.capped = False

    def join(self, check, sub: int) -> None:
        """Add sub-SA ``sub`` of ``check``; sub-SAs already here with the same IV prefix
        become its aliases (and it theirs)."""
        for other, osub in self.members:
            if other.iv_prefix[osub] == check.iv_prefix[sub]:
                # same key, salt and IV space (e.g. two SAs given the same key
                # material): equal counters mean equal nonces
                check.aliases.setdefault(sub, []).append((other, osub))
                other.aliases.setdefault(osub, []).append((check, sub))
                self.exact[_ALIASED] = (0, 0, 0, 0, 0)   # every packet: full path
        self.members.append((check, sub))


class NonceRules:
    """The nonce rules of ``SaCheck`` (a mixin: the per-sub-SA state is ``SaCheck``'s,
    the exact tables are the ``NonceSpace``'s)."""

    __slots__ = ()

    def check_nonce(self, n, foff, pos, ln, spi, sub, counter, iv, nonce, info) -> None:
        """The nonce of an authenticated packet, before its counter enters the ring."""
        if iv != self.iv_prefix[sub] | counter:
            self.rule_break(n, foff, pos, ln, spi, sub, counter, iv, nonce, info)
        elif info[5]:
            prev = info[5].get(nonce)
            if prev is not None and not self.same_bytes(prev, pos, ln):
                self.sink.check("NONCE-UNIQUE-PER-KEY", n, foff, spi, sub,
                                f"nonce {nonce.hex()} was used by packet {prev[0]} (SPI "
                                f"{prev[1]:#010x}, sub-SA {prev[2]}) under the same key")
        if sub in self.aliases and iv == self.iv_prefix[sub] | counter:
            for other, osub in self.aliases[sub]:
                ring = other.rings[osub]
                entry = ring[counter & other.rmask] if ring is not None else None
                if entry is not None and entry[0] == counter and \
                        not self.same_bytes(entry, pos, ln):
                    self.sink.check("NONCE-UNIQUE-PER-KEY", n, foff, spi, sub,
                                    f"counter {counter} was used by packet {entry[1]} of "
                                    f"{other.sa.label()} sub-SA {osub}, which has the same "
                                    f"key, salt and IV space: the nonce repeats")
                    break

    def rule_break(self, n, foff, pos, ln, spi, sub, counter, iv, nonce, info) -> None:
        """A packet whose IV does not follow the profile's rule."""
        sink = self.sink
        self.rule_breaks[sub] += 1
        expected = self.iv_prefix[sub] | counter
        p = self.profile
        if self.partitioned and iv >> (64 - p.subsa_bits) != sub:
            sink.check("NONCE-SUBSA-SEPARATION", n, foff, spi, sub,
                       f"IV {iv:#018x} carries {iv >> (64 - p.subsa_bits)} in its top "
                       f"{p.subsa_bits} bits, not the sub-SA ID {sub} (partitioned IV)")
        elif self.shared_key and iv & ~self.cmax != self.iv_prefix[sub]:
            sink.check("NONCE-SUBSA-SEPARATION", n, foff, spi, sub,
                       f"IV {iv:#018x} lies outside the sub-SA's own IV space (expected "
                       f"{expected:#018x}, the {p.nonce.value} rule that keeps the sub-SAs' "
                       f"nonces apart under their shared key)")
        elif self.rule_breaks[sub] == 1:
            sink.info("nonce-rule", n, foff, spi, sub,
                      f"IV {iv:#018x} does not follow the profile's {p.nonce.value} rule "
                      f"(expected {expected:#018x}); such nonces are tracked exactly (the "
                      f"sub-SA's statistics count them)", requirement="NONCE-UNIQUE-PER-KEY")
        space = info[4]
        prev = space.exact.get(nonce)
        if prev is not None:
            if not self.same_bytes(prev, pos, ln):
                sink.check("NONCE-UNIQUE-PER-KEY", n, foff, spi, sub,
                           f"nonce {nonce.hex()} was used by packet {prev[0]} (SPI "
                           f"{prev[1]:#010x}, sub-SA {prev[2]}) under the same key")
            return
        if len(space.exact) < self.ctx.config.exact_nonces:
            space.exact[nonce] = (n, spi, sub, pos, ln)
        elif not space.capped:
            space.capped = True
            sink.info("nonce-table-full", n, foff, spi, sub,
                      f"{len(space.exact)} rule-breaking nonces tracked for {space.label}; "
                      f"later ones are not compared with each other")
        # a rule-following packet of any sub-SA in this nonce space with the same IV?
        for other, osub in space.members:
            mask = other.cmax
            if iv & ~mask != other.iv_prefix[osub]:
                continue
            c = iv & mask
            ring = other.rings[osub]
            entry = ring[c & other.rmask] if ring is not None else None
            if entry is not None and entry[0] == c and entry[1] != n and \
                    not self.same_bytes(entry, pos, ln):
                sink.check("NONCE-UNIQUE-PER-KEY", n, foff, spi, sub,
                           f"IV {iv:#018x} repeats the nonce of packet {entry[1]} (sub-SA "
                           f"{osub}, counter {c}) under the same key")
                return
