"""Wire-family mutants: wrong bytes on the wire, wrong AAD, or checks a receiver skips.

Theory of operation: the bytes of a packet come from three collaborators of the model's
Sender and Receiver (``spec_model.wire``): the header codec (header fields and the AAD),
the body layout (trailer or Payload Info Header and padding) and, for what the ICV
covers, the AEAD cipher the keying hands out. Each mutant replaces one of them with a
small subclass or wrapper and installs it through ``Pieces`` — on the sender, the
receiver, or both when the bug is a construction both ends share (then the mutant talks
to itself but not to a conforming peer). The one exception writes the sub-SA ID into the
wrong place by overriding the sender's per-sub-SA constants. Sender bugs show as packets
the model cannot open or reads differently; receiver bugs as packets the IUT delivers
where the model drops them.
"""

from __future__ import annotations

import hmac

from spec_model import Framing, Receiver, Sender, SeqWire, SubSaLocation
from spec_model.errors import BadPadding
from spec_model.wire import codec_for
from spec_model.wire.payload import ESP_PAD, EspTrailer, Optimized, PayloadInfoHeader

from .base import CipherWrappingKeying, MutantIut, Pieces, register

ESP = ("esp", "esp-esn", "esp-iiv", "esp-seq64", "esp-subsa-spi", "esp-subsa-salt",
       "esp-subsa-seq")
ALL = ESP + ("eesp-v0", "eesp-v0-transport", "psp-v0")


# --- padding content unchecked -----------------------------------------------------------

class UncheckedPadding:
    """Layout mixin: padding with the wrong content is read as if it were right."""

    @classmethod
    def unpack(cls, body: bytes, next_header: int | None = None):
        try:
            return super().unpack(body, next_header)
        except BadPadding as e:
            return super().unpack(cls.proper(body, e.offset), next_header)


class UncheckedEspTrailer(UncheckedPadding, EspTrailer):
    @staticmethod
    def proper(body: bytes, start: int) -> bytes:
        return body[:start] + ESP_PAD[:len(body) - 2 - start] + body[-2:]


def _zeros_from(body: bytes, start: int) -> bytes:
    return body[:start] + bytes(len(body) - start)


class UncheckedPayloadInfoHeader(UncheckedPadding, PayloadInfoHeader):
    proper = staticmethod(_zeros_from)


class UncheckedOptimized(UncheckedPadding, Optimized):
    proper = staticmethod(_zeros_from)


class PaddingBlindReceiver(Pieces, Receiver):
    layouts = {Framing.ESP: UncheckedEspTrailer,
               Framing.EESP_FULL: UncheckedPayloadInfoHeader,
               Framing.EESP_OPTIMIZED: UncheckedOptimized}


@register(family="wire",
          bug="the receiver does not check the padding content (ESP 1, 2, 3, ...; EESP "
              "zeros)",
          requirements=("PAD-CONTENT-CHECK",),
          profiles=ESP + ("eesp-v0", "eesp-v0-transport"))
class PaddingUnchecked(MutantIut):
    name = "mutant:padding-unchecked"
    receiver_class = PaddingBlindReceiver


# --- crypt-offset bytes left out of the AAD ----------------------------------------------

class _HeaderOnlyAad:
    """A cipher that authenticates only the header part of the AAD it is given, not the
    clear crypt-offset bytes the Sender and Receiver append to it."""

    def __init__(self, cipher, header_len_of) -> None:
        self.cipher, self.header_len_of = cipher, header_len_of

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes):
        return self.cipher.seal(nonce, plaintext, aad[:self.header_len_of(aad)])

    def open(self, nonce: bytes, ciphertext: bytes, icv: bytes, aad: bytes) -> bytes:
        return self.cipher.open(nonce, ciphertext, icv, aad[:self.header_len_of(aad)])


class ClearBytesBlindKeying(CipherWrappingKeying):
    def wrap(self, cipher):
        if not self.profile.max_crypt_offset:     # no clear bytes (and ESP's AAD is no prefix)
            return cipher
        return _HeaderOnlyAad(cipher, codec_for(self.profile).header_len_of)


class ClearBytesBlindSender(Pieces, Sender):
    keying_class = ClearBytesBlindKeying


class ClearBytesBlindReceiver(Pieces, Receiver):
    keying_class = ClearBytesBlindKeying


@register(family="wire",
          bug="bytes left in clear by a crypt offset are not in the AAD (sender and "
              "receiver both omit them)",
          requirements=("CRYPTOFF-AUTHENTICATED", "AAD-EESP"),
          profiles=("eesp-v0-transport",),
          needs="or a PSP profile with crypt_offset > 0")
class CryptoffNotInAad(MutantIut):
    name = "mutant:cryptoff-not-in-aad"
    sender_class = ClearBytesBlindSender
    receiver_class = ClearBytesBlindReceiver


# --- truncated ICV accepted --------------------------------------------------------------

class _HalfTagCheck:
    """A cipher whose ``open`` compares only the first half of the ICV: it recomputes
    the full tag for the received ciphertext (GCM and ChaCha20 encrypt by XOR with a
    keystream, so sealing the ciphertext yields the plaintext) and compares a prefix."""

    def __init__(self, cipher) -> None:
        self.cipher = cipher

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes):
        return self.cipher.seal(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, icv: bytes, aad: bytes) -> bytes:
        plaintext = self.cipher.seal(nonce, ciphertext, aad)[0]
        tag = self.cipher.seal(nonce, plaintext, aad)[1]
        half = len(tag) // 2
        if len(icv) == len(tag) and hmac.compare_digest(icv[:half], tag[:half]):
            return plaintext
        return self.cipher.open(nonce, ciphertext, icv, aad)   # raises IcvMismatch


