"""The nonce ledger: every (key, nonce) a sender used, and any reuse.

Theory of operation: ``record`` remembers which packet first used each (key label, nonce)
pair and returns a ``NonceReuse`` naming both packets and their sub-SAs when a pair comes
again (NONCE-UNIQUE-PER-KEY). Key labels come from ``keying.py`` for the model's own
sender, or from a judge that knows the keys of an implementation under test. Memory grows
with the packets recorded (about 100 bytes each); the ledger is meant for test runs, not
for a data path.
"""

from __future__ import annotations

from typing import NamedTuple


class NonceReuse(NamedTuple):
    key_id: str
    nonce: bytes
    first_packet: int
    first_sub_sa: int
    second_packet: int
    second_sub_sa: int
    requirement: str = "NONCE-UNIQUE-PER-KEY"

    def __str__(self) -> str:
        return (f"nonce {self.nonce.hex()} under key {self.key_id} used by packet "
                f"{self.first_packet} (sub-SA {self.first_sub_sa}) and packet "
                f"{self.second_packet} (sub-SA {self.second_sub_sa})")


class NonceLedger:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, bytes], tuple[int, int]] = {}
        self.reuses: list[NonceReuse] = []

    def __len__(self) -> int:
        return len(self._seen)

    def record(self, key_id: str, nonce: bytes, packet: int, sub_sa: int) -> NonceReuse | None:
        first = self._seen.setdefault((key_id, nonce), (packet, sub_sa))
        if first == (packet, sub_sa):
            return None
        reuse = NonceReuse(key_id, nonce, first[0], first[1], packet, sub_sa)
        self.reuses.append(reuse)
        return reuse
