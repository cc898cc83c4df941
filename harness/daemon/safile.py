"""The SA file: how espspec configures a daemon (schema ``espspec-sa/1``).

Theory of operation: for each session, and again for each rekey, espspec writes one JSON
document per daemon and (re)starts or signals the daemon; the daemon reads it. The file
says everything a daemon needs and nothing about how it is implemented:

* ``schema`` -- the literal ``espspec-sa/1``; another value is refused, not guessed at.
* ``generation`` -- 0 for the SAs a session starts with, then 1, 2, ... after each rekey.
* ``profile`` -- ``Profile.axes()``: the name and every axis, so a daemon that does not
  know the name still knows the variant. ``Profile.from_axes`` validates it.
* ``encapsulation`` -- ``udp`` (ESP in UDP, RFC 3948; EESP and PSP over UDP as well) or
  ``esp`` (raw IP protocol 50, ESP framing only).
* ``local`` / ``peer`` -- the outer addresses and UDP ports (``port`` is ``null`` with
  ``esp``). Default ports: 4500 for ESP (strongSwan's NAT-T port), 4545 for EESP, 1000
  for PSP (``DEFAULT_PORTS``).
* ``tunnel`` -- the inner addresses: ``local`` is the daemon's own on the TUN device,
  ``peer`` the one it routes into the TUN (the other end's).
* ``interface`` -- the TUN device's name (1..15 bytes, as Linux allows).
* ``outbound`` / ``inbound`` -- one SA each: ``spi`` (the base SPI, an integer),
  ``keymat`` (hex, read as ``spec_model.keying`` says for the profile's nonce scheme) and
  ``sub_sas`` (the profile's sub-SA count, repeated so a daemon can check it).

``read`` checks every field and raises exactly one ``SaFileError`` subclass per way the
file can be wrong, with a one-line message that names the file and the field. ``write``
replaces the file atomically (a temporary file in the same folder, then rename), so a
daemon that re-reads on SIGHUP never sees half a file. ``SaFile.mirrored`` is the other
end's view of the same pair of SAs. Nothing here opens sockets or devices.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import os
from dataclasses import dataclass, fields, replace

from spec_model import Framing, Profile
from spec_model.errors import EspSpecError
from spec_model.keying import keymat_len

from .. import atomic_file
from spec_model.subsa import check_base_spi

__all__ = [
    "BadAddress", "BadEncapsulation", "BadGeneration", "BadInterface", "BadKeymat",
    "BadPort", "BadProfile", "BadSpi", "DEFAULT_PORTS", "ENCAPSULATIONS", "Endpoint",
    "MissingField", "NotJson", "SCHEMA", "SaFile", "SaFileError", "SaSpec",
    "SubSaCountMismatch", "UnknownField", "Unreadable", "WrongSchema", "WrongType",
    "default_port", "read", "write",
]

SCHEMA = "espspec-sa/1"
ENCAPSULATIONS = ("udp", "esp")
DEFAULT_PORTS = {Framing.ESP: 4500, Framing.EESP_FULL: 4545, Framing.EESP_OPTIMIZED: 4545,
                 Framing.PSP: 1000}
IFNAMSIZ = 16                       # Linux: 15 bytes and the terminating zero


class SaFileError(EspSpecError):
    """An SA file that cannot configure a daemon."""


class Unreadable(SaFileError):
    """The file cannot be opened or read, or is not UTF-8."""


class NotJson(SaFileError):
    """The file is not one JSON object."""


class WrongSchema(SaFileError):
    """``schema`` is missing or is not ``espspec-sa/1``."""


class MissingField(SaFileError):
    """A required field is absent."""


class UnknownField(SaFileError):
    """A field the schema does not have (a typo would otherwise be ignored)."""


class WrongType(SaFileError):
    """A field of the wrong JSON type (a string where an integer is due, ...)."""


class BadGeneration(SaFileError):
    """``generation`` is negative."""


class BadProfile(SaFileError):
    """The profile's axes are not a valid profile."""


class BadEncapsulation(SaFileError):
    """An unknown encapsulation, or ``esp`` with a framing other than ESP."""


class BadAddress(SaFileError):
    """Not an IP address, or addresses of different families where one is due."""


class BadPort(SaFileError):
    """A UDP port outside 1..65535, or a port given with ``esp``."""


class BadInterface(SaFileError):
    """An interface name Linux would refuse."""


class BadSpi(SaFileError):
    """A reserved or too large SPI, or one not aligned to the sub-SA block."""


class BadKeymat(SaFileError):
    """Key material that is not hex or has the wrong length for the profile."""


class SubSaCountMismatch(SaFileError):
    """An SA's ``sub_sas`` differs from the profile's sub-SA count."""


@dataclass(frozen=True)
class Endpoint:
    """One outer end: an IP address and, with ``udp``, a port."""
    address: str
    port: int | None


@dataclass(frozen=True)
class SaSpec:
    """One direction's SA."""
    spi: int
    keymat: bytes
    sub_sas: int


