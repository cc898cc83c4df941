#!/usr/bin/env python3
"""diff-scapy-psp: the model against scapy's PSP layer (scapy.contrib.psp), packet for packet.

PSP profiles, with the key the model derives for the SPI; the
mutator re-seals authentic packets with one field changed. A new disagreement in
accept/reject or in the decoded payload, or an exception scapy does not document, is a
finding; reviewed ones (reports/fuzz-scapy/) are counted, not raised.
"""
from harness.fuzz.engine import instrumented, run

with instrumented(__name__, "spec_model", "scapy.contrib.psp"):
    from harness.fuzz.differential import psp_target, SCAPY_PSP_PROFILES
    from harness.fuzz.reseal import mutate_for, shrink_for
    test_one_input = psp_target()

if __name__ == "__main__":
    run(test_one_input, "diff-scapy-psp", custom_mutator=mutate_for(SCAPY_PSP_PROFILES),
        shrink=shrink_for(SCAPY_PSP_PROFILES))
