"""Which key and salt protect each sub-SA (the key half of axis B).

Theory of operation: an SA is given one blob of key material per direction, ``keymat``,
read as the profile's nonce scheme says:

============================  ======================================  =================
nonce scheme                  keymat                                  sub-SA i uses
============================  ======================================  =================
subsa-key, HKDF (EESP)        root key (32/48/64 bytes)               HKDF-Expand(root,
                                                                      i as 2 octets,
                                                                      key len + 4)
subsa-key, PSP CMAC           256-bit master key                      CMAC-derived key
                                                                      for SPI base|i
subsa-salt                    key || 4-byte salt (RFC 4106)           key, salt XOR i
partitioned-iv, implicit-iv,  key || 4-byte salt (RFC 4106)           key, salt
explicit-counter
============================  ======================================  =================

``Keying`` derives lazily and caches one ``AeadCipher`` per distinct key, so sub-SAs that
share a key share the cipher object. ``key_id`` is a stable label of the key a sub-SA
uses, for the nonce ledger. Nothing here builds nonces (``nonce.py``) or touches bytes on
the wire.
"""

from __future__ import annotations

import hashlib

from .aead import SALT_LEN, AeadCipher
from .errors import ConfigError
from .kdf import ROOT_KEY_LEN, eesp_subsa_keymat, psp_sa_key
from .profile import Kdf, NonceScheme, Profile


def keymat_len(profile: Profile) -> int:
    """Bytes of key material one SA of ``profile`` takes: the KDF's root key where sub-SA
    keys are derived, else the AEAD key and salt."""
    if profile.kdf is not Kdf.NONE:
        return ROOT_KEY_LEN[profile.kdf]
    return profile.aead_spec.keymat_len


class Keying:
    __slots__ = ("profile", "keymat", "base_spi", "_cache", "_ciphers")

    def __init__(self, profile: Profile, keymat: bytes, base_spi: int) -> None:
        want = keymat_len(profile)
        if len(keymat) != want:
            raise ConfigError(f"profile {profile.name} with {profile.aead} needs {want} bytes "
                              f"of key material, got {len(keymat)}",
                              requirement="KDF-SUBSA-KEY")
        self.profile = profile
        self.keymat = keymat
        self.base_spi = base_spi
        self._cache: dict[int, tuple[AeadCipher, bytes, str]] = {}
        self._ciphers: dict[bytes, AeadCipher] = {}

    def _key_and_salt(self, sub_sa: int) -> tuple[bytes, bytes]:
        p, aead = self.profile, self.profile.aead_spec
        if p.kdf is Kdf.PSP_CMAC:
            return psp_sa_key(self.keymat, self.base_spi | sub_sa, aead.key_len), b""
        if p.kdf is not Kdf.NONE:
            km = eesp_subsa_keymat(p.kdf, self.keymat, sub_sa, aead.keymat_len)
            return km[:aead.key_len], km[aead.key_len:]
        key, salt = self.keymat[:aead.key_len], self.keymat[aead.key_len:]
        if p.nonce is NonceScheme.SUBSA_SALT:
            salt = (int.from_bytes(salt, "big") ^ sub_sa).to_bytes(SALT_LEN, "big")
        return key, salt

    def key_and_salt(self, sub_sa: int) -> tuple[bytes, bytes]:
        """The raw key and salt of a sub-SA, for handing to another implementation."""
        return self._key_and_salt(sub_sa)

    def get(self, sub_sa: int) -> tuple[AeadCipher, bytes, str]:
        """(cipher, salt, key_id) of a sub-SA."""
        hit = self._cache.get(sub_sa)
        if hit is None:
            key, salt = self._key_and_salt(sub_sa)
            cipher = self._ciphers.get(key)
            if cipher is None:
                cipher = self._ciphers[key] = AeadCipher(self.profile.aead_spec, key)
            key_id = hashlib.sha256(key).hexdigest()[:16]
            hit = self._cache[sub_sa] = (cipher, salt, key_id)
        return hit
