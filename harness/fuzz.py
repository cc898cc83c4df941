"""Fuzz targets for espspec's parsers, for atheris (and for plain replays in the tests).

Theory of operation: a target is a function of one ``bytes`` argument that must never
raise: the receiver of every named profile (its first byte picks the profile, the rest is
the packet) must answer ``Delivered`` or ``Dropped``, and the capture reader must turn any
file into records and findings. ``python -m harness.fuzz TARGET [libFuzzer flags]`` runs
one under atheris with the seeds in ``corpora/fuzz/TARGET`` (new inputs are written to the
first corpus folder given, so pass a scratch copy to keep the seeds as they are); ``--make-corpus`` writes the
seeds (valid packets of every profile, a small valid capture) deterministically.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from spec_model import NAMED, Delivered, Dropped, Receiver, Sender
from spec_model.keying import keymat_len

CORPORA = Path(__file__).resolve().parent.parent / "corpora" / "fuzz"
PROFILES = sorted(NAMED)
SPI = 0x1000


def _keymat(profile) -> bytes:
    n = keymat_len(profile)
    return hashlib.sha256(profile.name.encode()).digest()[:n].ljust(n, b"\x01")


_RECEIVERS: dict[str, Receiver] = {}


def receiver_target(data: bytes) -> None:
    if not data:
        return
    name = PROFILES[data[0] % len(PROFILES)]
    rx = _RECEIVERS.get(name)
    if rx is None:
        p = NAMED[name]
        rx = _RECEIVERS[name] = Receiver(p, _keymat(p), SPI)
    out = rx.open(data[1:])
    if not isinstance(out, (Delivered, Dropped)):
        raise AssertionError(f"receiver returned {out!r}")


def capture_target(data: bytes) -> None:
    from harness.capture import CaptureReader, ReaderConfig
    from harness.capture.frames import DissectConfig, iter_dissected
    reader = CaptureReader(data, ReaderConfig(strict=False))
    for _ in iter_dissected(reader, DissectConfig(eesp_udp_port=4545)):
        pass


TARGETS = {"receiver": receiver_target, "capture": capture_target}


def make_corpus() -> None:
    (CORPORA / "receiver").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(PROFILES):
        p = NAMED[name]
        s = Sender(p, _keymat(p), SPI)
        for size in (0, 20, 61):
            payload = bytes((0x45, 0, 0, 20 + size)) + bytes(16 + size)
            nh = None if p.mode.value == "tunnel" else 17
            wire = s.seal(0, payload, nh).wire
            (CORPORA / "receiver" / f"{name}-{size}").write_bytes(bytes([i]) + wire)
    (CORPORA / "capture").mkdir(parents=True, exist_ok=True)
    import struct
    frame = bytes(12) + b"\x08\x00" + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 24, 0, 0, 64,
                                                   50, 0, bytes(4), bytes(4)) + bytes(24)
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    (CORPORA / "capture" / "esp-ethernet.pcap").write_bytes(head + rec * 3)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--make-corpus"]:
        make_corpus()
        return 0
    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: python -m harness.fuzz {{{'|'.join(TARGETS)}|--make-corpus}} "
              f"[libFuzzer flags]", file=sys.stderr)
        return 2
    import atheris
    target = TARGETS[argv[1]]
    rest = argv[2:]
    if not [a for a in rest if not a.startswith("-")]:   # no corpus folder given
        rest.append(str(CORPORA / argv[1]))
    atheris.Setup([argv[0], *rest], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
