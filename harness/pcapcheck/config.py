"""What a check is told: bounds, options and the default dissection of a capture.

Theory of operation
-------------------
``CheckConfig`` is the frozen set of bounds and options of one ``check_capture`` run
(findings kept per requirement, the size of the per-sub-SA counter ring, the exact nonce
table, how many ICV failures are diagnosed, strictness); every memory bound in it is per
process, so a check with ``jobs`` workers uses at most ``jobs`` times as much.
``DEFAULT_DISSECT`` says on which UDP ports ESP, EESP and PSP are looked for when the
caller does not say (``EESP_UDP_PORT`` is espspec's choice, not an IANA assignment).

Nothing here reads a capture or checks a packet: the per-SA checks live in ``sacheck``
and the modules it is built from, the pass over a capture in ``senderpass``, the driver
in ``checker``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..capture import DissectConfig

__all__ = ["CheckConfig", "DEFAULT_DISSECT", "EESP_UDP_PORT"]

#: UDP port espspec uses for EESP. NOT IANA-assigned: EESP has no port or protocol number
#: yet; pass the one your implementation uses.
EESP_UDP_PORT = 4545
DEFAULT_DISSECT = DissectConfig(esp_udp_ports=(4500,), eesp_udp_port=EESP_UDP_PORT,
                                psp_udp_port=1000)


@dataclass(frozen=True)
class CheckConfig:
    """Bounds and options of a check (all memory bounds are per process)."""
    max_per_requirement: int = 10     # findings kept per requirement/kind; the rest counted
    ring: int = 4096                  # recent counters remembered per sub-SA (power of 2)
    exact_nonces: int = 1 << 18       # nonces of rule-breaking packets tracked exactly
                                      # (about 200 bytes each)
    diagnose: int = 16                # ICV failures per SA tried against other keys/AADs
    unknown_spis: int = 4096          # distinct unknown SPIs reported
    strict: bool = False              # NON-STRICT findings fail too

    def __post_init__(self) -> None:
        if self.ring < 2 or self.ring & (self.ring - 1):
            raise ValueError("ring must be a power of two >= 2")
