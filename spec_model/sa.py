"""What both ends of one child SA share: profile, base SPI, keys, codec, body layout,
limits.

Theory of operation: ``SaEnd`` is the common base of ``Sender`` and ``Receiver``. It checks
the base SPI against the profile and resolves, once, the per-profile collaborators each
end uses on every packet. It holds no per-packet state; counters live in the sender,
windows in the receiver.
"""

from __future__ import annotations

from .keying import Keying
from .limits import LimitPolicy
from .profile import Profile
from .subsa import check_base_spi
from .wire import LAYOUTS, codec_for


class SaEnd:
    def __init__(self, profile: Profile, keymat: bytes, spi: int) -> None:
        check_base_spi(profile, spi)
        self.profile = profile
        self.base_spi = spi
        self.keying = Keying(profile, keymat, spi)
        self.codec = codec_for(profile)
        self.layout = LAYOUTS[profile.framing]
        self.policy = LimitPolicy.of(profile)
