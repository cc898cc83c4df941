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
    from harness.fuzz.reseal import mutate, shrink_for
    from harness.fuzz.oracle import Pair
    from harness.fuzz.sas import split
    from harness.loader import load_iut

IUT = os.environ.get("ESPSPEC_FUZZ_IUT", "reference")
_factory = load_iut(IUT)
_caps = _factory().capabilities()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    profile, packet = split(data)
    if _caps.unsupported(profile):
        return
    iut = _factory()
    try:
        Pair(profile, iut).judge(packet)
    finally:
        iut.close()


if __name__ == "__main__":
    run(test_one_input, "resealed", custom_mutator=mutate, shrink=shrink_for())
