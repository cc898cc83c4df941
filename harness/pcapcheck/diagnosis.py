"""Why a packet does not open: ICV failures and sub-SA IDs explained.

Theory of operation
-------------------
A packet whose ICV does not verify under its sub-SA's key, the profile's nonce and the
profile's AAD is an ICV-VERIFY failure -- unless one of the mistakes implementations
make explains it. ``IcvDiagnosis`` (the part of ``SaCheck`` that explains failures)
tries, for the first ``CheckConfig.diagnose`` failures of an SA, the AAD layouts that
are got wrong (the ESN high half left out: AAD-ESN-HIGH; a 64-bit SN with only its low
half: AAD-SEQ64-FULL; the clear bytes of a crypt offset left out:
CRYPTOFF-AUTHENTICATED), the implicit IV built from the low 32 bits of an ESN
(NONCE-IIV-LAYOUT) and the keys and salts of the SA's other sub-SAs (KDF-SUBSA-KEY,
NONCE-SUBSA-SEPARATION, SUBSA-ID-LOCATION, by profile). A trial that explains one
failure is tried first on every later one, so a systematic mistake is named on every
packet at the cost of one extra AEAD call.

The same trials explain a packet whose wire says a sub-SA the SA does not have, or an
SPI no SA has: when another sub-SA's key opens it, the ID is not where the profile puts
it (SUBSA-ID-LOCATION), otherwise it is out of range (SUBSA-ID-RANGE) or unknown.
Nothing here changes the per-sub-SA state beyond the ICV failure count; the packet is
not accounted.
"""

from __future__ import annotations

from spec_model.errors import DecodeError, IcvMismatch
from spec_model.profile import Framing, Kdf, NonceScheme, SeqWire, SubSaLocation
from spec_model.replay import infer_esn

from .sequence import NEAREST_WINDOW

__all__ = ["IcvDiagnosis"]


