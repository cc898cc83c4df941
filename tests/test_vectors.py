"""The model against published vectors nobody here wrote.

* draft-mcgrew-gcm-test-01: 14 ESP AES-GCM packets, with and without ESN. The model's
  sender must build each packet byte for byte, and its receiver must open it.
* Wycheproof AES-GCM and ChaCha20-Poly1305 (96-bit IV groups) through the AEAD layer, with
  the 12-byte IV read as salt(4) || IV(8) by the model's nonce construction.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from spec_model import ConfigError, Delivered, Profile, Receiver, Sender, SeqWire
from spec_model.aead import AEADS, AeadCipher
from spec_model.errors import IcvMismatch
from spec_model.nonce import build_nonce
from spec_model.wire import codec_for

from .conftest import SHIPPED_VECTORS, VECTORS, load_vectors

MCGREW = load_vectors("esp-gcm-mcgrew.json")["tests"]


def _profile(tc: dict) -> Profile:
    return Profile(name=f"mcgrew-{tc['tcId']}", seq=SeqWire.ESN if tc["esn"] else SeqWire.SEQ32,
                   aead=f"aes{tc['keySize']}gcm{tc['icvSize']}")


def _payload(tc: dict) -> bytes:
    pt = bytes.fromhex(tc["plaintext"])
    return pt[:len(pt) - 2 - tc["padLength"]]


@pytest.mark.parametrize("tc", MCGREW, ids=lambda tc: f"tc{tc['tcId']}")
def test_mcgrew_packet_built_byte_for_byte(tc):
    profile = _profile(tc)
    keymat = bytes.fromhex(tc["key"] + tc["salt"])
    spi = int(tc["spi"], 16)
    if spi < 256:
        # RFC 4303 §2.1: SPI 0 is local-use only; the model refuses to send it.
        # (test_mcgrew_packet_layers builds this vector with the codec layer)
        with pytest.raises(ConfigError, match="reserved"):
            Sender(profile, keymat, spi)
        return
    sender = Sender(profile, keymat, spi)
    sender.set_counter(0, tc["seq"] - 1)
    sealed = sender.seal(0, _payload(tc), tc["nextHeader"],
                         iv_override=int(tc["iv"], 16))
    assert sealed.wire.hex() == tc["esp"]
    assert sealed.seq == tc["seq"]
    assert sealed.nonce == bytes.fromhex(tc["salt"] + tc["iv"])


@pytest.mark.parametrize("tc", MCGREW, ids=lambda tc: f"tc{tc['tcId']}")
def test_mcgrew_packet_layers(tc):
    """Codec, AAD and nonce layers reproduce every vector, SPI 0 included."""
    profile = _profile(tc)
    codec = codec_for(profile)
    wire = bytes.fromhex(tc["esp"])
    pkt = codec.decode(wire)
    assert pkt.spi == int(tc["spi"], 16) and pkt.seq == tc["seq"] & 0xFFFFFFFF
    assert pkt.iv.hex() == tc["iv"]
    aad = codec.aad(wire[:codec.header_len], tc["seq"])
    assert aad.hex() == tc["aad"]
    nonce = build_nonce(profile, bytes.fromhex(tc["salt"]), pkt.spi, int(tc["iv"], 16))
    cipher = AeadCipher(profile.aead_spec, bytes.fromhex(tc["key"]))
    assert cipher.open(nonce, pkt.ciphertext, pkt.icv, aad).hex() == tc["plaintext"]
    assert codec.encode(pkt) == wire


@pytest.mark.parametrize("tc", MCGREW, ids=lambda tc: f"tc{tc['tcId']}")
def test_mcgrew_packet_opened_by_receiver(tc):
    spi = int(tc["spi"], 16)
    profile = _profile(tc)
    if spi < 256:   # RFC 4303 §2.1; test_mcgrew_packet_layers opens this vector
        with pytest.raises(ConfigError, match="reserved"):
            Receiver(profile, bytes.fromhex(tc["key"] + tc["salt"]), spi)
        return
    receiver = Receiver(profile, bytes.fromhex(tc["key"] + tc["salt"]), spi)
    if tc["seq"] > 1:
        receiver.jump(0, tc["seq"] - 1)
    out = receiver.open(bytes.fromhex(tc["esp"]))
    assert isinstance(out, Delivered), out
    assert out.seq == tc["seq"]
    assert out.payload == _payload(tc) and out.next_header == tc["nextHeader"]
    # the same packet again is a replay
    assert not isinstance(receiver.open(bytes.fromhex(tc["esp"])), Delivered)




# --- Wycheproof ----------------------------------------------------------------------------

def _wycheproof(name: str):
    data = load_vectors(f"wycheproof/{name}")
    for group in data["testGroups"]:
        if group["ivSize"] != 96:
            continue
        for t in group["tests"]:
            yield pytest.param(group, t, id=f"{name.split('_test')[0]}-{t['tcId']}")


def _aead_for(family: str, key_len: int, tag_bits: int):
    for a in AEADS.values():
        if a.family == family and a.key_len == key_len and a.icv_len * 8 == tag_bits:
            return a
    raise LookupError((family, key_len, tag_bits))


def _check_wycheproof(family: str, group: dict, t: dict) -> None:
    aead = _aead_for(family, group["keySize"] // 8, group["tagSize"])
    iv = bytes.fromhex(t["iv"])
    salt, explicit = iv[:4], int.from_bytes(iv[4:], "big")
    nonce = build_nonce(Profile(aead=aead.name), salt, 0x1000, explicit)
    assert nonce == iv
    cipher = AeadCipher(aead, bytes.fromhex(t["key"]))
    aad, msg = bytes.fromhex(t["aad"]), bytes.fromhex(t["msg"])
    ct, tag = bytes.fromhex(t["ct"]), bytes.fromhex(t["tag"])
    if t["result"] == "valid":
        assert cipher.seal(nonce, msg, aad) == (ct, tag)
        assert cipher.open(nonce, ct, tag, aad) == msg
    elif t["result"] == "invalid":
        with pytest.raises(IcvMismatch):
            cipher.open(nonce, ct, tag, aad)
    else:  # "acceptable": either outcome is allowed, but it must not crash
        try:
            cipher.open(nonce, ct, tag, aad)
        except IcvMismatch:
            pass


WYCHEPROOF_AES_GCM = list(_wycheproof("aes_gcm_test.json"))
WYCHEPROOF_CHACHA20_POLY1305 = list(_wycheproof("chacha20_poly1305_test.json"))


@pytest.mark.parametrize("group,t", WYCHEPROOF_AES_GCM)
def test_wycheproof_aes_gcm(group, t):
    _check_wycheproof("aes-gcm", group, t)


@pytest.mark.parametrize("group,t", WYCHEPROOF_CHACHA20_POLY1305)
def test_wycheproof_chacha20_poly1305(group, t):
    _check_wycheproof("chacha20-poly1305", group, t)


# --- the vectors in use: pinned, so that none can vanish without failing the run -------------

def _results(params) -> Counter:
    return Counter(p.values[1]["result"] for p in params)


def test_vector_counts_are_pinned():
    """14 McGrew packets; the Wycheproof vectors in 96-bit-IV groups, by expected result.

    A file that shrank, lost its 96-bit groups, or a filter that drops vectors fails here
    (an empty parameter list would otherwise be a quiet skip)."""
    assert len(MCGREW) == 14
    assert Counter(tc["esn"] for tc in MCGREW) == {True: 9, False: 5}
    assert len({tc["tcId"] for tc in MCGREW}) == 14
    assert _results(WYCHEPROOF_AES_GCM) == {"valid": 116, "invalid": 81}
    assert _results(WYCHEPROOF_CHACHA20_POLY1305) == {"valid": 256, "invalid": 60}
    for params in (WYCHEPROOF_AES_GCM, WYCHEPROOF_CHACHA20_POLY1305):
        assert len({p.id for p in params}) == len(params)


def _published_sums() -> dict[str, str]:
    lines = (SHIPPED_VECTORS / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_vector_files_are_the_published_ones():
    """The files read (corpora/vectors/, or ESPSPEC_VECTORS) are byte-identical to the
    published files recorded in corpora/vectors/SHA256SUMS (see corpora/vectors/README.md)."""
    sums = _published_sums()
    assert sorted(sums) == ["esp-gcm-mcgrew.json", "wycheproof/aes_gcm_test.json",
                            "wycheproof/chacha20_poly1305_test.json"]
    for name, digest in sums.items():
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", ["aes128gcm8", "aes128gcm12", "aes256gcm8", "aes256gcm12"])
def test_truncated_gcm_icv_is_prefix_of_full_tag(name):
    aead = AEADS[name]
    full = AEADS[f"aes{aead.key_len * 8}gcm16"]
    key, nonce, aad, msg = bytes(range(aead.key_len)), bytes(12), b"aad", b"payload bytes"
    ct, icv = AeadCipher(aead, key).seal(nonce, msg, aad)
    ct16, icv16 = AeadCipher(full, key).seal(nonce, msg, aad)
    assert ct == ct16 and icv == icv16[:aead.icv_len]
    assert AeadCipher(aead, key).open(nonce, ct, icv, aad) == msg
    with pytest.raises(IcvMismatch):
        AeadCipher(aead, key).open(nonce, ct, bytes([icv[0] ^ 1]) + icv[1:], aad)
    with pytest.raises(IcvMismatch):   # a shorter ICV than the AEAD's is refused
        AeadCipher(aead, key).open(nonce, ct, icv[:-1], aad)
