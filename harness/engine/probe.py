"""Probes: what is true of an implementation, measured rather than declared.

Theory of operation: a suite judges an IUT against the model; a probe asks the IUT what
it really does where the model leaves room or where a capability is only claimed, and
reports the answer as a number or a list, never as a verdict:

* ``aeads(factory, base)`` -- for every AEAD the model knows, a session on ``base`` with
  that AEAD: the IUT protects and unprotects a few packets (IPv4 and IPv6 inner packets,
  those it carries, of several sizes), every answer judged as in a suite. The answer per AEAD is
  ``interoperates``, ``unsupported`` (the IUT's capabilities say so) or the first finding.
* ``window_edge(factory, base, configured)`` -- for each window size W, a session whose
  profile asks for W; the model's peer sends SN T (the top), then T-1, T-2, ... in that
  order, each delivered to the IUT and its answer recorded without judging, until the
  first one the IUT drops. An IUT that enforces a window of W' accepts T-1 .. T-W'+1 and
  drops T-W' (RFC 4303 §3.4.3: the window covers W' sequence numbers ending at T), so the
  enforced window is the distance of the first drop. Probed up to ``4 W`` (at least 256)
  behind the top; beyond that the window is reported as "larger".

The IUT's capabilities are asked once, first (``runner.probe``); a variant they rule out
is never installed. Probes open sessions through ``Session``, so SAs, isolation, hangs
and crashes work as in a run. Nothing here prints or writes files (``harness.cli.probe`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from spec_model import Profile, Sender, SeqWire
from spec_model.aead import AEADS
from spec_model.receiver import Delivered

from ..contract import IutFactory
from .session import PEER_FILL, ConformanceFailure, IutLost, Session, make_payload

__all__ = ["AeadAnswer", "EsnAnswer", "WindowAnswer", "aeads", "esn_inference",
           "window_edge"]

SIZES = ((0, False), (64, False), (64, True), (1000, False))


@dataclass(frozen=True)
class AeadAnswer:
    aead: str
    outcome: str            # "interoperates", "unsupported" or "finding"
    detail: str = ""


@dataclass(frozen=True)
class WindowAnswer:
    configured: int
    enforced: int | None    # None: nothing was dropped up to ``probed`` behind the top
    probed: int             # how far behind the top the probe went
    first_drop: str = ""    # the IUT's answer to the first packet it dropped
    detail: str = ""        # why the probe could not run


@dataclass(frozen=True)
class EsnAnswer:
    case: str               # "A" or "B" (RFC 4303 Appendix A2.2), "" when not run
    seq: int                # the packet's full 64-bit SN (only its low word travels)
    top: int                # T, the highest SN delivered before it
    expected: str           # what Appendix A's receiver does: "deliver" or "drop"
    answer: str             # what the IUT did: "delivered", "dropped" or "" (not run)
    detail: str = ""

    @property
    def agrees(self) -> bool:
        return (self.expected == "deliver") == (self.answer == "delivered")


#: (case, the packet's SN from T and W, what Appendix A's receiver does, why). T starts at
#: 2^32 - 2 (after 2^31: from a fresh window Appendix A reaches it in two steps), so case A (Tl >= W - 1) holds until SN 2^32 + 5 is delivered, then case B
#: (Tl < W - 1). Every SN is fresh: duplicates are another probe's business.
ESN_STEPS = (
    ("A", lambda t, w: t - 8, "deliver", "Seql >= Bl: Seqh = Th, inside the window"),
    ("A", lambda t, w: (1 << 32) + 5, "deliver",
     "Seql < Bl: Seqh = Th + 1, the next subspace (T moves past 2^32)"),
    ("B", lambda t, w: (1 << 32) - 20, "deliver",
     "Seql >= Bl: Seqh = Th - 1, the previous subspace, inside the window"),
    ("B", lambda t, w: (1 << 32) + 3, "deliver", "Seql < Bl: Seqh = Th, inside the window"),
    ("B", lambda t, w: (1 << 32) + 9, "deliver", "Seql < Bl: Seqh = Th, new (T moves)"),
    ("B", lambda t, w: t - w - 3, "drop",
     "W + 3 behind T, in the previous subspace: Seql < Bl reads it as Th, the ICV fails"),
)


def esn_inference(factory: IutFactory, base: Profile, seed: int = 0) -> list[EsnAnswer]:
    """How the IUT infers the ESN high half across a 2^32 wrap, in both Appendix A cases
    (``ESN_STEPS``, on ``base`` with ESN): each packet's answer next to what Appendix A's
    receiver does; recorded, not judged."""
    p = base if base.seq is SeqWire.ESN else _variant(base, seq=SeqWire.ESN)
    caps, why_not = _capabilities(factory, p)
    if caps is None or caps.unsupported(p):
        return [EsnAnswer("", 0, 0, "", "", why_not or caps.unsupported(p))]
    try:
        s = Session.open(factory, p, seed=seed, label="probe/esn")
    except (ConformanceFailure, IutLost) as e:
        failure = e.failure if isinstance(e, IutLost) else e
        return [EsnAnswer("", 0, 0, "", "", str(failure.findings[0]))]
    inbound, w = s.inbound, p.window
    start = (1 << 32) - 2

    def packet(seq: int) -> bytes:
        peer = Sender(p, inbound.keymat, inbound.spi)
        peer.set_counter(0, seq - 1)
        payload, nh = make_payload(p, 16, fill=PEER_FILL)
        return peer.seal(0, payload, nh).wire

    out = []
    try:
        top = 0
        for seq in (1 << 31, start):    # T to 2^32 - 2 in two steps a receiver can follow
            got = s._call("unprotect", s.iut.unprotect, packet(seq))
            if not isinstance(got, Delivered):
                s.close()
                return [EsnAnswer("A", seq, top, "deliver", "dropped",
                                  f"on the way to T = {start:#x}, SN {seq:#x} was "
                                  f"dropped: {got.detail or got.reason}")]
            top = seq
        for case, sn, expected, why in ESN_STEPS:
            seq = sn(top, w)
            got = s._call("unprotect", s.iut.unprotect, packet(seq))
            answer = "delivered" if isinstance(got, Delivered) else "dropped"
            out.append(EsnAnswer(case, seq, top, expected, answer,
                                 why + ("" if answer == "delivered" else
                                        f"; the IUT: {got.detail or got.reason}")))
            if answer == "delivered" and seq > top:
                top = seq
        s.close()
    except (ConformanceFailure, IutLost) as e:
        failure = e.failure if isinstance(e, IutLost) else e
        out.append(EsnAnswer("", 0, 0, "", "", str(failure.findings[0])))
    return out


def _variant(base: Profile, **axes) -> Profile:
    tag = ",".join(f"{k}={v}" for k, v in axes.items())
    return replace(base, name=f"{base.name}[{tag}]", **axes)


def _capabilities(factory: IutFactory, base: Profile):
    """The IUT's capabilities, or the one-line finding that it cannot say them."""
    from .runner import probe
    found = probe(factory, base)
    if found.failure is not None:
        return None, str(found.failure.findings[0])
    return found.caps, ""


