#!/usr/bin/env python3
"""network: mutated packets to a daemon behind a TUN device; it must stay up and agree.

The IUT is ESPSPEC_FUZZ_IUT (default reference-daemon; any TUN-daemon adapter:
mutant-daemon:NAME, daemon:FILE, strongswan). Each input is installed afresh, follows a
short history and is sent twice (an IUT that negotiates its keys keeps its SA and gets
the input re-sealed under them); what the daemon delivers must be what the model
delivers, and the daemon must not die or hang. Runs supervised: the namespaces and
processes it makes are removed by PID when it ends, however it ends.
Needs: root (network namespaces, TUN)
"""
import os

from harness.fuzz.engine import instrumented, run

with instrumented(__name__, "spec_model"):
    from harness.fuzz.network import network_target
    from harness.fuzz.reseal import mutate, shrink_for
    IUT = os.environ.get("ESPSPEC_FUZZ_IUT", "reference-daemon")
    test_one_input = network_target(IUT)

if __name__ == "__main__":
    run(test_one_input, "network", custom_mutator=mutate, shrink=shrink_for(),
        seeds="resealed", supervise=True)
