"""The ESP hot path: a closure that checks the common packet of an ESP SA.

Theory of operation
-------------------
Most packets of a healthy capture are unremarkable: the next counter of their sub-SA,
an IV that follows the rule, a well-formed trailer. ``fast_esp_feed(check)`` returns,
for a ``SaCheck`` of ESP framing, a function ``feed(n, foff, dpos, data, off, ln)`` that
does for such a packet exactly what the full path (``SaCheck.feed_esp`` ->
``SaCheck.account``) would do, with the SA's constants bound as closure variables and
without building the codec's packet object. Every other packet -- and every packet of
an SA where one of the shortcuts could differ from the model's pieces (a nonce that is
not salt || IV, an AAD that is not a slice of the header, an implicit IV, an ICV of
other than 16 bytes, the sub-SA ID in the SN, limits other than a per-sub-SA packet
share, a worker that owns only some sub-SAs) -- goes to ``feed_esp``. The test suite
feeds captures with every kind of fault through both and compares statistics and
findings.

``SPI_SN32`` and ``SPI_SN64`` are the ESP header (SPI, sequence number) as structs; the
full ESP path slices packets with them too. Frame-level shortcuts (Ethernet + IPv4 +
protocol 50) are ``senderpass``'s.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag

from spec_model.profile import SubSaLocation
from spec_model.wire.payload import ESP_PAD, NEXT_HEADER_DUMMY

__all__ = ["SPI_SN32", "SPI_SN64", "fast_esp_feed"]

SPI_SN32 = struct.Struct("!II")
SPI_SN64 = struct.Struct("!IQ")


def fast_esp_feed(check):
    """The hot path for ESP framing, as a closure over ``check``'s constants.

    It takes a packet only when nothing is unusual: the length is one
    ``EspCodec.decode`` accepts, the sub-SA is in range (no ID in the sequence
    number), the SN is not implicit in the nonce, the AEAD opens it with a 16-byte
    ICV, the ESP trailer's padding is 1, 2, 3, ... (what ``EspTrailer.unpack``
    accepts), the counter is the sub-SA's highest + 1 within its space and the IV
    follows the profile's rule. Then it does what ``SaCheck.account`` would do for such
    a packet; anything else goes to ``feed_esp``, which runs the full checks (the test
    suite checks the two agree)."""
    slow = check.feed_esp

    def general(n, foff, dpos, data, off, ln):
        slow(n, foff, dpos + off, data[off:off + ln])

    nsub = check.n
    min_len, icv_len, align, hl = check.min_len, check.icv_len, check.align, check.hlen
    unpack = check.head.unpack_from
    loc = 1 if check.loc is SubSaLocation.SPI else 0
    base = check.base
    aad_len = check.aad_len
    # conditions under which the closure's shortcuts equal the model's pieces; of the
    # limits only a per-sub-SA packet share (the 2^64 cap of a shared key) is taken
    pol = check.policy
    only_share = pol.packets_total is None and pol.bytes_per_subsa is None and \
        pol.bytes_total is None and pol.soft_packets is None and pol.soft_bytes is None
    esn = check.esn
    esn_aad = esn and check.codec.aad(SPI_SN32.pack(0x01020304, 0x05060708) + bytes(8),
                                      0x0A0B0C0D05060708) == \
        SPI_SN64.pack(0x01020304, 0x0A0B0C0D05060708)
    if not (check.fast_nonce and (check.aad_slice or esn_aad) and not check.iiv
            and icv_len == 16 and check.loc is not SubSaLocation.SEQ and only_share
            and check.owned is None):
        return general
    share = pol.packets_per_subsa if pol.packets_per_subsa is not None else 1 << 65
    top = min(share, check.cmax)      # above it the slow path reports the counter
    highest, highest_pn, pkts, nbytes = check.highest, check.highest_pn, check.pkts, \
        check.nbytes
    expect, dummies, prefix, rings = check.expect, check.dummies, check.iv_prefix, \
        check.rings
    subs, rmask = check.subs, check.rmask
    from_bytes = int.from_bytes
    pack_aad = SPI_SN64.pack
    pad = ESP_PAD
    dummy = NEXT_HEADER_DUMMY
    iv_at = hl - 8

    def feed(n, foff, dpos, data, off, ln):
        if ln < min_len or (ln - icv_len) % align:
            return slow(n, foff, dpos + off, data[off:off + ln])
        spi, seqw = unpack(data, off)
        if loc:
            sub = spi - base
            if sub < 0 or sub >= nsub:
                return slow(n, foff, dpos + off, data[off:off + ln])
        else:
            sub = 0
        info = subs[sub]
        if esn:
            # the next counter has these low 32 bits: it is what RFC 4303 Appendix A
            # infers (with a window of 2^31, the nearest number to the highest)
            seq = expect[sub]
            if seq & 0xFFFFFFFF != seqw:
                return slow(n, foff, dpos + off, data[off:off + ln])
            aad = pack_aad(spi, seq)
        else:
            seq = seqw
            if seq != expect[sub]:
                return slow(n, foff, dpos + off, data[off:off + ln])
            aad = data[off:off + aad_len]
        if info is None or seq > top or pkts[sub] >= share:
            return slow(n, foff, dpos + off, data[off:off + ln])
        ivb = data[off + iv_at:off + hl]
        if from_bytes(ivb, "big") != prefix[sub] | seq or info[5]:
            return slow(n, foff, dpos + off, data[off:off + ln])
        try:
            pt = info[3].decrypt(info[1] + ivb, data[off + hl:off + ln], aad)
        except InvalidTag:
            return slow(n, foff, dpos + off, data[off:off + ln])
        k = len(pt) - 2
        pl = pt[k]
        if pl and (pl > k or pt[k - pl:k] != pad[:pl]):
            return slow(n, foff, dpos + off, data[off:off + ln])
        expect[sub] = seq + 1
        highest[sub] = seq
        highest_pn[sub] = n
        rings[sub][seq & rmask] = (seq, n, dpos + off, ln)
        pkts[sub] += 1
        nbytes[sub] += k - pl
        if pt[k + 1] == dummy:
            dummies[sub] += 1

    return feed
