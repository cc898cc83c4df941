"""Key files for offline checking: Wireshark's esp_sa table and espspec's own JSON.

Theory of operation: ``load_keys(path, profile)`` reads either format (JSON when the first
non-blank character is ``{``, otherwise an esp_sa UAT table) and returns one ``SaKey`` per
child SA: base SPI, validated ``Profile``, key material as ``spec_model.keying`` reads it,
direction and optional addresses. Every entry is validated by building the model's
``Keying`` and checking the SPI block, so a key file that loads is one the checker can use.
Anything wrong raises a ``KeysError`` subclass whose message is one line naming the file
and line.

espspec key file (written by ``espspec gen-pcap``)::

    {"sas": [{"spi": "0x00010000", "profile": "eesp-v0", "keymat": "<hex>",
              "direction": "out", "src": "192.0.2.1", "dst": "198.51.100.1",
              "overrides": {"hard_packets": 100}, "esn_start": 0}]}

``overrides`` replaces profile axes (limits, window, ...); ``esn_start`` is the 64-bit
sequence number the receiver side is assumed to have reached before the capture starts
(ESN inference of a capture that starts mid-stream).

Wireshark esp_sa table (``esp_sa`` file in a Wireshark configuration folder), one SA per
line, eight quoted fields::

    "IPv4","192.0.2.1","198.51.100.1","0x00001000","AES-GCM with 16 octet ICV [RFC4106]","0x<key||salt>","NULL","0x"

The algorithm strings accepted are the AEAD ones of Wireshark 4.0's ESP dissector (checked
against the strings in its libwireshark): ``AES-GCM with 8|12|16 octet ICV [RFC4106]``,
the key length choosing AES-128/192/256. Wireshark 4.0 has no ESP ChaCha20-Poly1305
entry, so such SAs need an espspec key file. The table has no notion of a profile: the
caller names one (``--profile``) and the table's AEAD replaces the profile's. With the
sub-SA ID in the SPI, the lines of one SPI block (one per sub-SA, as ``gen-pcap`` writes
them) are folded into one SA; their keys must agree with the profile's keying.
"""

from __future__ import annotations

import csv
import enum
import ipaddress
import json
import os
from dataclasses import dataclass, fields

from spec_model import NAMED, Profile, named
from spec_model.aead import AEADS
from spec_model.errors import EspSpecError
from spec_model.keying import Keying
from spec_model.profile import Kdf, NonceScheme, SubSaLocation
from spec_model.subsa import check_base_spi, spi_for

__all__ = ["KeysError", "KeysFileError", "KeyEntryError", "SaKey", "load_keys",
           "parse_esp_sa", "parse_espspec_json", "write_esp_sa", "write_espspec_keys",
           "wireshark_algorithm", "esp_sa_lines", "esp_sa_text", "espspec_keys_text",
           "WIRESHARK_AEADS", "apply_overrides", "validate"]


class KeysError(EspSpecError):
    """A key file espspec cannot use. The message is one line naming file and line."""


class KeysFileError(KeysError):
    """The file cannot be read or is not in either format."""


class KeyEntryError(KeysError):
    """One entry of the file is wrong (SPI, algorithm, key length, profile...)."""


#: Wireshark 4.0 esp_sa encryption algorithm strings for AEADs -> ICV length
WIRESHARK_AEADS = {
    "AES-GCM with 8 octet ICV [RFC4106]": 8,
    "AES-GCM with 12 octet ICV [RFC4106]": 12,
    "AES-GCM with 16 octet ICV [RFC4106]": 16,
}
_GCM_NAMES = {(16, 16): "aes128gcm16", (24, 16): "aes192gcm16", (32, 16): "aes256gcm16",
              (16, 12): "aes128gcm12", (32, 12): "aes256gcm12",
              (16, 8): "aes128gcm8", (32, 8): "aes256gcm8"}


@dataclass(frozen=True)
class SaKey:
    """One child SA as the checker needs it."""
    spi: int                      # base SPI (sub-SA i uses spi | i with the ID in the SPI)
    profile: Profile
    keymat: bytes                 # as spec_model.keying reads it
    direction: str = "out"        # informational: "out" or "in"
    src: str | None = None        # outer addresses, None = any
    dst: str | None = None
    esn_start: int = 0            # 64-bit SN assumed reached before the capture starts
    origin: str = ""              # "file:line" of the entry, for messages

    def spis(self) -> list[int]:
        """Every SPI that belongs to this SA (the whole block with the ID in the SPI)."""
        p = self.profile
        if p.subsa is SubSaLocation.SPI:
            return [self.spi | i for i in range(1 << p.subsa_bits)]
        return [self.spi]

    def label(self) -> str:
        return f"SPI {self.spi:#010x} ({self.profile.name})"


