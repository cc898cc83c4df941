"""The model's own parsers as fuzz targets: the header decoders, the receiver, captures.

Theory of operation: each ``*_target`` returns the ``test_one_input`` of one script in
``targets/``. A decoder (``spec_model.wire``) must return a packet or raise a
``DecodeError`` that names its requirement, and what it returns must encode back to the
same bytes (a decoder that accepts two spellings of one packet, or loses a field, is a
finding). The receiver, afresh for every input, must answer ``Delivered`` or ``Dropped``.
The capture reader must turn any file, pcap or pcapng of any link type, into records and
findings, never an exception.
"""

from __future__ import annotations

from typing import Callable

from spec_model import NAMED, Delivered, DecodeError, Dropped, Framing, Receiver
from spec_model.wire import codec_for

from .oracle import BadOutcome, Finding
from .sas import SPI, keymat, profiles_of, split


class NotCanonical(Finding):
    """A decoded packet does not encode back to the bytes it was decoded from."""


class Unnamed(Finding):
    """A DecodeError without the requirement ID of the rule it enforces."""


def decoder_target(*framings: Framing) -> Callable[[bytes], None]:
    names = profiles_of(*framings)
    codecs = tuple(codec_for(NAMED[n]) for n in names)     # indexed as sas.split picks
    n = len(codecs)

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        codec, packet = codecs[data[0] % n], data[1:]
        try:
            pkt = codec.decode(packet)
        except DecodeError as e:
            if not e.requirement:
                raise Unnamed(f"{codec.profile.name}: {type(e).__name__} names no "
                              f"requirement")
            return
        if codec.encode(pkt) != packet:
            raise NotCanonical(f"{codec.profile.name}: {len(packet)} bytes decode to a "
                               f"packet that encodes to other bytes")
    return test_one_input


def receiver_target() -> Callable[[bytes], None]:
    def test_one_input(data: bytes) -> None:
        if not data:
            return
        profile, packet = split(data)
        out = Receiver(profile, keymat(profile), SPI).open(packet)
        if not isinstance(out, (Delivered, Dropped)):
            raise BadOutcome(f"{profile.name}: the receiver answered {out!r}")
    return test_one_input


def capture_target() -> Callable[[bytes], None]:
    from harness.capture import CaptureReader, ReaderConfig
    from harness.capture.frames import DissectConfig, iter_dissected
    config = DissectConfig(eesp_udp_port=4545)

    def test_one_input(data: bytes) -> None:
        for _ in iter_dissected(CaptureReader(data, ReaderConfig(strict=False)), config):
            pass
    return test_one_input
