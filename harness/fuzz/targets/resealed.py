#!/usr/bin/env python3
"""resealed: structure-aware; one field of an authentic packet changed and sealed again.

The custom mutator opens a packet with the fuzz SA's keys, changes one field (body,
padding, trailer or PIH, sequence number, sub-SA ID, crypt offset, next header, header
bytes) and seals it again, so mutations get past the ICV. The packet then goes, after a
short history, twice to the model and to an IUT (ESPSPEC_FUZZ_IUT, any in-process --iut
name; default reference): the IUT must answer as the model does.
"""
import os

from harness.fuzz.engine import instrumented, run

with instrumented(__name__, "spec_model"):
    from harness.fuzz.oracle import iut_target
    from harness.fuzz.reseal import mutate, shrink_for
    test_one_input = iut_target(os.environ.get("ESPSPEC_FUZZ_IUT", "reference"))

if __name__ == "__main__":
    run(test_one_input, "resealed", custom_mutator=mutate, shrink=shrink_for())
