"""The AEAD layer: the table of algorithms and one cipher object per key.

Theory of operation: ``AEADS`` is the table of combined-mode algorithms a profile may
name (AES-GCM with 16, 12 and 8-byte ICVs and 128/192/256-bit keys per RFC 4106, and
ChaCha20-Poly1305 per RFC 7634). Each takes a 12-byte nonce; the 4-byte salt and 8-byte
IV that make it are the business of ``nonce.py``. ``AeadCipher`` wraps the
``cryptography`` package: ``seal`` returns the ciphertext and the ICV separately, ``open``
raises ``IcvMismatch`` on any authentication failure. GCM ICVs shorter than 16 bytes are
the leading bytes of the full tag (NIST SP 800-38D §5.2.1.2). Construction of the AAD and
the nonce is not done here.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .errors import ConfigError, IcvMismatch

NONCE_LEN = 12
SALT_LEN = 4
IV_LEN = 8


@dataclass(frozen=True)
class Aead:
    name: str            # espspec's name, strongSwan proposal spelling
    family: str          # "aes-gcm" or "chacha20-poly1305"
    key_len: int         # bytes, without the salt
    icv_len: int         # bytes
    ikev2_id: int        # IKEv2 transform ID (ENCR_*)
    ikev2_iiv_id: int | None  # RFC 8750 implicit-IV transform ID, where one exists

    @property
    def keymat_len(self) -> int:
        """Key material per SA in the RFC 4106 convention: key || 4-byte salt."""
        return self.key_len + SALT_LEN


AEADS: dict[str, Aead] = {a.name: a for a in (
    Aead("aes128gcm16", "aes-gcm", 16, 16, 20, 30),
    Aead("aes192gcm16", "aes-gcm", 24, 16, 20, 30),
    Aead("aes256gcm16", "aes-gcm", 32, 16, 20, 30),
    Aead("aes128gcm12", "aes-gcm", 16, 12, 19, None),
    Aead("aes256gcm12", "aes-gcm", 32, 12, 19, None),
    Aead("aes128gcm8", "aes-gcm", 16, 8, 18, None),
    Aead("aes256gcm8", "aes-gcm", 32, 8, 18, None),
    Aead("chacha20poly1305", "chacha20-poly1305", 32, 16, 28, 31),
)}


class AeadCipher:
    """One key of one AEAD. Not thread-safe for the truncated-GCM path (none need it)."""

    __slots__ = ("aead", "_full", "_key", "_icv_len")

    def __init__(self, aead: Aead, key: bytes) -> None:
        if len(key) != aead.key_len:
            raise ConfigError(f"{aead.name} needs a {aead.key_len}-byte key, got {len(key)}")
        self.aead = aead
        self._key = key
        self._icv_len = aead.icv_len
        self._full = AESGCM(key) if aead.family == "aes-gcm" else ChaCha20Poly1305(key)

    @property
    def joined(self):
        """For 16-byte ICVs: the ``cryptography`` AEAD object itself, whose ``decrypt``
        takes ciphertext || ICV (a fast path for bulk checkers); None otherwise."""
        return self._full if self._icv_len == 16 else None

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """Encrypt; return (ciphertext, ICV)."""
        out = self._full.encrypt(nonce, plaintext, aad)
        n = len(plaintext)
        return out[:n], out[n:n + self._icv_len]

    def open(self, nonce: bytes, ciphertext: bytes, icv: bytes, aad: bytes) -> bytes:
        """Decrypt and verify; raise IcvMismatch on any failure."""
        if len(icv) != self._icv_len:
            raise IcvMismatch(f"ICV of {len(icv)} bytes, {self.aead.name} needs "
                              f"{self._icv_len}", requirement="ICV-LENGTH")
        try:
            if self._icv_len == 16:
                return self._full.decrypt(nonce, ciphertext + icv, aad)
            decryptor = Cipher(algorithms.AES(self._key),
                               modes.GCM(nonce, icv, min_tag_length=self._icv_len)).decryptor()
            decryptor.authenticate_additional_data(aad)
            return decryptor.update(ciphertext) + decryptor.finalize()
        except InvalidTag:
            raise IcvMismatch("ICV does not verify") from None
