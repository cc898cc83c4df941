"""Evidence of a session over the network: its frames as a pcap, its keys for Wireshark.

Theory of operation: an adapter that drives an implementation over a wire
(``harness.adapters.tun_daemon``) has every frame of a session -- what the relay saw and
what espspec injected -- and the SAs the session ran on. ``bundle(frames, sas)`` turns
them into the files of one evidence folder, file name -> bytes, the answer of the IUT's
optional ``evidence`` verb (``harness.contract``):

* ``packets.pcap`` -- a classic pcap (little-endian, microsecond timestamps,
  LINKTYPE_ETHERNET), one record per frame in the order of their times. ``frames`` are
  ``(seconds since the epoch, Ethernet frame)`` pairs. (``harness.pcapcheck.pcapwriter``
  writes to a path and times its records by their index; evidence keeps the frames' own
  times and stays in memory.)
* ``esp_sa`` -- the Wireshark esp_sa table of every SA, written by
  ``harness.pcapcheck.keys.esp_sa_text``: per SA its SPI (per sub-SA SPI with the ID in
  the SPI), the outer source and destination its direction has, the AEAD and key||salt.
  An SA Wireshark 4.0 cannot express is a comment line saying why.
* ``README.txt`` -- what the folder holds, the ``tshark`` command that decrypts the
  capture, and what Wireshark 4.0 will not show (``wireshark_limits``): EESP and PSP
  framing, implicit IVs and derived per-sub-SA keys (no esp_sa entry at all), 64-bit
  sequence numbers on the wire (it reads 4 bytes), extended sequence numbers (decrypted,
  but the ICV check fails: Wireshark leaves the high 32 bits out of the AAD), and
  sub-SAs that share an SPI but not a salt (only sub-SA 0 decrypts).

Nothing here reads a clock, a file or the network: frames and SAs in, bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from spec_model.keying import Keying
from spec_model.profile import Kdf, SeqWire, SubSaLocation

from ..contract import SaConfig
from ..pcapcheck.keys import SaKey, esp_sa_lines, esp_sa_text
from ..pcapcheck.pcapwriter import pcap_bytes

__all__ = ["DirectedSa", "PCAP", "ESP_SA", "README", "bundle", "pcap_bytes",
           "wireshark_limits"]

PCAP, ESP_SA, README = "packets.pcap", "esp_sa", "README.txt"


@dataclass(frozen=True)
class DirectedSa:
    """One SA of a session and the outer addresses its packets carry."""
    sa: SaConfig
    src: str                 # outer source address of its packets
    dst: str                 # outer destination address
    direction: str           # "out": the IUT sends on it; "in": the IUT receives on it


def _key(d: DirectedSa) -> SaKey:
    return SaKey(d.sa.spi, d.sa.profile, d.sa.keymat, d.direction, d.src, d.dst,
                 origin=f"{d.direction} SA {d.sa.spi:#010x}")


def wireshark_limits(d: DirectedSa) -> list[str]:
    """What Wireshark 4.0 will not decrypt or check of this SA's packets, one line each."""
    p = d.sa.profile
    lines = [line.split(": ", 1)[1] for line in esp_sa_lines(_key(d)) if line.startswith("#")]
    if lines:                                           # no esp_sa entry at all
        return lines
    if p.seq is SeqWire.SEQ64:
        lines.append("64-bit sequence numbers on the wire (Wireshark 4.0 reads 4 bytes): "
                     "its entry cannot decrypt")
    elif p.seq is SeqWire.ESN:
        lines.append("extended sequence numbers: Wireshark 4.0 decrypts the packets but "
                     "leaves the high 32 bits out of the AAD, so its ICV check fails")
    if p.n_sub_sas > 1 and p.subsa is not SubSaLocation.SPI and p.kdf is Kdf.NONE:
        keying = Keying(p, d.sa.keymat, d.sa.spi)
        salt0 = keying.get(0)[1]
        if any(keying.get(i)[1] != salt0 for i in range(1, p.n_sub_sas)):
            lines.append(f"sub-SAs 1..{p.n_sub_sas - 1} share the SPI but not the salt: "
                         f"only sub-SA 0's packets decrypt")
    return lines


def _readme(frames: int, sas: Sequence[DirectedSa], notes: Sequence[str]) -> str:
    out = ["Evidence of a failing espspec session: the packets on the wire and their keys.",
           "",
           f"{PCAP}: {frames} Ethernet frames, in time order (LINKTYPE_ETHERNET).",
           f"{ESP_SA}: the Wireshark esp_sa table of the session's SAs (Wireshark 4.0).",
           *notes,
           "",
           "SAs (out: the IUT sends on it; in: it receives on it; a rekey adds a pair):"]
    limited = []
    for d in sas:
        p = d.sa.profile
        out.append(f"  {d.direction:3} SPI {d.sa.spi:#010x} {d.src} -> {d.dst} "
                   f"profile {p.name} ({p.framing.value}, {p.aead}, sequence numbers "
                   f"{p.seq.value})")
        limited += [f"  SPI {d.sa.spi:#010x}: {why}" for why in wireshark_limits(d)]
    out += ["",
            "Decrypt with tshark (or copy esp_sa into a Wireshark profile folder, e.g.",
            "~/.config/wireshark/esp_sa, and open the capture):",
            "",
            f"  mkdir conf && cp {ESP_SA} conf/ && WIRESHARK_CONFIG_DIR=conf tshark -r {PCAP} \\",
            "      -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE",
            ""]
    if limited:
        out += ["What Wireshark 4.0 cannot decrypt or check here (the capture is complete",
                "all the same; `espspec check-pcap` with the SAs reads every profile):",
                *limited]
    else:
        out.append("Wireshark 4.0 can decrypt every SA of this session.")
    return "\n".join(out) + "\n"


def bundle(frames: Iterable[tuple[float, bytes]], sas: Sequence[DirectedSa],
           notes: Sequence[str] = ()) -> dict[str, bytes]:
    """The evidence folder of a session: ``packets.pcap``, ``esp_sa`` and ``README.txt``
    (``notes``: lines about the rig the README adds, e.g. which end is which)."""
    frames = list(frames)
    text = esp_sa_text([_key(d) for d in sas]).replace(
        "written by espspec gen-pcap", "of an espspec session's SAs")
    return {PCAP: pcap_bytes(frames), ESP_SA: text.encode(),
            README: _readme(len(frames), sas, notes).encode()}
