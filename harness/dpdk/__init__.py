"""DPDK 22.11's ipsec-secgw example (librte_ipsec, software crypto) as a real
implementation under test.

Theory of operation: scripts/build-ipsec-secgw builds the example from the source Debian
ships (dpdk-doc) into a cache folder outside the checkout and prints the binary's path.
This package runs that binary in end a of a ``harness.net`` topology with one outbound
and one inbound tunnel-mode SA toward end b, so espspec's model can stand in end b's
place for ESP (raw IP protocol 50; secgw has no UDP encapsulation for software SAs).

* ``config`` -- pure: frozen dataclasses and functions that write secgw's file (``sa``,
  ``sp``, ``rt``, ``neigh`` lines) and its command line from espspec's terms (SPI, AEAD
  name, key || salt, endpoints, selectors); the package's exception classes.
* ``rig`` -- the process: ``Secgw`` (start, restart, stop, alive, stats, last_words),
  the frames espspec's side writes (``ip_packet``, ``plain_frame``, ``esp_frame``), and
  ``build_binary`` (scripts/build-ipsec-secgw, once).
* ``fence`` -- pure: the fence packets that tell a drop at once (secgw reports none).

What this package does not do: build the topology or the relay (the caller does, and
closes them), send or judge ESP (the suites and ``spec_model`` do), or copy any DPDK
code into the checkout.
"""

from .config import (AEADS, BadSecgwConfig, BinaryMissing, SecgwDied, SecgwError, SecgwSa,
                     SecgwStartFailed)
from .rig import Secgw, build_binary, dpdk_version, ip_packet

__all__ = ["AEADS", "BadSecgwConfig", "BinaryMissing", "Secgw", "SecgwDied", "SecgwError",
           "SecgwSa", "SecgwStartFailed", "build_binary", "dpdk_version", "ip_packet"]
