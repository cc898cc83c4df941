#!/usr/bin/env python3
"""capture: the capture reader and dissector on any file (pcap and pcapng, every link type).

Any bytes must become records and findings, never an exception.
"""
from harness.fuzz.engine import instrumented, run

with instrumented(__name__, "harness.capture"):
    from harness.fuzz.parsers import capture_target
    test_one_input = capture_target()

if __name__ == "__main__":
    run(test_one_input, "capture")