def wireshark_algorithm(aead: str) -> str | None:
    """The Wireshark 4.0 esp_sa algorithm string of an espspec AEAD, None if it has none."""
    spec = AEADS[aead]
    if spec.family != "aes-gcm":
        return None
    return f"AES-GCM with {spec.icv_len} octet ICV [RFC4106]"


def validate(sa: SaKey) -> SaKey:
    """The SA if the model can key it (SPI block, key length), else KeyEntryError."""
    try:
        check_base_spi(sa.profile, sa.spi)
        Keying(sa.profile, sa.keymat, sa.spi)
    except EspSpecError as e:
        raise KeyEntryError(f"{sa.origin}: {e}") from None
    if not 0 <= sa.esn_start < 1 << 64:
        raise KeyEntryError(f"{sa.origin}: esn_start {sa.esn_start} outside 0..2^64-1")
    return sa


def _addr(value, origin: str) -> str | None:
    if value in (None, "", "*"):
        return None
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise KeyEntryError(f"{origin}: {value!r} is not an IP address") from None


def _int(value, what: str, origin: str) -> int:
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise KeyEntryError(f"{origin}: {what} {value!r} is not a number") from None


def _hex(value, what: str, origin: str) -> bytes:
    text = str(value).strip()
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KeyEntryError(f"{origin}: {what} is not hexadecimal") from None


def apply_overrides(profile: Profile, overrides: dict, origin: str) -> Profile:
    """The profile with some axes replaced: any field of ``Profile`` but its name, given
    as the plain values ``Profile.axes()`` prints (enum values as strings)."""
    if not overrides:
        return profile
    axes = {f.name: getattr(profile, f.name) for f in fields(Profile) if f.name != "name"}
    changes = {}
    for key, value in overrides.items():
        if key not in axes:
            raise KeyEntryError(f"{origin}: cannot override {key!r}; profile axes are "
                                f"{', '.join(axes)}")
        current = axes[key]
        if isinstance(current, enum.Enum):
            try:
                changes[key] = type(current)(value)
            except ValueError:
                raise KeyEntryError(f"{origin}: {key} is one of "
                                    f"{', '.join(str(m.value) for m in type(current))}, "
                                    f"not {value!r}") from None
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise KeyEntryError(f"{origin}: override {key} must be true or false")
            changes[key] = value
        elif key == "aead":
            if value not in AEADS:
                raise KeyEntryError(f"{origin}: unknown AEAD {value!r}")
            changes[key] = value
        else:            # counts and limits: int or None
            changes[key] = None if value is None else _int(value, key, origin)
    try:
        return profile.replace(name=profile.name, **changes)
    except EspSpecError as e:
        raise KeyEntryError(f"{origin}: {e}") from None


def _profile(value, origin: str) -> Profile:
    if isinstance(value, Profile):
        return value
    if value not in NAMED:
        raise KeyEntryError(f"{origin}: unknown profile {value!r}; known: {', '.join(NAMED)}")
    return named(value)


# --- espspec JSON ------------------------------------------------------------------------


def parse_espspec_json(text: str, source: str = "<keys>",
                       default_profile: Profile | None = None) -> list[SaKey]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise KeysFileError(f"{source}:{e.lineno}: not valid JSON ({e.msg})") from None
    entries = doc.get("sas") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeysFileError(f"{source}: expected {{\"sas\": [...]}} with at least one SA")
    out = []
    for i, e in enumerate(entries):
        origin = f"{source}: SA #{i + 1}"
        if not isinstance(e, dict):
            raise KeyEntryError(f"{origin}: an SA is a JSON object")
        unknown = set(e) - {"spi", "profile", "keymat", "direction", "src", "dst",
                            "overrides", "esn_start", "comment"}
        if unknown:
            raise KeyEntryError(f"{origin}: unknown field(s) {', '.join(sorted(unknown))}")
        for req in ("spi", "keymat"):
            if req not in e:
                raise KeyEntryError(f"{origin}: missing {req!r}")
        if "profile" in e:
            profile = _profile(e["profile"], origin)
        elif default_profile is not None:
            profile = default_profile
        else:
            raise KeyEntryError(f"{origin}: no profile (give one in the file or --profile)")
        overrides = e.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise KeyEntryError(f"{origin}: overrides must be an object")
        profile = apply_overrides(profile, overrides, origin)
        direction = e.get("direction", "out")
        if direction not in ("out", "in"):
            raise KeyEntryError(f"{origin}: direction must be \"out\" or \"in\"")
        out.append(validate(SaKey(
            spi=_int(e["spi"], "SPI", origin), profile=profile,
            keymat=_hex(e["keymat"], "keymat", origin), direction=direction,
            src=_addr(e.get("src"), origin), dst=_addr(e.get("dst"), origin),
            esn_start=_int(e.get("esn_start", 0), "esn_start", origin), origin=origin)))
    _check_unique(out)
    return out


