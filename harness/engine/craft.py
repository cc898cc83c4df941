"""Hand-built packets: an arbitrary encrypted body under a model sender's keys.

Theory of operation: the model's ``Sender`` only builds conforming packets. To reach a
receiver's checks that come after the ICV (padding content, pad length, the Payload Info
Header, the inner packet, next header 59) a test needs a packet with a valid ICV around a
wrong body. ``seal_custom`` builds one with the model's own header codec, IV, nonce and
AAD rules, so everything but the body is exactly what the profile prescribes.
"""

from __future__ import annotations

from typing import Callable

from spec_model import Sender
from spec_model.nonce import build_nonce, explicit_iv, iv_value
from spec_model.subsa import seq_for, seq_on_wire, session_id_for, spi_for


def seal_custom(sender: Sender, sub_sa: int, body: bytes | Callable[[int], bytes], *,
                next_header: int = 0, counter: int | None = None, crypt_offset: int = 0,
                advance: bool = True,
                rewrite_header: Callable[[bytes], bytes] | None = None) -> bytes:
    """A packet on ``sub_sa`` with the caller's body (trailer, PIH, padding included) under
    the sender's keys, with the right header, nonce, AAD and ICV. ``body`` may be a
    function of the header length (for alignment). ``counter`` defaults to the sender's
    next one (any value, 0 included); with ``advance`` the sender's counter moves past it.
    ``rewrite_header`` turns the header the profile prescribes into other bytes, which are
    sent and authenticated instead (the nonce stays the one the counter gives)."""
    p = sender.profile
    if counter is None:
        counter = sender.counters[sub_sa] + 1
    seq = seq_for(p, sub_sa, counter) if p.replay_protected else None
    iv = iv_value(p, sub_sa, seq, counter)
    cipher, salt, _ = sender.keying.get(sub_sa)
    spi = spi_for(p, sender.base_spi, sub_sa)
    header = sender.codec.header(spi, session_id_for(p, sub_sa), seq_on_wire(p, seq),
                                 explicit_iv(p, iv), crypt_offset, next_header)
    if rewrite_header is not None:
        header = rewrite_header(header)
    if callable(body):
        body = body(len(header))
    clear = 4 * crypt_offset
    ct, icv = cipher.seal(build_nonce(p, salt, spi, iv), body[clear:],
                          sender.codec.aad(header, seq) + body[:clear])
    if advance and sender.counters[sub_sa] < counter <= sender.policy.counter_max:
        sender.set_counter(sub_sa, counter)
    return header + body[:clear] + ct + icv