def aeads(factory: IutFactory, base: Profile, seed: int = 0) -> list[AeadAnswer]:
    caps, why_not = _capabilities(factory, base)
    if caps is None:
        return [AeadAnswer(name, "finding", why_not) for name in sorted(AEADS)]
    out = []
    for name in sorted(AEADS):
        p = _variant(base, aead=name)
        if caps.unsupported(p):
            out.append(AeadAnswer(name, "unsupported", caps.unsupported(p)))
            continue
        try:
            s = Session.open(factory, p, seed=seed, label=f"probe/aead/{name}")
        except ConformanceFailure as e:
            out.append(AeadAnswer(name, "finding", str(e.findings[0])))
            continue
        except IutLost as e:
            out.append(AeadAnswer(name, "finding", str(e.failure.findings[0])))
            continue
        sizes = [(size, v6) for size, v6 in SIZES if v6 in caps.inner_v6(p)]
        try:
            for size, v6 in sizes:
                s.iut_send(0, size, v6)
                s.peer_send(0, size, v6)
                s.deliver(0)
            s.close()
            out.append(AeadAnswer(name, "interoperates",
                                  f"{len(sizes)} packets each way judged by the model"))
        except ConformanceFailure as e:
            s.close()
            out.append(AeadAnswer(name, "finding", str(e.findings[0])))
        except IutLost as e:
            out.append(AeadAnswer(name, "finding", str(e.failure.findings[0])))
    return out


def window_edge(factory: IutFactory, base: Profile, configured: list[int],
                seed: int = 0) -> list[WindowAnswer]:
    caps, why_not = _capabilities(factory, base)
    if caps is None:
        return [WindowAnswer(w, None, 0, detail=why_not) for w in configured]
    out = []
    for w in configured:
        p = _variant(base, window=w)
        limit = max(4 * w, 256)
        top = limit + 8
        if caps.unsupported(p):
            out.append(WindowAnswer(w, None, 0, detail=caps.unsupported(p)))
            continue
        try:
            s = Session.open(factory, p, seed=seed, label=f"probe/window/{w}")
        except (ConformanceFailure, IutLost) as e:
            failure = e.failure if isinstance(e, IutLost) else e
            out.append(WindowAnswer(w, None, 0, detail=str(failure.findings[0])))
            continue
        inbound = s.inbound                   # as installed (negotiated, for IKE IUTs)

        def packet(seq: int) -> bytes:
            """The model peer's packet with sequence number ``seq`` (a fresh sender)."""
            peer = Sender(p, inbound.keymat, inbound.spi)
            peer.set_counter(0, seq - 1)
            payload, nh = make_payload(p, 16, fill=PEER_FILL)
            return peer.seal(0, payload, nh).wire

        try:
            first = s._call("unprotect", s.iut.unprotect, packet(top))
            if not isinstance(first, Delivered):
                out.append(WindowAnswer(w, None, 0, detail=f"the top SN {top} itself was "
                                        f"dropped: {first}"))
                s.close()
                continue
            answer = WindowAnswer(w, None, limit)
            for k in range(1, limit + 1):
                got = s._call("unprotect", s.iut.unprotect, packet(top - k))
                if not isinstance(got, Delivered):
                    answer = WindowAnswer(w, k, k, first_drop=
                                          f"SN {top - k} (top {top}): {got.detail or got.reason}")
                    break
            out.append(answer)
            s.close()
        except (ConformanceFailure, IutLost) as e:
            failure = e.failure if isinstance(e, IutLost) else e
            out.append(WindowAnswer(w, None, 0, detail=str(failure.findings[0])))
    return out

