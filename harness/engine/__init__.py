"""The lockstep engine: the model beside an IUT, judging every packet.

Read in this order:

* ``judge`` -- the model's four ends (expected sender, opener, peer, reference receiver)
  and the findings their disagreements with the IUT become;
* ``session`` -- one installed IUT and its judge, the moves a scenario is made of, and the
  step log that replays it;
* ``lockstep`` -- Hypothesis choosing moves per suite family and shrinking failures;
* ``runner`` -- one case on one profile to one verdict;
* ``craft`` -- hand-built packets with valid ICVs around wrong bodies;
* ``pairwise`` -- profiles that cover every pair of design-space values.

The IUT contract the engine drives is ``harness.contract``; adapters plug in through
``harness.loader`` and are never imported here.
"""
