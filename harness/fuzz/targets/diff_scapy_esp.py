#!/usr/bin/env python3
"""diff-scapy-esp: the model against scapy's ESP decryption, packet for packet.

Classic ESP profiles scapy has (AES-GCM-128, 32-bit and extended sequence numbers); the
mutator re-seals authentic packets with one field changed. A new disagreement in
accept/reject or in the decoded payload, or an exception scapy does not document, is a
finding; reviewed ones (reports/fuzz-scapy/) are counted, not raised.
"""
from harness.fuzz.engine import instrumented, run

with instrumented(__name__, "spec_model", "scapy.layers.ipsec"):
    from harness.fuzz.differential import esp_target, SCAPY_ESP_PROFILES
    from harness.fuzz.reseal import mutate_for, shrink_for
    test_one_input = esp_target()

if __name__ == "__main__":
    run(test_one_input, "diff-scapy-esp", custom_mutator=mutate_for(SCAPY_ESP_PROFILES),
        shrink=shrink_for(SCAPY_ESP_PROFILES))
