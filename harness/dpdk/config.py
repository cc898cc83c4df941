"""ipsec-secgw's configuration file and command line, written from espspec's terms.

Theory of operation: DPDK's ipsec-secgw example reads its SAs, policies, routes and
next-hop MACs from one static file (``-f``) and everything else from its command line.
This module turns espspec's vocabulary -- an SPI, an AEAD by espspec's name
(``aes128gcm16``), key material as key || 4-byte salt (RFC 4106 order), tunnel endpoints
and inner selectors -- into that file's lines and into the argv that starts it. It is
pure: frozen dataclasses and functions that return text; nothing here opens a file or
starts a process (``rig.py`` does).

The secgw's words, as its parser (``sa.c``, ``sp4.c``, ``sp6.c``, ``rt.c``, ``parser.c``)
reads them::

    sa out SPI aead_algo aes-128-gcm aead_key K:...:K:S:S:S:S mode ipv4-tunnel
        src A dst B [esn N] telemetry                  (each rule is one line in the file)
    sp ipv4 out esp protect SPI pri 1 src 203.0.113.1/32 dst 203.0.113.2/32
        sport 0:65535 dport 0:65535
    rt ipv4 dst 198.51.100.10/32 port 0
    neigh port 0 02:e5:50:00:00:0b

Ports: DPDK numbers the two net_tap vdevs in the order of the command line. Port 0
(``ESP_PORT``) faces the relay and carries ESP; port 1 (``PLAIN_PORT``) faces espspec's
plaintext side. Beware ipsec-secgw's own names, which read backwards to most people:
its "unprotected" ports (``-u`` mask) are the ones ESP arrives on (traffic received there
is "inbound"), its "protected" ports carry plaintext. So ``-u 0x1``.

What secgw accepts (from ``sa.c``'s tables, checked by running it): AEADs aes-128-gcm,
aes-192-gcm, aes-256-gcm (16-byte ICV only), aes-{128,192,256}-ccm and
chacha20-poly1305; espspec's model has no CCM, so ``AEADS`` maps the four GCM/ChaCha
names the model speaks, each to a software crypto vdev that has it (DPDK 22.11's OpenSSL
PMD has no ChaCha20-Poly1305; intel-ipsec-mb's ``crypto_chacha20_poly1305`` does).
SPIs 1..0xfffffffe (0 means DISCARD, 0xffffffff BYPASS in its policy table). Windows
0..2^21 (``-w``; 0 turns the replay check off, except that with ESN librte_ipsec raises it
to 64). A per-SA ``esn N`` (``SecgwSa.esn_start``) starts the outbound counter at N (the
first packet carries N) and the inbound window's top at N (nothing marked seen); it is
only coherent with ``-e``: without it the SA's ICV input matches neither ESN nor 32-bit
ESP (the crypto session's AAD length follows ``-e``, librte_ipsec's SA follows ``esn``), so
``check_esn`` refuses it. UDP encapsulation (``udp-encap``) exists only for
inline/lookaside-protocol offload SAs (hardware); a software SA (``no-offload``, what runs
here) is raw ESP, IP protocol 50.

The exception classes of the whole package live here, at its bottom layer, because this
module raises one of them (``BadSecgwConfig``); ``rig`` re-exports them all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from spec_model.errors import EspSpecError

ESP_PORT = 0            # DPDK port facing the relay (secgw: "unprotected", inbound side)
PLAIN_PORT = 1          # DPDK port facing espspec's plaintext side (secgw: "protected")
MAX_SPI = 0xFFFFFFFE    # 0xffffffff is BYPASS in secgw's policy table, 0 is DISCARD
SALT_LEN = 4


# --- the package's exceptions ------------------------------------------------------------


class SecgwError(EspSpecError):
    """Base of everything ``harness.dpdk`` raises on purpose; messages are one line."""


class BinaryMissing(SecgwError):
    """The ipsec-secgw binary is not where it was said to be (build it with
    scripts/build-ipsec-secgw)."""


class BadSecgwConfig(SecgwError):
    """A configuration ipsec-secgw cannot express or refused (AEAD, key length, SPI,
    window, core, addresses), found before starting it or in its own parse error."""


class SecgwStartFailed(SecgwError):
    """ipsec-secgw exited, or did not report its main loop, while starting."""


class SecgwDied(SecgwError):
    """An ipsec-secgw that was running is gone."""


# --- espspec's names in secgw's words ----------------------------------------------------


@dataclass(frozen=True)
class SecgwAead:
    espspec: str        # the model's name (spec_model.aead)
    secgw: str          # ipsec-secgw's aead_algo keyword
    key_len: int        # bytes, without the salt
    crypto: str         # the software crypto vdev that has it


OPENSSL = "crypto_openssl0"                       # AES-GCM (and CCM); no ChaCha20 in 22.11
IPSEC_MB_CHACHA = "crypto_chacha20_poly1305"      # intel-ipsec-mb's ChaCha20-Poly1305

AEADS: dict[str, SecgwAead] = {a.espspec: a for a in (
    SecgwAead("aes128gcm16", "aes-128-gcm", 16, OPENSSL),
    SecgwAead("aes192gcm16", "aes-192-gcm", 24, OPENSSL),
    SecgwAead("aes256gcm16", "aes-256-gcm", 32, OPENSSL),
    SecgwAead("chacha20poly1305", "chacha20-poly1305", 32, IPSEC_MB_CHACHA),
)}


def crypto_vdevs(*sas: "SecgwSa") -> tuple[str, ...]:
    """The crypto vdevs that cover the SAs' AEADs, in a fixed order. secgw maps each SA
    to a device that has its algorithm and refuses to start ("No cores found to handle
    SA") when none does: DPDK 22.11's OpenSSL PMD lacks ChaCha20-Poly1305."""
    wanted = {secgw_aead(sa.aead).crypto for sa in sas}
    return tuple(v for v in (OPENSSL, IPSEC_MB_CHACHA) if v in wanted)


def secgw_aead(name: str) -> SecgwAead:
    try:
        return AEADS[name]
    except KeyError:
        raise BadSecgwConfig(f"ipsec-secgw has no AEAD for espspec's {name!r}; it takes "
                             f"{', '.join(AEADS)} (GCM with a 16-byte ICV only)") from None


def colon_hex(data: bytes) -> str:
    """``de:ad:be:ef``: how secgw's parse_key_string reads keys."""
    return ":".join(f"{b:02x}" for b in data)


@dataclass(frozen=True)
class SecgwSa:
    """One SA in espspec's terms: SPI, AEAD (espspec's name), key || 4-byte salt.
    ``esn_start`` (optional, needs ESN on) is the SA's initial 64-bit sequence number:
    outbound, the first packet carries it (0 and 1 both mean 1); inbound, the window's
    top starts there with nothing marked seen."""
    spi: int
    aead: str
    keymat: bytes
    esn_start: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.spi <= MAX_SPI:
            raise BadSecgwConfig(f"SPI {self.spi:#x} outside 1..{MAX_SPI:#x} (secgw: 0 is "
                                 f"DISCARD, 0xffffffff BYPASS)")
        want = secgw_aead(self.aead).key_len + SALT_LEN
        if len(self.keymat) != want:
            raise BadSecgwConfig(f"{self.aead} needs {want} bytes of key material (key || "
                                 f"4-byte salt), got {len(self.keymat)}")
        if not 0 <= self.esn_start < 1 << 64:
            raise BadSecgwConfig(f"initial sequence number {self.esn_start} outside 0..2^64-1")

    def __repr__(self) -> str:            # keys stay out of logs and test reports
        return (f"SecgwSa(spi={self.spi:#x}, aead={self.aead!r}, keymat=<{len(self.keymat)} "
                f"bytes>, esn_start={self.esn_start})")


# --- the file's lines --------------------------------------------------------------------


def _ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(addr)
    except ValueError:
        raise BadSecgwConfig(f"not an IP address: {addr!r}") from None


def _net(selector: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A selector: an address (a host route) or an address/prefix."""
    try:
        return ipaddress.ip_network(selector, strict=False)
    except ValueError:
        raise BadSecgwConfig(f"not an address or network: {selector!r}") from None


def _family(version: int) -> str:
    return "ipv4" if version == 4 else "ipv6"


@dataclass(frozen=True)
class SaRule:
    """``sa in|out``: one SA in tunnel mode between two outer addresses."""
    direction: str          # "in" or "out"
    sa: SecgwSa
    src: str                # outer source (the sender's tunnel endpoint)
    dst: str                # outer destination
    telemetry: bool = True  # per-SA counters under /ipsec/sa/stats

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise BadSecgwConfig(f"an SA is 'in' or 'out', not {self.direction!r}")
        if _ip(self.src).version != _ip(self.dst).version:
            raise BadSecgwConfig(f"tunnel endpoints of two IP versions: {self.src} {self.dst}")

    def line(self) -> str:
        sa, aead = self.sa, secgw_aead(self.sa.aead)
        words = [f"sa {self.direction} {sa.spi} aead_algo {aead.secgw} aead_key "
                 f"{colon_hex(sa.keymat)} mode {_family(_ip(self.src).version)}-tunnel "
                 f"src {_ip(self.src)} dst {_ip(self.dst)}"]
        if sa.esn_start:
            words.append(f"esn {sa.esn_start}")
        if self.telemetry:
            words.append("telemetry")
        return " ".join(words)


@dataclass(frozen=True)
class SpRule:
    """``sp ipv4|ipv6 in|out esp protect SPI``: inner packets from src to dst use the SA.
    Outbound, it picks the SA for a plaintext packet; inbound, a decrypted packet must
    match it (else secgw drops it)."""
    direction: str
    spi: int
    src: str                # inner selector: address or address/prefix
    dst: str
    priority: int = 1

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise BadSecgwConfig(f"a policy is 'in' or 'out', not {self.direction!r}")
        if _net(self.src).version != _net(self.dst).version:
            raise BadSecgwConfig(f"inner selectors of two IP versions: {self.src} {self.dst}")

    def line(self) -> str:
        src, dst = _net(self.src), _net(self.dst)
        return (f"sp {_family(src.version)} {self.direction} esp protect {self.spi} "
                f"pri {self.priority} src {src} dst {dst} sport 0:65535 dport 0:65535")


@dataclass(frozen=True)
class Route:
    """``rt ipv4|ipv6 dst NET port N``: where a packet leaves after processing (outbound
    ESP is routed by its outer destination, decrypted packets by their inner one)."""
    dst: str
    port: int

    def line(self) -> str:
        net = _net(self.dst)
        return f"rt {_family(net.version)} dst {net} port {self.port}"


@dataclass(frozen=True)
class Neighbour:
    """``neigh port N MAC``: the destination MAC of every frame sent out of port N."""
    port: int
    mac: str

    def line(self) -> str:
        return f"neigh port {self.port} {self.mac.lower()}"


@dataclass(frozen=True)
class SecgwConfig:
    sas: tuple[SaRule, ...]
    policies: tuple[SpRule, ...]
    routes: tuple[Route, ...]
    neighbours: tuple[Neighbour, ...]

    def text(self) -> str:
        lines = ["# written by harness.dpdk.config; one SA per direction, tunnel mode"]
        for group in (self.policies, self.sas, self.routes, self.neighbours):
            lines.extend(rule.line() for rule in group)
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Tunnel:
    """One tunnel as the rig sees it: the secgw's outer address and its peer's, the
    inner hosts on either side, and the MACs frames go to on each port."""
    outbound: SecgwSa               # secgw -> peer
    inbound: SecgwSa                # peer -> secgw
    local_outer: str                # the secgw's tunnel endpoint (end a: 192.0.2.10)
    peer_outer: str                 # the peer's (end b: 198.51.100.10)
    inner_local: str = "203.0.113.1"    # behind the secgw: espspec's plaintext side
    inner_peer: str = "203.0.113.2"     # behind the peer
    peer_mac: str = "02:e5:50:00:00:0b"        # next hop of ESP (end b)
    plain_peer_mac: str = "02:e5:50:00:03:0a"  # where decrypted packets are addressed
    # a second inbound SA, the fence (None: none): its packets, from fence_inner to
    # inner_local, come out of the plaintext port after everything injected before them
    fence: SecgwSa | None = None
    fence_inner: str = "203.0.113.254"
    def __post_init__(self) -> None:
        if _ip(self.local_outer).version != _ip(self.peer_outer).version:
            raise BadSecgwConfig(f"tunnel endpoints of two IP versions: {self.local_outer} "
                                 f"{self.peer_outer}")
        if _net(self.inner_local).version != _net(self.inner_peer).version:
            raise BadSecgwConfig(f"inner selectors of two IP versions: {self.inner_local} "
                                 f"{self.inner_peer}")
        spis = [sa.spi for sa in (self.outbound, self.inbound, self.fence) if sa]
        if len(set(spis)) != len(spis):
            raise BadSecgwConfig(f"two of the tunnel's SAs share an SPI: "
                                 f"{', '.join(f'{spi:#x}' for spi in spis)}")
        if self.fence and _net(self.fence_inner).version != _net(self.inner_local).version:
            raise BadSecgwConfig(f"the fence's inner source {self.fence_inner} is not of "
                                 f"the inner hosts' IP version")


def check_esn(t: Tunnel, esn: bool) -> None:
    """An initial sequence number only with ESN on (see the module's docstring)."""
    if not esn:
        for sa in (t.outbound, t.inbound, t.fence):
            if sa is not None and sa.esn_start:
                raise BadSecgwConfig(f"SA {sa.spi:#x}: an initial sequence number "
                                     f"(esn_start) needs ESN on (-e); without it secgw "
                                     f"builds an SA that interoperates with nobody")


def tunnel_config(t: Tunnel) -> SecgwConfig:
    """The file for one tunnel: an outbound and an inbound SA (and the fence's inbound
    SA), their policies, a route to the peer's outer address out of the ESP port and one
    to the inner local host out of the plaintext port, and the next-hop MAC of each port.

    Inner packets are of one IP version, the inner hosts': secgw derives an SA's inner
    protocol from the policies naming its SPI and refuses to start when both an ipv4 and
    an ipv6 policy do (``get_spi_proto`` in sa.c: "SPI %u used simultaneously by IPv4(%d)
    and IPv6 (%d) SP rules", then "ipsec_satbl_init: failed to determine SA size, error
    code: -22"). One SA carries IPv4 or IPv6 inner packets, never both."""
    host = {4: 32, 6: 128}
    peer_outer = f"{_ip(t.peer_outer)}/{host[_ip(t.peer_outer).version]}"
    fence_sa, fence_sp = (), ()
    if t.fence is not None:
        fence_sa = (SaRule("in", t.fence, t.peer_outer, t.local_outer),)
        fence_sp = (SpRule("in", t.fence.spi, t.fence_inner, t.inner_local),)
    return SecgwConfig(
        sas=(SaRule("out", t.outbound, t.local_outer, t.peer_outer),
             SaRule("in", t.inbound, t.peer_outer, t.local_outer), *fence_sa),
        policies=(SpRule("out", t.outbound.spi, t.inner_local, t.inner_peer),
                  SpRule("in", t.inbound.spi, t.inner_peer, t.inner_local), *fence_sp),
        routes=(Route(peer_outer, ESP_PORT), Route(str(_net(t.inner_local)), PLAIN_PORT)),
        neighbours=(Neighbour(ESP_PORT, t.peer_mac), Neighbour(PLAIN_PORT, t.plain_peer_mac)),
    )


# --- the command line --------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """Everything on ipsec-secgw's command line besides the file."""
    binary: str
    config_path: str
    file_prefix: str            # DPDK runtime files under /var/run/dpdk/<prefix>
    core: int = 1               # the one lcore: main loop, both ports, busy-polled
    window: int = 64            # -w: anti-replay window (0: none)
    esn: bool = False           # -e: ESN on every SA
    memory_mb: int = 512        # -m, with --no-huge (anonymous memory, no hugepages)
    esp_tap: str = "sg-esp"     # net_tap interface names in the namespace
    plain_tap: str = "sg-plain"
    esp_mac: str = "02:e5:50:00:00:0a"      # the ESP port's MAC: TopologyConfig.a_mac
    plain_mac: str = "02:e5:50:00:02:0a"    # the plaintext port's MAC
    crypto: tuple[str, ...] = (OPENSSL,)     # software crypto vdevs (crypto_vdevs)
    extra_eal: tuple[str, ...] = field(default_factory=tuple)   # e.g. --log-level=...

    def __post_init__(self) -> None:
        if self.core < 0:
            raise BadSecgwConfig(f"core {self.core} is negative")
        if self.memory_mb < MIN_MEMORY_MB:
            raise BadSecgwConfig(f"ipsec-secgw needs -m {MIN_MEMORY_MB} or more with "
                                 f"--no-huge, not {self.memory_mb} (below it exits with "
                                 f"status 1 and no message, after its routes)")
        if not 0 <= self.window <= MAX_WINDOW:
            raise BadSecgwConfig(f"replay window {self.window} outside 0..{MAX_WINDOW}")
        for name in (self.esp_tap, self.plain_tap):
            if not 0 < len(name) <= 15 or "," in name:
                raise BadSecgwConfig(f"bad interface name {name!r} (1-15 characters, "
                                     f"no comma)")
        if not self.crypto:
            raise BadSecgwConfig("no crypto vdev")
        if self.esp_tap == self.plain_tap:
            raise BadSecgwConfig(f"both ports named {self.esp_tap!r}")


#: below this -m, secgw's IPv6 route table (rte_lpm6_create) does not fit: measured 320
MIN_MEMORY_MB = 320

#: the largest -w librte_ipsec takes: its bitmap has at most 32768 64-bit buckets; one more
#: and secgw exits ("failed to determine SA size, error code: -22")
MAX_WINDOW = 1 << 21


def launch_argv(launch: Launch) -> list[str]:
    """The argv that starts ipsec-secgw: EAL arguments, ``--``, the application's."""
    c = launch.core
    return [
        launch.binary, "-l", str(c), "--no-huge", "-m", str(launch.memory_mb), "--no-pci",
        "--file-prefix", launch.file_prefix, *launch.extra_eal,
        "--vdev", f"net_tap{ESP_PORT},iface={launch.esp_tap},mac={launch.esp_mac}",
        "--vdev", f"net_tap{PLAIN_PORT},iface={launch.plain_tap},mac={launch.plain_mac}",
        *(word for vdev in launch.crypto for word in ("--vdev", vdev)),
        "--",
        "-p", "0x3", "-P", "-u", f"{1 << ESP_PORT:#x}",
        "--config", f"({ESP_PORT},0,{c}),({PLAIN_PORT},0,{c})",
        "-f", launch.config_path, "-l", "-w", str(launch.window),
        *(["-e"] if launch.esn else []),
    ]