def espspec_entry(sa: SaKey) -> dict:
    entry = {"spi": f"{sa.spi:#010x}", "profile": sa.profile.name, "keymat": sa.keymat.hex(),
             "direction": sa.direction}
    if sa.src:
        entry["src"] = sa.src
    if sa.dst:
        entry["dst"] = sa.dst
    base = NAMED.get(sa.profile.name)
    if base is not None and base != sa.profile:
        over = {k: v for k, v in sa.profile.axes().items()
                if k != "name" and v != base.axes()[k]}
        if over:
            entry["overrides"] = over
    if sa.esn_start:
        entry["esn_start"] = sa.esn_start
    return entry


def espspec_keys_text(sas: list[SaKey]) -> str:
    """The espspec JSON key file of ``sas``, as ``write_espspec_keys`` writes it."""
    return json.dumps({"sas": [espspec_entry(sa) for sa in sas]}, indent=1) + "\n"


def write_espspec_keys(path: str | os.PathLike, sas: list[SaKey]) -> None:
    with open(path, "w") as f:
        f.write(espspec_keys_text(sas))


# --- Wireshark esp_sa --------------------------------------------------------------------


def esp_sa_lines(sa: SaKey) -> list[str]:
    """esp_sa lines of one SA (one per sub-SA SPI), or a comment saying why there is none."""
    p = sa.profile
    alg = wireshark_algorithm(p.aead)
    why = None
    if p.framing.value != "esp":
        why = f"framing {p.framing.value} (Wireshark 4.0 dissects ESP only)"
    elif p.nonce is NonceScheme.IMPLICIT_IV:
        why = "implicit IV (RFC 8750)"
    elif p.kdf is not Kdf.NONE:
        why = f"per-sub-SA keys from {p.kdf.value}"
    elif alg is None:
        why = f"AEAD {p.aead} (no Wireshark 4.0 ESP algorithm)"
    if why:
        return [f"# espspec: SA {sa.spi:#010x} ({p.name}) not expressible: {why}"]
    keying = Keying(p, sa.keymat, sa.spi)
    key = sa.keymat[:p.aead_spec.key_len]
    proto = "IPv6" if sa.dst and ":" in sa.dst else "IPv4"
    lines = []
    subs = range(p.n_sub_sas) if p.subsa is SubSaLocation.SPI else [0]
    for i in subs:
        salt = keying.get(i)[1]
        lines.append(",".join(f'"{v}"' for v in (
            proto, sa.src or "*", sa.dst or "*", f"{spi_for(p, sa.spi, i):#010x}", alg,
            "0x" + (key + salt).hex(), "NULL", "0x")))
    return lines


def esp_sa_text(sas: list[SaKey]) -> str:
    """The Wireshark esp_sa table of ``sas``, as ``write_esp_sa`` writes it."""
    lines = ["# Wireshark esp_sa table written by espspec gen-pcap"]
    for sa in sas:
        lines += esp_sa_lines(sa)
    return "\n".join(lines) + "\n"


def write_esp_sa(path: str | os.PathLike, sas: list[SaKey]) -> int:
    """Write the esp_sa table; return the number of SA lines (comments excluded)."""
    text = esp_sa_text(sas)
    with open(path, "w") as f:
        f.write(text)
    return sum(1 for line in text.splitlines() if not line.startswith("#"))