class IcvDiagnosis:
    """ICV failures and misplaced sub-SA IDs of ``SaCheck`` (a mixin)."""

    __slots__ = ()

    def opens(self, cipher, nonce: bytes, ct_icv: bytes, aad: bytes) -> bool:
        """Whether ``cipher`` opens ciphertext || ICV with this nonce and AAD."""
        icv = self.icv_len
        try:
            cipher.open(nonce, ct_icv[:len(ct_icv) - icv], ct_icv[len(ct_icv) - icv:], aad)
            return True
        except IcvMismatch:
            return False

    def icv_failed(self, n, foff, pkt, spi, sub, seq, iv, aad, exposed, d) -> None:
        """Report a packet that does not open, with the requirement that explains it."""
        self.icv_fail[sub] += 1
        found = None
        if self.diag_hint is not None:
            found = self.trial(self.diag_hint, pkt, spi, sub, seq, iv, aad, exposed, d)
        if found is None and self.diag_left > 0:
            self.diag_left -= 1
            for cand in self.candidates(sub, exposed):
                found = self.trial(cand, pkt, spi, sub, seq, iv, aad, exposed, d)
                if found is not None:
                    self.diag_hint = cand
                    break
        if found is None:
            found = ("ICV-VERIFY", f"ICV does not verify under sub-SA {sub}'s key and the "
                                   f"profile's nonce and AAD")
        self.sink.check(found[0], n, foff, spi, sub, found[1])

    def candidates(self, sub: int, exposed: bytes) -> list[tuple]:
        """What implementations get wrong, as trials: another AAD layout, another nonce,
        another sub-SA's key."""
        p = self.profile
        out: list[tuple] = []
        if self.esn:
            out.append(("aad", "AAD-ESN-HIGH"))
        if p.seq is SeqWire.SEQ64:
            out.append(("aad", "AAD-SEQ64-FULL"))
        if exposed:
            out.append(("aad", "CRYPTOFF-AUTHENTICATED"))
        if self.iiv and self.esn:
            out.append(("nonce", "NONCE-IIV-LAYOUT"))
        out += [("key", j) for j in range(min(self.n, 64)) if j != sub]
        return out

    def trial(self, cand, pkt, spi, sub, seq, iv, aad, exposed, d) -> tuple[str, str] | None:
        """(requirement, explanation) when trial ``cand`` opens the packet, else None."""
        ct_icv = pkt[self.hlen:] if d is None else d.ciphertext + d.icv
        cipher, salt = self.sub_info(sub)[:2]
        what, arg = cand
        if what == "aad":
            if arg == "AAD-ESN-HIGH":
                alt, why = aad[:4] + aad[8:12], "the AAD is SPI || Seql: the high 32 bits " \
                    "of the ESN are left out"
            elif arg == "AAD-SEQ64-FULL":
                at = 4 if self.profile.framing is Framing.ESP else 8 + pkt[1]
                alt, why = aad[:at] + aad[at + 4:], "only the low 32 bits of the 64-bit " \
                    "sequence number are in the AAD"
            else:
                if not exposed:
                    return None
                alt, why = aad[:len(aad) - len(exposed)], "the bytes left in clear by the " \
                    "crypt offset are not in the AAD"
            if self.opens(cipher, self.nb(salt, spi, iv), ct_icv, alt):
                return arg, f"ICV verifies only if {why}"
            return None
        if what == "nonce":
            if self.opens(cipher, self.nb(salt, spi, iv & 0xFFFFFFFF), ct_icv, aad):
                return arg, ("ICV verifies only with the implicit IV built from the low 32 "
                             "bits of the ESN (RFC 8750 uses all 64)")
            return None
        j = arg
        if j == sub or j >= self.n:
            return None
        cj, sj = self.sub_info(j)[:2]
        if cj is cipher and sj == salt:
            return None
        if not self.opens(cj, self.nb(sj, spi, iv), ct_icv, aad):
            return None
        p = self.profile
        if p.kdf is not Kdf.NONE and p.kdf is not Kdf.PSP_CMAC:
            return "KDF-SUBSA-KEY", (f"packet of sub-SA {sub} verifies under sub-SA {j}'s "
                                     f"key: the key derivation ignores the Session ID")
        if p.nonce is NonceScheme.SUBSA_SALT:
            return "NONCE-SUBSA-SEPARATION", (f"packet of sub-SA {sub} verifies with sub-SA "
                                              f"{j}'s salt: the salt is not XORed with the "
                                              f"sub-SA ID")
        return "SUBSA-ID-LOCATION", (f"packet read as sub-SA {sub} verifies under sub-SA "
                                     f"{j}'s key: the ID is not where the profile puts it")

    def authenticates_as(self, pkt: bytes) -> int | None:
        """The in-range sub-SA whose key opens a packet the wire attributes elsewhere
        (wrong SPI or Session ID), or None. The packet's own header gives AAD and IV.
        Where several sub-SAs share a nonce space (one key and salt) the key cannot tell
        them apart, so the IV must also carry sub-SA j's prefix."""
        if self.loc is SubSaLocation.SEQ:
            return None       # the ID is in the authenticated SN: nothing to confuse
        try:
            d = self.codec.decode(pkt)
        except DecodeError:
            return None
        seq = d.seq
        if self.esn:
            seq = infer_esn(seq, self.sa.esn_start, NEAREST_WINDOW)[0]
        iv = seq if self.iiv else int.from_bytes(d.iv, "big")
        header = pkt[:self.codec.header_len_of(pkt)]
        aad = self.codec.aad(header, seq) + d.exposed
        spaces: dict = {}
        for j in range(min(self.n, 64)):
            g = self.sub_info(j)[4]
            spaces[id(g)] = spaces.get(id(g), 0) + 1
        for j in range(min(self.n, 64)):
            cj, sj, _k, _r, g, _e = self.sub_info(j)
            if spaces[id(g)] > 1 and iv & ~self.cmax != self.iv_prefix[j]:
                continue
            if self.opens(cj, self.nb(sj, d.spi, iv), d.ciphertext + d.icv, aad):
                return j
        return None

    def out_of_range(self, n, foff, pkt, d, sub) -> None:
        """A packet whose wire names a sub-SA the SA does not have."""
        if self.owned is not None and min(self.owned) != 0:
            return          # reported by the worker that owns sub-SA 0
        j = None
        if self.diag_left > 0 or self.oor_hint:
            j = self.authenticates_as(pkt)
            if j is None:
                self.diag_left -= 1
            self.oor_hint = j is not None
        if j is not None:
            self.sink.check("SUBSA-ID-LOCATION", n, foff, d.spi, sub,
                            f"the wire says sub-SA {sub} (the SA has {self.n}) but the packet "
                            f"is protected as sub-SA {j}: the ID is not where the profile "
                            f"puts it")
        else:
            self.sink.check("SUBSA-ID-RANGE", n, foff, d.spi, sub,
                            f"sub-SA ID {sub}, the SA has {self.n} (IDs 0..{self.n - 1})")
