"""Daemons under test, and espspec's own reference daemon.

Theory of operation: a daemon IUT is a process that protects and unprotects real packets
between a TUN device (the tunnel's inner side) and a socket (the outer side), configured
by a file rather than by Python calls. This package holds the two parts of that contract
that need no relay:

* ``safile`` -- the SA file (schema ``espspec-sa/1``) espspec writes for each session and
  each rekey, and any daemon reads: profile, generation, outer endpoints, encapsulation,
  inner addresses, both SAs, the TUN interface name. Strict reader, atomic writer.
* ``reference`` -- ``espspec daemon --sa FILE``: the model (``spec_model.Sender`` and
  ``Receiver``) behind a TUN device and a UDP (or raw protocol-50) socket, reporting
  readiness, deliveries and drops as lines on stdout.

The contract itself, for vendors, is ``docs/daemon.md``. Namespaces, veths and the relay
between two daemons live in ``harness/net/``; nothing here imports them.
"""
