"""The reference IUT: espspec's own model behind the IUT contract.

Theory of operation: a thin adapter that runs ``spec_model.Sender`` for the outbound SA
and ``spec_model.Receiver`` for the inbound one. It supports every profile the model
does (and replaces both SAs on ``rekey``, without an overlap), so the suites must pass
against it; the seeded-bug mutants subclass it and replace one piece each. Subclasses
override the ``sender_class`` / ``receiver_class`` hooks or the verbs themselves.
"""

from __future__ import annotations

from spec_model import Framing, Mode, NonceScheme, Receiver, Sender, SeqWire, SubSaLocation
from spec_model.aead import AEADS
from spec_model.errors import SendRefused

from ..contract import Capabilities, Delivered, Dropped, Refused, SaConfig

ALL = Capabilities(
    framings=frozenset(f.value for f in Framing),
    aeads=frozenset(AEADS),
    seq=frozenset(s.value for s in SeqWire),
    subsa_locations=frozenset(s.value for s in SubSaLocation),
    nonce_schemes=frozenset(n.value for n in NonceScheme),
    modes=frozenset(m.value for m in Mode),
    max_sub_sas=1 << 16, max_crypt_offset=63, replay_window=None, anti_replay=True,
    can_set_counters=True, reports_drop_reasons=True, reports_counters=True,
    enforces_limits=True, rekey=True, rekey_overlap=False,
)


def _espspec_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("espspec")             # the model is espspec's own
    except PackageNotFoundError:
        return "unknown (espspec not installed)"


class ReferenceIut:
    name = "reference"
    version = _espspec_version()
    sender_class = Sender
    receiver_class = Receiver

    def __init__(self) -> None:
        self.sender: Sender | None = None
        self.receiver: Receiver | None = None

    def capabilities(self) -> Capabilities:
        return ALL

    def install(self, outbound: SaConfig, inbound: SaConfig) -> None:
        self.sender = self.sender_class(outbound.profile, outbound.keymat, outbound.spi)
        self.receiver = self.receiver_class(inbound.profile, inbound.keymat, inbound.spi)

    def protect(self, sub_sa: int, payload: bytes, next_header: int | None) -> bytes | Refused:
        try:
            return self.sender.seal(sub_sa, payload, next_header).wire
        except SendRefused as e:
            return Refused(e.requirement, str(e))

    def unprotect(self, wire: bytes) -> Delivered | Dropped:
        return self.receiver.open(wire)

    def set_counter(self, sub_sa: int, value: int) -> None:
        self.sender.set_counter(sub_sa, value)

    def counters(self) -> list[int]:
        return list(self.sender.counters)

    def rekey_due(self) -> str | None:
        """Optional verb: the requirement ID that makes a rekey due now, or None."""
        return self.sender.rekey_due()

    def rekey(self, outbound: SaConfig, inbound: SaConfig) -> None:
        """Optional verb: replace both SAs by new ones, a fresh Sender and Receiver. The
        old inbound SA goes at once (no overlap, as the capabilities say): its packets
        are dropped for their unknown SPI."""
        self.install(outbound, inbound)

    def close(self) -> None:
        self.sender = self.receiver = None
