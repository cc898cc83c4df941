"""Sequence numbers of a sender: strictly increasing per sub-SA, never wrapping.

Theory of operation
-------------------
``SequenceRules`` is the part of ``SaCheck`` that judges the counter of each
authenticated packet against its sub-SA's highest so far (SEQ-STRICTLY-INCREASING,
SEQ-NO-WRAP, SEQ-FIRST-ONE). It works on the per-sub-SA state ``SaCheck`` keeps (lists
indexed by sub-SA: ``highest``, ``highest_pn``, ``expect``, ``first_counter``,
``first_pn``, ``missing``, ``ooo``, ``dups``, ``rings``) and owns none of its own:

* a new maximum advances the sub-SA (a gap counts as missing packets: the capture may
  have lost them, the sender may have skipped them); the first packet of a sub-SA should
  carry 1 (with ESN: the key file's start + 1), 0 is a FAIL, anything else an INFO (the
  capture may have started late); a new maximum past the sub-SA's counter space is a wrap
  the sender should have refused;
* anything else is not increasing. The ring of the last ``ring`` counters (counter,
  packet number, file position, length) tells an exact duplicate (same bytes, read again
  from the capture: sent twice or duplicated on the path, no nonce reuse) from a counter
  used again with other content (which, when the IV follows the rule, is also a nonce
  reuse); a counter that went back by more than half the space is a wrap; one older than
  the ring can hold is reported as out of order, saying a reuse cannot be ruled out.
  Without sequence numbers (PSP) order is no requirement: such findings are INFO.

The ESN high halves are inferred before this, against the sub-SA's highest counter, with
``NEAREST_WINDOW``: RFC 4303 Appendix A with W = 2^31 yields the 64-bit number nearest
to the highest seen, whatever reordering the capture holds (the profile's own window is
what a receiver uses; the receiver judge runs the model's). Nonces are ``nonces``'
concern, limits ``limits``'.
"""

from __future__ import annotations

__all__ = ["NEAREST_WINDOW", "SequenceRules"]

#: ESN inference window of the sender check (see the module's docstring)
NEAREST_WINDOW = 1 << 31


class SequenceRules:
    """The sequence-number rules of ``SaCheck`` (a mixin: the state is ``SaCheck``'s)."""

    __slots__ = ()

    def advance(self, n, foff, pos, ln, spi, sub, counter, iv) -> bool:
        """Judge an authenticated packet's counter; True when it is the sub-SA's new
        highest (or its first)."""
        last = self.highest[sub]
        if counter > last and self.first_pn[sub]:
            if counter != last + 1:
                self.missing[sub] += counter - last - 1
            self.highest[sub] = counter
            self.highest_pn[sub] = n
            increasing = True
        elif not self.first_pn[sub]:
            self.first_counter[sub] = counter
            self.first_pn[sub] = n
            self.highest[sub] = counter
            self.highest_pn[sub] = n
            increasing = True
            if counter != self.sa.esn_start + 1 and self.has_seq:
                if counter == 0:
                    self.sink.check("SEQ-FIRST-ONE", n, foff, spi, sub,
                                    "first packet of the sub-SA carries counter 0")
                else:
                    self.sink.info("first-counter", n, foff, spi, sub,
                                   f"first packet of the sub-SA in the capture carries "
                                   f"counter {counter}, not 1 (the capture may have started "
                                   f"late)", requirement="SEQ-FIRST-ONE")
        else:
            increasing = False
            self.not_increasing(n, foff, pos, ln, spi, sub, counter, last, iv)
        if increasing:
            self.expect[sub] = self.highest[sub] + 1
        if increasing and counter > self.cmax:
            self.sink.check("SEQ-NO-WRAP", n, foff, spi, sub,
                            f"counter {counter} is past the sub-SA's maximum {self.cmax}")
        return increasing

    def not_increasing(self, n, foff, pos, ln, spi, sub, counter, last, iv) -> None:
        """A counter at or below the sub-SA's highest: a wrap, a duplicate, a counter used
        again, or a packet out of order."""
        sink = self.sink
        ring = self.rings[sub]
        entry = ring[counter & self.rmask] if ring is not None else None
        if counter == 0 or last - counter > self.cmax // 2:
            sink.check("SEQ-NO-WRAP", n, foff, spi, sub,
                       f"counter went from {last} (packet {self.highest_pn[sub]}) back to "
                       f"{counter}: the sender let it wrap instead of refusing to send")
            self.ooo[sub] += 1
            if entry is not None and entry[0] == counter and \
                    iv == self.iv_prefix[sub] | counter:
                sink.check("NONCE-UNIQUE-PER-KEY", n, foff, spi, sub,
                           f"after the wrap, counter {counter} repeats the IV and nonce of "
                           f"packet {entry[1]}")
            return
        if entry is not None and entry[0] == counter:
            _c, pn, epos, eln = entry
            same = eln == ln and self.ctx.read(epos, eln) == self.ctx.read(pos, ln)
            self.dups[sub] += 1
            if same and not self.has_seq:
                sink.info("duplicate", n, foff, spi, sub,
                          f"exact duplicate of packet {pn} (same bytes)")
            elif same:
                sink.check("SEQ-STRICTLY-INCREASING", n, foff, spi, sub,
                           f"exact duplicate of packet {pn} (counter {counter}, same bytes): "
                           f"sent twice or duplicated on the path; no nonce reuse")
            else:
                if self.has_seq:
                    sink.check("SEQ-STRICTLY-INCREASING", n, foff, spi, sub,
                               f"counter {counter} again (first in packet {pn}) with other "
                               f"content; the highest so far is {last}")
                if iv == self.iv_prefix[sub] | counter:
                    sink.check("NONCE-UNIQUE-PER-KEY", n, foff, spi, sub,
                               f"same counter and IV {iv:#018x} as packet {pn} with other "
                               f"content: the (key, nonce) pair is used twice")
            return
        self.ooo[sub] += 1
        if not self.has_seq:
            sink.info("iv-order", n, foff, spi, sub,
                      f"IV counter {counter} after {last} (packet {self.highest_pn[sub]}): not "
                      f"increasing, as the model's counter IVs would be")
            return
        if counter + self.rmask >= last:
            sink.check("SEQ-STRICTLY-INCREASING", n, foff, spi, sub,
                       f"counter {counter} after {last} (packet {self.highest_pn[sub]}): "
                       f"sent out of order")
        else:
            sink.check("SEQ-STRICTLY-INCREASING", n, foff, spi, sub,
                       f"counter {counter} after {last} (packet {self.highest_pn[sub]}); "
                       f"older than the {self.rmask + 1} counters remembered, so a nonce "
                       f"reuse with an earlier packet cannot be ruled out")
