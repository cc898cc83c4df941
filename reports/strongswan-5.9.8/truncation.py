"""Reproduces: charon (kernel-libipsec 5.9.8) encrypts a truncated inner packet when the
TUN device's MTU is raised above the 1400 bytes libipsec created it with.

Run as root from the repository: .venv/bin/python reports/strongswan-5.9.8/truncation.py
It negotiates a CHILD_SA, raises ipsec0's MTU to 9000, writes a 1420-byte inner IPv4
packet into ipsec0, opens the ESP packet charon sends with the model and prints both
lengths. Seen on 2026-12-03: "wrote 1420 bytes into ipsec0, charon encrypted 1400".
"""

from harness.adapters.strongswan import StrongSwanIut
from harness.adapters.tun_daemon import close_rigs
from harness.engine.session import make_payload, sa_pair
from harness.net.procs import run
from spec_model import Receiver, named

profile = named("esp")
try:
    iut = StrongSwanIut()
    outbound, _ = iut.install(*sa_pair(profile, "truncation", 0))   # charon's own SAs
    rig = iut.rig_
    run(["ip", "-n", rig.topology.ns["a"], "link", "set", rig.interface, "mtu", "9000"])
    payload, nh = make_payload(profile, 1400)                      # 20 + 1400 bytes
    wire = iut.protect(0, payload, nh)
    opened = Receiver(profile, outbound.keymat, outbound.spi).open(wire)
    print(f"wrote {len(payload)} bytes into {rig.interface}, charon encrypted "
          f"{len(opened.payload)}")
finally:
    close_rigs()
