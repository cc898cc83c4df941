"""The ground that real implementations stand on: network namespaces and a relay.

* ``topology`` -- namespaces ``<prefix>-a``, ``-mid``, ``-b``, veths, documentation
  addresses; removed on close, at exit and on SIGTERM (``close_all``).
* ``relay`` -- AF_PACKET in the middle namespace: forwards every frame, hands ESP to a
  policy (pass, hold/release, duplicate, drop, modify) and injects frames.
* ``frames`` -- where IP/UDP/ESP are in a frame; lengths and checksums.
* ``nsenter`` -- setns through ctypes: sockets in several namespaces from one process.
* ``procs`` -- commands and children, ours, waited for, killed by PID.
* ``leftovers`` -- the namespaces of a killed run, found by prefix (``espspec netns``).
* ``errors`` -- one exception class per way it can fail.

docs/network.md describes the whole.
"""