def parse_esp_sa(text: str, source: str, profile: Profile | None) -> list[SaKey]:
    if profile is None:
        raise KeysFileError(f"{source}: an esp_sa table names no profile; give --profile")
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        origin = f"{source}:{lineno}"
        try:
            cells = next(csv.reader([stripped], skipinitialspace=True))
        except csv.Error as e:
            raise KeyEntryError(f"{origin}: {e}") from None
        if len(cells) != 8:
            raise KeyEntryError(f"{origin}: {len(cells)} fields, an esp_sa line has 8 "
                                f"(protocol, src, dst, SPI, encryption, key, "
                                f"authentication, key)")
        proto, src, dst, spi, enc, key, auth, _akey = (c.strip() for c in cells)
        if proto not in ("IPv4", "IPv6", "Any"):
            raise KeyEntryError(f"{origin}: protocol {proto!r} is not IPv4 or IPv6")
        if enc not in WIRESHARK_AEADS:
            raise KeyEntryError(f"{origin}: encryption {enc!r} is not an AEAD espspec "
                                f"checks; use one of: {'; '.join(WIRESHARK_AEADS)}")
        if auth != "NULL":
            raise KeyEntryError(f"{origin}: an AEAD SA has authentication NULL, not {auth!r}")
        if spi == "*":
            raise KeyEntryError(f"{origin}: a wildcard SPI cannot be checked")
        keybytes = _hex(key, "encryption key", origin)
        aead = _GCM_NAMES.get((len(keybytes) - 4, WIRESHARK_AEADS[enc]))
        if aead is None:
            raise KeyEntryError(f"{origin}: {len(keybytes)}-byte key||salt does not fit "
                                f"{enc} (16, 24 or 32 key bytes plus a 4-byte salt)")
        rows.append((origin, _int(spi, "SPI", origin), aead, keybytes,
                     _addr(src, origin), _addr(dst, origin)))
    if not rows:
        raise KeysFileError(f"{source}: no SA lines")
    return _fold_esp_sa(rows, profile)


def _fold_esp_sa(rows, profile: Profile) -> list[SaKey]:
    if profile.kdf is not Kdf.NONE or profile.framing.value != "esp":
        raise KeysFileError(f"{rows[0][0]}: profile {profile.name} cannot be keyed from an "
                            f"esp_sa table (it needs {profile.kdf.value} keys or "
                            f"{profile.framing.value} framing); use an espspec key file")
    out: list[SaKey] = []
    if profile.subsa is SubSaLocation.SPI:
        bits = profile.subsa_bits
        blocks: dict[int, list] = {}
        for row in rows:
            blocks.setdefault(row[1] >> bits << bits, []).append(row)
        for base, members in blocks.items():
            origin, _spi, aead, keybytes, src, dst = members[0]
            p = profile if aead == profile.aead else profile.replace(name=profile.name,
                                                                     aead=aead)
            klen = p.aead_spec.key_len
            # sub-SA 0's salt is the SA's salt (subsa-salt XORs the ID into it)
            sub = members[0][1] - base
            salt = int.from_bytes(keybytes[klen:], "big")
            if p.nonce is NonceScheme.SUBSA_SALT:
                salt ^= sub
            keymat = keybytes[:klen] + salt.to_bytes(4, "big")
            sa = validate(SaKey(base, p, keymat, "out", src, dst, 0, origin))
            keying = Keying(p, keymat, base)
            for row in members:
                i = row[1] - base
                want = keymat[:klen] + (keying.get(i)[1] if i < p.n_sub_sas else b"")
                if row[2] != aead or row[3] != want:
                    raise KeyEntryError(f"{row[0]}: SPI {row[1]:#010x} is sub-SA {i} of "
                                        f"{base:#010x} but its key does not follow profile "
                                        f"{p.name}'s keying")
            out.append(sa)
    else:
        for origin, spi, aead, keybytes, src, dst in rows:
            p = profile if aead == profile.aead else profile.replace(name=profile.name,
                                                                     aead=aead)
            out.append(validate(SaKey(spi, p, keybytes, "out", src, dst, 0, origin)))
    _check_unique(out)
    return out


def _check_unique(sas: list[SaKey]) -> None:
    seen: dict[tuple, str] = {}
    for sa in sas:
        for spi in sa.spis():
            key = (sa.profile.framing.value == "esp", spi, sa.src, sa.dst)
            if key in seen:
                raise KeyEntryError(f"{sa.origin}: SPI {spi:#010x} already belongs to the SA "
                                    f"of {seen[key]}")
            seen[key] = sa.origin


# --- entry point ---------------------------------------------------------------------------


def load_keys(path: str | os.PathLike, profile: str | Profile | None = None) -> list[SaKey]:
    """Read a key file of either format. ``profile`` is needed for esp_sa tables and is
    the default of JSON entries without one."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e).split("\n")[0]
        raise KeysFileError(f"{source}: cannot read key file: {msg}") from None
    prof = None
    if profile is not None:
        try:
            prof = _profile(profile, source)
        except KeyEntryError as e:
            raise KeysFileError(str(e)) from None
    if text.lstrip().startswith("{"):
        return parse_espspec_json(text, source, prof)
    return parse_esp_sa(text, source, prof)
