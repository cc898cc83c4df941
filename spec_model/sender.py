"""The sender of one child SA with N sub-SAs: counters, limits, sealing.

Theory of operation: ``Sender`` holds one counter, one packet count and one byte count per
sub-SA, nothing else. ``seal`` checks the limits (``limits.py``), steps the sub-SA's
counter, lays out the body (``wire/payload.py``) with the padding the alignment needs,
builds the header (``wire/``), the IV and nonce (``nonce.py``) under the sub-SA's key
(``keying.py``), and returns the packet's bytes with the facts a judge needs (sub-SA, SN,
key label, nonce). It refuses with a ``SendRefused`` subclass rather than wrap a counter
or pass a limit. It performs no I/O: the bytes go wherever the caller sends them.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import ConfigError, SubSaOutOfRange
from .limits import refusal, rekey_due
from .nonce import iv_encoder, iv_value, nonce_builder
from .profile import Framing, Mode, Profile, SeqWire
from .sa import SaEnd
from .subsa import seq_for, session_id_for, spi_for
from .wire.payload import MAX_PAD, PayloadInfoHeader, Unpadded, next_header_of_ip


class Sealed(NamedTuple):
    wire: bytes          # the (E)ESP/PSP packet, from its first header byte to the ICV
    sub_sa: int
    spi: int
    seq: int | None      # full sequence number; None without one
    counter: int         # the sub-SA's counter value used
    key_id: str          # label of the key (equal labels = same key)
    nonce: bytes


class Sender(SaEnd):
    def __init__(self, profile: Profile, keymat: bytes, spi: int) -> None:
        super().__init__(profile, keymat, spi)
        n = profile.n_sub_sas
        self.counters = [0] * n
        self.packets = [0] * n
        self.nbytes = [0] * n
        self._total_packets = 0
        self._total_bytes = 0
        pol = self.policy
        self._limited = any(v is not None for v in (
            pol.packets_per_subsa, pol.packets_total, pol.bytes_per_subsa, pol.bytes_total))
        self._sub: dict[int, tuple] = {}
        self._seq_mask = {SeqWire.SEQ32: 0xFFFFFFFF, SeqWire.ESN: 0xFFFFFFFF,
                          SeqWire.SEQ64: (1 << 64) - 1, SeqWire.NONE: 0}[profile.seq]
        # the profile's choices, resolved once (enum tests cost more than the AEAD call)
        self._n = n
        self._tunnel = profile.mode is Mode.TUNNEL
        self._padded = self.layout is not Unpadded
        self._alignment = profile.alignment
        self._overhead = self.layout.overhead
        self._iv_bytes = iv_encoder(profile)
        self._nonce = nonce_builder(profile)

    def _sub_sa(self, sub_sa: int) -> tuple:
        """Per-sub-SA constants, derived once from the rules in subsa.py and nonce.py.
        Every rule there ORs the counter into bits the sub-SA ID does not use, so a
        sub-SA's SN and IV are its prefix (the rule applied to counter 0) | counter."""
        p = self.profile
        seq_prefix = seq_for(p, sub_sa, 0) if p.replay_protected else None
        hit = (spi_for(p, self.base_spi, sub_sa), session_id_for(p, sub_sa), seq_prefix,
               iv_value(p, sub_sa, seq_prefix, 0)) + self.keying.get(sub_sa)
        self._sub[sub_sa] = hit
        return hit

    # --- queries -----------------------------------------------------------------------
    def refusal(self, sub_sa: int, payload_len: int = 0):
        """The SendRefused the next packet on sub_sa would get, or None."""
        if not 0 <= sub_sa < self.profile.n_sub_sas:
            return SubSaOutOfRange(f"sub-SA {sub_sa}, the SA has {self.profile.n_sub_sas} "
                                   f"(IDs 0..{self.profile.n_sub_sas - 1})")
        return refusal(self.policy, self.counters[sub_sa], self.packets[sub_sa],
                       self.nbytes[sub_sa], self._total_packets, self._total_bytes,
                       payload_len)

    def rekey_due(self) -> str | None:
        """The requirement ID making a rekey due now, or None."""
        return rekey_due(self.policy, self.packets, self.nbytes)

    # --- test hooks --------------------------------------------------------------------
    def set_counter(self, sub_sa: int, value: int) -> None:
        """Jump a sub-SA as if it had sent ``value`` packets (counter and packet count)."""
        if not 0 <= value <= self.policy.counter_max:
            raise ConfigError(f"counter {value} outside 0..{self.policy.counter_max}",
                              requirement="SEQ-NO-WRAP")
        self._total_packets += value - self.packets[sub_sa]
        self.counters[sub_sa] = value
        self.packets[sub_sa] = value

    # --- sealing -------------------------------------------------------------------------
    def crypt_offset_for(self, payload_len: int, wanted: int | None = None) -> int:
        """Crypt offset (4-octet units) a packet uses: the profile's, cut to the payload."""
        p = self.profile
        co = p.crypt_offset if wanted is None else wanted
        if co and p.framing is Framing.EESP_FULL:
            return min(co, (PayloadInfoHeader.overhead + payload_len) // 4)
        if co and p.framing is Framing.PSP:
            return min(co, payload_len // 4)
        return 0

    def seal(self, sub_sa: int, payload: bytes, next_header: int | None = None, *,
             extra_pad: int = 0, crypt_offset: int | None = None,
             iv_override: int | None = None) -> Sealed:
        """Protect one payload on one sub-SA. ``extra_pad`` adds padding (a multiple of the
        alignment), ``crypt_offset`` picks another offset up to the profile's maximum, and
        ``iv_override`` replaces the scheme's IV: only for known-answer tests."""
        plen = len(payload)
        counter = self.counters[sub_sa] if 0 <= sub_sa < self._n else -1
        if counter < 0 or counter >= self.policy.counter_max or self._limited:
            refused = self.refusal(sub_sa, plen)
            if refused is not None:
                raise refused
        if next_header is None:
            if not self._tunnel:
                raise ConfigError("transport mode needs the next header of the payload")
            next_header = next_header_of_ip(payload)
        max_co = self.profile.max_crypt_offset
        if crypt_offset is not None and crypt_offset > max_co:
            raise ConfigError(f"crypt offset {crypt_offset} above the profile's maximum "
                              f"{max_co}", requirement="CRYPTOFF-MAX")
        spi, session_id, seq_prefix, iv_prefix, cipher, salt, key_id = (
            self._sub.get(sub_sa) or self._sub_sa(sub_sa))
        counter += 1
        seq = None if seq_prefix is None else seq_prefix | counter
        iv = iv_prefix | counter if iv_override is None else iv_override
        co = self.crypt_offset_for(plen, crypt_offset) if max_co else 0
        header = self.codec.header(spi, session_id, None if seq is None else seq & self._seq_mask,
                                   self._iv_bytes(iv), co, next_header)
        pad = 0
        if self._padded:
            align = self._alignment
            if extra_pad % align:
                raise ConfigError(f"extra padding {extra_pad} is not a multiple of the "
                                  f"alignment {align}", requirement="WIRE-ALIGN")
            pad = -(len(header) + self._overhead + plen) % align + extra_pad
            if pad > MAX_PAD:
                raise ConfigError(f"{pad} bytes of padding, at most {MAX_PAD}",
                                  requirement="WIRE-PAD-LENGTH")
        body = self.layout.pack(payload, next_header, pad)
        nonce = self._nonce(salt, spi, iv)
        if co:
            clear = 4 * co
            ciphertext, icv = cipher.seal(nonce, body[clear:],
                                          self.codec.aad(header, seq) + body[:clear])
            header += body[:clear]
        else:
            ciphertext, icv = cipher.seal(nonce, body, self.codec.aad(header, seq))
        self.counters[sub_sa] = counter
        self.packets[sub_sa] += 1
        self.nbytes[sub_sa] += plen
        self._total_packets += 1
        self._total_bytes += plen
        return Sealed(header + ciphertext + icv, sub_sa, spi, seq, counter, key_id, nonce)
