#!/usr/bin/env python3
"""receiver: the model's receiver of every named profile, afresh for each input.

The first byte picks the profile, the rest is the packet; the answer must be Delivered
or Dropped. Plain byte mutation rarely gets past the ICV: see resealed for that.
"""
from harness.fuzz.engine import instrumented, run

with instrumented(__name__, "spec_model"):
    from harness.fuzz.parsers import receiver_target
    test_one_input = receiver_target()

if __name__ == "__main__":
    run(test_one_input, "receiver")