@dataclass(frozen=True)
class SaFile:
    profile: Profile
    generation: int
    encapsulation: str
    local: Endpoint
    peer: Endpoint
    tunnel_local: str
    tunnel_peer: str
    interface: str
    outbound: SaSpec
    inbound: SaSpec

    def to_json(self) -> dict:
        def sa(s: SaSpec) -> dict:
            return {"spi": s.spi, "keymat": s.keymat.hex(), "sub_sas": s.sub_sas}
        return {
            "schema": SCHEMA,
            "generation": self.generation,
            "profile": self.profile.axes(),
            "encapsulation": self.encapsulation,
            "local": {"address": self.local.address, "port": self.local.port},
            "peer": {"address": self.peer.address, "port": self.peer.port},
            "tunnel": {"local": self.tunnel_local, "peer": self.tunnel_peer},
            "interface": self.interface,
            "outbound": sa(self.outbound),
            "inbound": sa(self.inbound),
        }

    def mirrored(self, interface: str) -> "SaFile":
        """The other end's file: endpoints, inner addresses and SAs swapped."""
        return replace(self, local=self.peer, peer=self.local, tunnel_local=self.tunnel_peer,
                       tunnel_peer=self.tunnel_local, interface=interface,
                       outbound=self.inbound, inbound=self.outbound)

    def rekeyed(self, outbound: SaSpec, inbound: SaSpec) -> "SaFile":
        """The next generation: new SAs, everything else unchanged."""
        return replace(self, generation=self.generation + 1, outbound=outbound,
                       inbound=inbound)


def default_port(profile: Profile) -> int:
    return DEFAULT_PORTS[profile.framing]


def write(path: str | os.PathLike, sa: SaFile) -> None:
    """Write the file atomically: readers see the old file or the new one, never a mix."""
    atomic_file.replace(path, (json.dumps(sa.to_json(), indent=2) + "\n").encode())


# --- reading ------------------------------------------------------------------------------
_TOP = ("schema", "generation", "profile", "encapsulation", "local", "peer", "tunnel",
        "interface", "outbound", "inbound")
_JSON_TYPE = {int: "an integer", str: "a string", dict: "an object", bool: "a boolean"}


