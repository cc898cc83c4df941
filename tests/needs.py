"""What a test of a real implementation needs on this machine, said as the reason to skip.

Only a missing Debian package (or not being root, for namespaces) is a reason: any other
failure to build or start the implementation fails the test that asked.
"""

from __future__ import annotations

import os


def secgw_missing() -> str:
    """'' when DPDK's ipsec-secgw can run here, else why not: root, and the binary
    scripts/build-ipsec-secgw builds (it names the Debian package that is missing)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    from harness.dpdk import BinaryMissing, build_binary
    try:
        build_binary()
    except BinaryMissing as e:
        if "(Debian: apt-get install" in str(e):
            return str(e)
        raise
    return ""
