"""espspec's outer layer: everything that does I/O around the sans-IO ``spec_model``.

The architecture, as the packages show it:

* ``contract`` -- the IUT contract: the verbs an implementation answers, its SA
  configuration and capabilities. Adapters depend on it; it depends on no adapter.
* ``loader`` -- turns ``--iut NAME`` into an adapter, through entry points for built-in
  and vendor adapters alike.
* ``engine/`` -- the lockstep engine: judge, sessions, Hypothesis driver, case runner.
* ``adapters/`` -- the built-in adapters, plug-ins like any other: in process
  (``reference``, ``scapy``) and over the network (``tun_daemon``: any daemon behind a TUN
  device, the reference daemon among them; ``strongswan``).
* ``mutants/`` -- seeded-bug variants of the reference adapter (plug-ins too).
* ``results/`` -- the results document and its text on the terminal.
* ``capture/`` -- the pcap/pcapng reader and dissector.
* ``pcapcheck/`` -- offline certification from captures (``check-pcap``, ``gen-pcap``).
* ``net/`` -- network namespaces, veths and the AF_PACKET relay between two ends, for
  implementations that run as daemons.
* ``daemon/`` -- the SA file every daemon under test reads, the description file a
  vendor names a daemon with, the event and control lines a daemon speaks, and the
  reference daemon (the model behind a TUN device).
* ``strongswan/`` -- two strongSwan charons on a topology: config, log parsing (keys,
  drops), CHILD_SAs on demand.
* ``dpdk/`` -- DPDK's ipsec-secgw on a topology: its config file, the process, the wiring
  of its ports, the fence packets that tell its silent drops (built by
  ``scripts/build-ipsec-secgw``; the adapter is ``adapters/dpdk``).
* ``fuzz/`` -- coverage-guided fuzzing on atheris: the target scripts (``fuzz/targets/``),
  the structure-aware re-sealing mutator, the oracle that holds an IUT against the model,
  the differential against scapy, the seeds and the figures.
* ``cli/`` -- the ``espspec`` command; ``pytest_plugin`` -- the suites under pytest;
  ``tables`` -- text tables; ``atomic_file`` -- replacing a
  file so that readers never see half of it.

Nothing here is imported by ``spec_model``.
"""
