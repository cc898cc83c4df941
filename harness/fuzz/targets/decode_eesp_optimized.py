#!/usr/bin/env python3
"""decode-eesp-optimized: the EESP decoder of every optimized-format EESP profile (the first byte picks one).

A decoded packet must encode back to the same bytes; a refusal must be a DecodeError
that names its requirement.
"""
from harness.fuzz.engine import instrumented, run

with instrumented(__name__, "spec_model"):
    from harness.fuzz.parsers import decoder_target
    from spec_model import Framing
    test_one_input = decoder_target(Framing.EESP_OPTIMIZED)

if __name__ == "__main__":
    run(test_one_input, "decode-eesp-optimized")
