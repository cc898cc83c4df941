"""Per-sub-SA key derivation functions.

Theory of operation: two derivations, each a pure function of its inputs.
EESP (draft-ietf-ipsecme-eesp-04 Sub SA keys, EESP-IKEv2 §3.1.1): KEYMAT_sub =
HKDF-Expand(root key, info = Session ID as 2 octets, L), where L = AEAD key length + 4 and
the last 4 octets are the sub-SA's salt (the RFC 4106 KEYMAT convention).
PSP: the SA key is AES-CMAC under the 256-bit master key in SP 800-108 counter mode over
16-byte blocks ``[0,0,0,ctr] ["P","v", 0x30|0x31, 0] [SPI] [0,0,len_hi,len_lo]`` with the
output length in bits, one block per 128 bits of key. Choosing which derivation a profile
uses, and caching results, is ``keying.py``'s business.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .errors import ConfigError
from .profile import Kdf

HKDF_HASHES = {Kdf.HKDF_SHA256: hashes.SHA256, Kdf.HKDF_SHA384: hashes.SHA384,
               Kdf.HKDF_SHA512: hashes.SHA512}
#: root key length per SSKDF (EESP-IKEv2 SSKDF registry); PSP master keys are 256-bit
ROOT_KEY_LEN = {Kdf.HKDF_SHA256: 32, Kdf.HKDF_SHA384: 48, Kdf.HKDF_SHA512: 64,
                Kdf.PSP_CMAC: 32}


def eesp_subsa_keymat(kdf: Kdf, root: bytes, session_id: int, length: int) -> bytes:
    if len(root) != ROOT_KEY_LEN[kdf]:
        raise ConfigError(f"{kdf.value} needs a {ROOT_KEY_LEN[kdf]}-byte root key, "
                          f"got {len(root)}", requirement="KDF-SUBSA-KEY")
    info = struct.pack("!H", session_id)
    return HKDFExpand(HKDF_HASHES[kdf](), length, info).derive(root)


def psp_sa_key(master: bytes, spi: int, key_len: int) -> bytes:
    if len(master) != 32:
        raise ConfigError(f"PSP needs a 32-byte master key, got {len(master)}",
                          requirement="KDF-PSP-KEY")
    if key_len not in (16, 32):
        raise ConfigError("PSP keys are 128 or 256 bits", requirement="KDF-PSP-KEY")
    bits = key_len * 8
    label = b"Pv" + (b"0" if key_len == 16 else b"1") + b"\x00"
    out = b""
    for ctr in range(1, key_len // 16 + 1):
        block = struct.pack("!I", ctr) + label + struct.pack("!II", spi, bits)
        mac = CMAC(algorithms.AES(master))
        mac.update(block)
        out += mac.finalize()
    return out
