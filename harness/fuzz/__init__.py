"""Coverage-guided fuzzing of espspec's parsers and of implementations, on atheris.

Theory of operation: a *target* is an executable script in ``targets/`` (a shebang, so
that libFuzzer's ``-fork`` and ``-jobs`` can start it again) whose ``test_one_input(data)``
must return for every ``bytes``; anything it raises is a finding. The script names the
packages whose code the fuzzer measures (``engine.instrumented``) and hands itself to
``engine.run``, which gives libFuzzer the shipped corpus (``corpora/<target>/``) and a
work folder. The modules here are what the targets share, one concept each:

==============  ===================================================================
module          concept
==============  ===================================================================
registry        which targets exist (read from the scripts, never imported here)
engine          atheris glue: instrumentation, corpus folders, supervision
sas             the fixed SAs every target and seed uses (profiles, SPI, keys)
reseal          a packet opened to its fields, one field mutated, sealed again
oracle          an implementation's answer against the model's (a Disagreement)
parsers         the model's decoders and receiver, and the capture reader, as targets
differential    the model against scapy's ESP and PSP layers, and the known findings
network         a TUN daemon (or strongSwan) fed the structure-aware inputs
seeds           the corpora: model packets of every profile, vectors, captures
stats           figures: exec/s, features, spec_model lines, mutant rediscovery
==============  ===================================================================

Nothing in ``spec_model`` knows about fuzzing; ``harness.cli`` reaches targets only
through ``registry``.
"""