class HalfTagKeying(CipherWrappingKeying):
    def wrap(self, cipher):
        return _HalfTagCheck(cipher)


class HalfTagReceiver(Pieces, Receiver):
    keying_class = HalfTagKeying


@register(family="wire",
          bug="the receiver verifies only the first half of the ICV (8 of a 16-byte GCM "
              "tag)",
          requirements=("ICV-VERIFY", "ICV-LENGTH"),
          profiles=ALL)
class ShortIcvAccepted(MutantIut):
    name = "mutant:short-icv-accepted"
    receiver_class = HalfTagReceiver


# --- AAD rewriting codecs ----------------------------------------------------------------

class AadRewritingCodec:
    """The model's codec for a profile, with ``rewrite`` applied to every AAD."""

    def __init__(self, profile) -> None:
        self._codec = codec_for(profile)

    def __getattr__(self, name: str):
        return getattr(self._codec, name)

    def aad(self, header: bytes, seq: int | None) -> bytes:
        return self.rewrite(self._codec.aad(header, seq), header)

    def rewrite(self, aad: bytes, header: bytes) -> bytes:
        return aad


# --- 64-bit SN truncated to 32 bits in the AAD -------------------------------------------

class Low32SnAad(AadRewritingCodec):
    """Only the low 32 bits of a 64-bit SN go into the AAD (its high half is cut out)."""

    def rewrite(self, aad: bytes, header: bytes) -> bytes:
        if self.profile.seq is not SeqWire.SEQ64:
            return aad
        at = 4 if self.profile.framing is Framing.ESP else 8 + header[1]
        return aad[:at] + aad[at + 4:]


class Low32SnSender(Pieces, Sender):
    codec_class = Low32SnAad


class Low32SnReceiver(Pieces, Receiver):
    codec_class = Low32SnAad


@register(family="wire",
          bug="a 64-bit sequence number enters the AAD with its low 32 bits only (sender and "
              "receiver): its high half can be rewritten in flight",
          requirements=("AAD-SEQ64-FULL",),
          profiles=("esp-seq64", "eesp-v0", "eesp-v0-transport"))
class AadSeqLow32(MutantIut):
    name = "mutant:aad-seq-low32"
    sender_class = Low32SnSender
    receiver_class = Low32SnReceiver


# --- ESN high half left out of the AAD ---------------------------------------------------

class EsnLowAad(AadRewritingCodec):
    """With ESN the AAD is SPI || Seql (the non-ESN layout), not SPI || Seqh || Seql."""

    def rewrite(self, aad: bytes, header: bytes) -> bytes:
        return aad[:4] + aad[8:12] if self.profile.seq is SeqWire.ESN else aad


class EsnLowSender(Pieces, Sender):
    codec_class = EsnLowAad


class EsnLowReceiver(Pieces, Receiver):
    codec_class = EsnLowAad


@register(family="wire",
          bug="with ESN the AAD is SPI || Seql: the high 32 bits are not authenticated "
              "(sender and receiver)",
          requirements=("AAD-ESN-HIGH", "AAD-RFC4106"),
          profiles=("esp-esn", "esp-iiv", "esp-subsa-spi", "esp-subsa-salt"))
class EsnHighNotInAad(MutantIut):
    name = "mutant:esn-high-not-in-aad"
    sender_class = EsnLowSender
    receiver_class = EsnLowReceiver


# --- ESP padded with zeros ---------------------------------------------------------------

class ZeroPadEspTrailer(EspTrailer):
    @staticmethod
    def pack(payload: bytes, next_header: int, pad_len: int) -> bytes:
        return payload + bytes(pad_len) + bytes((pad_len, next_header))


class ZeroPadSender(Pieces, Sender):
    layouts = {Framing.ESP: ZeroPadEspTrailer}


@register(family="wire",
          bug="the sender pads ESP with zeros instead of 1, 2, 3, ...",
          requirements=("PAD-CONTENT-SEND",),
          profiles=ESP)
class EspZeroPadding(MutantIut):
    name = "mutant:esp-zero-padding"
    sender_class = ZeroPadSender


# --- sub-SA ID in the wrong place --------------------------------------------------------

class ByteSwappedIdSender(Sender):
    """The sub-SA ID is written in the wrong byte order: sub-SA i goes to the SPI's top
    byte (ID in the SPI) or the Session ID's high byte (EESP)."""

    def _sub_sa(self, sub_sa: int) -> tuple:
        spi, session_id, *rest = super()._sub_sa(sub_sa)
        location = self.profile.subsa
        if location is SubSaLocation.SPI:
            spi = self.base_spi | int.from_bytes(sub_sa.to_bytes(4, "little"), "big")
        elif location is SubSaLocation.HEADER:
            session_id = int.from_bytes(sub_sa.to_bytes(2, "little"), "big")
        hit = self._sub[sub_sa] = (spi, session_id, *rest)
        return hit


@register(family="wire",
          bug="the sender writes the sub-SA ID byte-swapped: in the SPI's high bits or the "
              "Session ID's high byte",
          requirements=("SUBSA-ID-LOCATION",),
          profiles=("esp-subsa-spi", "esp-subsa-salt", "eesp-v0", "eesp-v0-transport",
                    "psp-v0"))
class SubsaIdWrongPlace(MutantIut):
    name = "mutant:subsa-id-wrong-place"
    sender_class = ByteSwappedIdSender