class _Reader:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, cls: type[SaFileError], field: str, why: str) -> SaFileError:
        return cls(f"{self.where}: {field}: {why}" if field else f"{self.where}: {why}")

    def obj(self, doc: dict, field: str, keys: tuple[str, ...]) -> dict:
        """``doc`` as an object with exactly ``keys``."""
        if type(doc) is not dict:
            raise self.fail(WrongType, field, f"expected an object, got {_kind(doc)}")
        for k in keys:
            if k not in doc:
                raise self.fail(MissingField, _join(field, k), "missing")
        extra = sorted(set(doc) - set(keys))
        if extra:
            raise self.fail(UnknownField, _join(field, extra[0]),
                            f"not in {SCHEMA} (fields here: {', '.join(keys)})")
        return doc

    def typed(self, value, field: str, kind: type, nullable: bool = False):
        if value is None and nullable:
            return None
        if type(value) is not kind:       # bool is not an int here
            raise self.fail(WrongType, field, f"expected {_JSON_TYPE[kind]}"
                            f"{' or null' if nullable else ''}, got {_kind(value)}")
        return value

    def address(self, value, field: str):
        text = self.typed(value, field, str)
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise self.fail(BadAddress, field, f"{text!r} is not an IP address") from None


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _kind(value) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def read(path: str | os.PathLike) -> SaFile:
    """Read and validate an SA file; raises one ``SaFileError`` subclass on any fault."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except OSError as e:
        raise Unreadable(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise Unreadable(f"{path}: not UTF-8 (byte {e.start})") from None
    return parse(text, path)


def parse(text: str, where: str = "<SA file>") -> SaFile:
    """Validate the text of an SA file (``read`` without the file)."""
    r = _Reader(where)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise r.fail(NotJson, "", f"not JSON: {e.msg} at line {e.lineno} column {e.colno}"
                     ) from None
    if type(doc) is not dict:
        raise r.fail(NotJson, "", f"expected one JSON object, got {_kind(doc)}")
    if doc.get("schema") != SCHEMA:
        got = doc.get("schema")
        raise r.fail(WrongSchema, "schema", f"expected {SCHEMA!r}, got "
                     f"{'nothing' if got is None else repr(got)}")
    r.obj(doc, "", _TOP)

    generation = r.typed(doc["generation"], "generation", int)
    if generation < 0:
        raise r.fail(BadGeneration, "generation", f"{generation} is negative")

    axes = r.typed(doc["profile"], "profile", dict)
    names = tuple(f.name for f in fields(Profile))
    r.obj(axes, "profile", names)
    for f in fields(Profile):
        default = f.default
        kind = str if isinstance(default, (str, enum.Enum)) else \
            bool if isinstance(default, bool) else int
        r.typed(axes[f.name], f"profile.{f.name}", kind, nullable=default is None)
    try:
        profile = Profile.from_axes(axes)
    except EspSpecError as e:
        raise r.fail(BadProfile, "profile", str(e).splitlines()[0]) from None
    except (TypeError, ValueError) as e:      # a value that is no member of its axis
        raise r.fail(BadProfile, "profile", str(e).splitlines()[0]) from None
    if not profile.name:
        raise r.fail(BadProfile, "profile.name", "empty")

    encap = r.typed(doc["encapsulation"], "encapsulation", str)
    if encap not in ENCAPSULATIONS:
        raise r.fail(BadEncapsulation, "encapsulation",
                     f"{encap!r}: expected one of {', '.join(ENCAPSULATIONS)}")
    if encap == "esp" and profile.framing is not Framing.ESP:
        raise r.fail(BadEncapsulation, "encapsulation", f"raw protocol 50 carries ESP "
                     f"only, not the {profile.framing.value} framing")

    ends = {}
    for side in ("local", "peer"):
        e = r.obj(doc[side], side, ("address", "port"))
        addr = r.address(e["address"], f"{side}.address")
        port = r.typed(e["port"], f"{side}.port", int, nullable=True)
        if encap == "udp" and port is None:
            raise r.fail(BadPort, f"{side}.port", "the udp encapsulation needs a port")
        if encap == "esp" and port is not None:
            raise r.fail(BadPort, f"{side}.port", "raw protocol 50 has no port (use null)")
        if port is not None and not 1 <= port <= 65535:
            raise r.fail(BadPort, f"{side}.port", f"{port} is outside 1..65535")
        ends[side] = (addr, port)
    if ends["local"][0].version != ends["peer"][0].version:
        raise r.fail(BadAddress, "peer.address", f"IPv{ends['peer'][0].version} where "
                     f"local.address is IPv{ends['local'][0].version}")

    t = r.obj(doc["tunnel"], "tunnel", ("local", "peer"))
    inner_local = r.address(t["local"], "tunnel.local")
    inner_peer = r.address(t["peer"], "tunnel.peer")
    if inner_local.version != inner_peer.version:
        raise r.fail(BadAddress, "tunnel.peer", f"IPv{inner_peer.version} where "
                     f"tunnel.local is IPv{inner_local.version}")
    if inner_local == inner_peer:
        raise r.fail(BadAddress, "tunnel.peer", "the same address as tunnel.local")

    ifname = r.typed(doc["interface"], "interface", str)
    if not 0 < len(ifname.encode()) < IFNAMSIZ or ifname in (".", "..") or any(
            c in ifname for c in "/:% \t\n\0"):
        raise r.fail(BadInterface, "interface", f"{ifname!r}: 1..15 bytes without '/', "
                     f"':', '%' or white space")

    sas = {}
    want_len = keymat_len(profile)
    for side in ("outbound", "inbound"):
        s = r.obj(doc[side], side, ("spi", "keymat", "sub_sas"))
        spi = r.typed(s["spi"], f"{side}.spi", int)
        try:
            check_base_spi(profile, spi)
        except EspSpecError as e:
            raise r.fail(BadSpi, f"{side}.spi", str(e).splitlines()[0]) from None
        hexed = r.typed(s["keymat"], f"{side}.keymat", str)
        try:
            keymat = bytes.fromhex(hexed)
        except ValueError:
            raise r.fail(BadKeymat, f"{side}.keymat", "not an even number of hex digits"
                         ) from None
        if len(keymat) != want_len:
            raise r.fail(BadKeymat, f"{side}.keymat", f"{len(keymat)} bytes; profile "
                         f"{profile.name} ({profile.aead}, nonce {profile.nonce.value}) "
                         f"takes {want_len}")
        n = r.typed(s["sub_sas"], f"{side}.sub_sas", int)
        if n != profile.n_sub_sas:
            raise r.fail(SubSaCountMismatch, f"{side}.sub_sas", f"{n}, but the profile "
                         f"has {profile.n_sub_sas} sub-SAs")
        sas[side] = SaSpec(spi, keymat, n)

    return SaFile(profile=profile, generation=generation, encapsulation=encap,
                  local=Endpoint(str(ends["local"][0]), ends["local"][1]),
                  peer=Endpoint(str(ends["peer"][0]), ends["peer"][1]),
                  tunnel_local=str(inner_local), tunnel_peer=str(inner_peer),
                  interface=ifname, outbound=sas["outbound"], inbound=sas["inbound"])


def example(profile: Profile, *, generation: int = 0, interface: str = "espd0",
            encapsulation: str = "udp") -> SaFile:
    """A complete file with documentation addresses and fixed, obviously fake keys
    (for the docs and tests; espspec derives real ones per session)."""
    port = default_port(profile) if encapsulation == "udp" else None
    n = keymat_len(profile)
    base = 0x1000 << 4
    return SaFile(profile=profile, generation=generation, encapsulation=encapsulation,
                  local=Endpoint("192.0.2.1", port), peer=Endpoint("192.0.2.2", port),
                  tunnel_local="198.51.100.1", tunnel_peer="198.51.100.2",
                  interface=interface,
                  outbound=SaSpec(base, bytes(range(1, n + 1)), profile.n_sub_sas),
                  inbound=SaSpec(base + 0x100, bytes(range(0x41, 0x41 + n)),
                                 profile.n_sub_sas))
