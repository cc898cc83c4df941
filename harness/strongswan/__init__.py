"""strongSwan 5.9.8 (charon with kernel-libipsec) as a real implementation under test.

Theory of operation: the rig runs two charons on a ``harness.net`` topology, A in end a
(the IUT) and B in end b (its IKEv2 peer), and negotiates CHILD_SAs between them, so a
suite can put espspec's model on the wire in B's place for ESP while IKE stays real.

* ``config`` -- frozen dataclasses and pure functions: strongswan.conf, swanctl.conf and
  the equivalent vici messages for one charon.
* ``logparse`` -- pure: charon's file log into key records (which key belongs to which
  SA) and drop records (replay, icv, padding, unknown-spi, other).
* ``rig`` -- the processes: ``StrongSwanPair`` (start, establish, counters, drops,
  kill_peer, close), ``Negotiated``, the ``RigError`` family, ``probe_proposals``.

What this package does not do: build the topology or the relay (the caller does, and
closes them), send or judge ESP packets (the suites and ``spec_model`` do), or touch any
strongSwan installation outside the work folder it is given.
"""

from .rig import (CharonDied, CharonStartFailed, IkeFailed, KeysNotLogged, Negotiated,
                  ProposalRefused, RigError, StrongSwanPair, ViciError, probe_proposals)
from .logparse import Drop

__all__ = ["CharonDied", "CharonStartFailed", "Drop", "IkeFailed", "KeysNotLogged",
           "Negotiated", "ProposalRefused", "RigError", "StrongSwanPair", "ViciError",
           "probe_proposals"]
