"""Wire formats of the framings (axis D), one module each, and their dispatch table.

Theory of operation: a codec turns a packet's cleartext parts into bytes and back and
computes the AAD from the header bytes; ``payload.py`` does the same for the encrypted
body. All decoders raise only ``DecodeError`` subclasses. No crypto happens here.
"""

from __future__ import annotations

from ..profile import Framing, Profile
from .eesp import EespCodec, EespPacket, Option
from .esp import EspCodec, EspPacket
from .payload import LAYOUTS, Inner
from .psp import PspCodec, PspPacket

CODECS = {
    Framing.ESP: EspCodec,
    Framing.EESP_FULL: EespCodec,
    Framing.EESP_OPTIMIZED: EespCodec,
    Framing.PSP: PspCodec,
}

Packet = EspPacket | EespPacket | PspPacket


def codec_for(profile: Profile) -> EspCodec | EespCodec | PspCodec:
    return CODECS[profile.framing](profile)


__all__ = ["CODECS", "LAYOUTS", "EespPacket", "EspPacket", "Inner", "Option", "Packet",
           "PspPacket", "codec_for"]
