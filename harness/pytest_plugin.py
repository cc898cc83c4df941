"""pytest plugin: the suites as pytest tests (``--iut``, ``--profile``, ``--strict``).

Theory of operation: any test that asks for the ``espspec_case`` fixture is parametrized
over (profile x case) for the IUT named by ``--iut``; ``suites/test_conformance.py`` is
such a test, so ``pytest --pyargs suites.test_conformance --iut scapy`` runs the suites
under pytest (and under pytest-xdist with ``-n auto``). A FAIL is a test failure whose
message lists the findings and the minimal steps; UNSUPPORTED is a skip with its reason.
``--strict`` is pytest's own flag; espspec honours it too (NON-STRICT then fails). The
Hypothesis budget is ``--espspec-depth ci|certify``, deterministic from ``--espspec-seed``.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("espspec", "espspec conformance suites")
    g.addoption("--iut", default=None, help="IUT: reference, scapy, mutant:NAME, "
                "an espspec.iut entry point or module:factory (default: reference)")
    g.addoption("--profile", default=None, help="comma-separated named profiles "
                "(default: every profile the IUT supports)")
    g.addoption("--espspec-suite", default=None, help="comma-separated families")
    g.addoption("--espspec-depth", default="ci", choices=["ci", "certify"])
    g.addoption("--espspec-seed", default=0, type=int)
    g.addoption("--espspec-timeout", default=None, type=float, help="deadline per IUT "
                "verb in seconds (default: espspec run's)")
    g.addoption("--espspec-in-process", action="store_true", help="call the IUT in the "
                "pytest process: no deadline, and its crash ends pytest")


_FACTORIES: dict = {}


def factory_for(config):
    """The IUT factory of this pytest process: isolated in a worker process (one per
    pytest or xdist process, stopped at the end) unless --espspec-in-process."""
    from harness.engine.isolation import DEFAULT_TIMEOUT, Isolated
    from harness.loader import load_iut
    opt = config.getoption
    key = (opt("iut") or "reference", bool(opt("espspec_in_process")),
           opt("espspec_timeout") or DEFAULT_TIMEOUT)
    if key not in _FACTORIES:
        factory = load_iut(key[0])
        _FACTORIES[key] = factory if key[1] else Isolated(factory, key[2])
    return _FACTORIES[key]


def pytest_unconfigure(config) -> None:
    for factory in _FACTORIES.values():
        if hasattr(factory, "shutdown"):
            factory.shutdown()
    _FACTORIES.clear()


class EspspecCase:
    def __init__(self, config, case, profile, caps) -> None:
        self.config, self.case, self.profile, self.caps = config, case, profile, caps

    def check(self) -> None:
        from harness.engine.judge import Verdict
        from harness.engine.runner import DEPTHS, run_case
        opt = self.config.getoption
        strict = bool(opt("strict", False))
        r = run_case(self.case, factory_for(self.config), self.profile, self.caps,
                     seed=opt("espspec_seed"), strict=strict, depth=DEPTHS[opt("espspec_depth")])
        if r.verdict is Verdict.UNSUPPORTED:
            pytest.skip(f"UNSUPPORTED: {r.message}")
        if r.verdict in (Verdict.FAIL, Verdict.ERROR) or (strict and r.verdict is Verdict.NON_STRICT):
            from harness.results.text import format_steps
            steps = format_steps(r.steps)
            pytest.fail(f"{r.verdict.value} {self.case.id} on {self.profile.name}: "
                        f"{r.message}\n  minimal steps:\n{steps}", pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "espspec_case" not in metafunc.fixturenames:
        return
    from harness.engine.runner import probe, select_profiles
    from spec_model import named
    from suites import FAMILIES, plan
    opt = metafunc.config.getoption
    found = probe(factory_for(metafunc.config), named("esp"))
    if found.failure is not None:        # the IUT cannot be built: one failing test says so
        metafunc.parametrize("espspec_case", [ProbeFailed(found.failure)], ids=["iut:probe"])
        return
    profiles = select_profiles(found.caps,
                               opt("profile").split(",") if opt("profile") else None)
    families = opt("espspec_suite").split(",") if opt("espspec_suite") else list(FAMILIES)
    params = [EspspecCase(metafunc.config, c, p, found.caps)
              for p in profiles for c in plan(families)]
    metafunc.parametrize("espspec_case", params,
                         ids=[f"{x.profile.name}:{x.case.id}" for x in params])


class ProbeFailed:
    """The one test of a run whose IUT could not be built."""

    def __init__(self, failure) -> None:
        self.failure = failure

    def check(self) -> None:
        pytest.fail(f"the IUT could not be built: {self.failure.findings[0]}", pytrace=False)
