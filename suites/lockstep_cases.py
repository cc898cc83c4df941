"""One Hypothesis-driven lockstep exploration per family (see harness.engine.lockstep)."""

from __future__ import annotations

from harness.engine import lockstep

from . import CaseContext, case

LOCKSTEP_REQUIREMENTS = {
    "nonce": ("NONCE-UNIQUE-PER-KEY", "NONCE-SUBSA-SEPARATION", "SEQ-STRICTLY-INCREASING",
              "SUBSA-ID-LOCATION", "AAD-RFC4106", "AAD-EESP", "AAD-PSP", "KDF-SUBSA-KEY"),
    "replay": ("REPLAY-DUPLICATE-DROP", "REPLAY-TOO-OLD-DROP", "REPLAY-WINDOW-SIZE",
               "REPLAY-ADVANCE-AFTER-ICV", "REPLAY-PER-SUBSA-WINDOW", "ICV-VERIFY",
               "ESN-INFER-CASE-A", "ESN-INFER-CASE-B", "SUBSA-ID-AUTHENTICATED"),
    "limits": ("SEQ-NO-WRAP", "LIMIT-HARD-PER-SUBSA", "LIMIT-HARD-SUM",
               "LIMIT-2POW64-SHARED-KEY", "SEND-WITHIN-LIMITS"),
    "wire": ("WIRE-ESP-LAYOUT", "PAD-CONTENT-SEND", "WIRE-ALIGN", "ICV-VERIFY",
             "RECV-ACCEPT-VALID", "CRYPTOFF-AUTHENTICATED"),
}


def _explore(family: str):
    def run(ctx: CaseContext) -> None:
        result = lockstep.run(ctx, family)
        if result.failure is not None:
            raise result.failure
    run.__doc__ = (f"Hypothesis explores {family} scenarios in lockstep with the model; a "
                   f"failure shrinks to a minimal step list.")
    return run


for _family, _reqs in LOCKSTEP_REQUIREMENTS.items():
    case(_family, "lockstep", _reqs)(_explore(_family))
