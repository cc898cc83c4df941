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


class EspspecCase:
    def __init__(self, config, case, profile) -> None:
        self.config, self.case, self.profile = config, case, profile

    def check(self) -> None:
        from harness.loader import load_iut
        from harness.engine.judge import Verdict
        from harness.engine.runner import DEPTHS, run_case
        opt = self.config.getoption
        factory = load_iut(opt("iut") or "reference")
        strict = bool(opt("strict", False))
        r = run_case(self.case, factory, self.profile, factory().capabilities(),
                     seed=opt("espspec_seed"), strict=strict, depth=DEPTHS[opt("espspec_depth")])
        if r.verdict is Verdict.UNSUPPORTED:
            pytest.skip(f"UNSUPPORTED: {r.message}")
        if r.verdict is Verdict.FAIL or (strict and r.verdict is Verdict.NON_STRICT):
            from harness.results.text import format_steps
            steps = format_steps(r.steps)
            pytest.fail(f"{r.verdict.value} {self.case.id} on {self.profile.name}: "
                        f"{r.message}\n  minimal steps:\n{steps}", pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "espspec_case" not in metafunc.fixturenames:
        return
    from harness.loader import load_iut
    from harness.engine.runner import select_profiles
    from suites import FAMILIES, plan
    opt = metafunc.config.getoption
    factory = load_iut(opt("iut") or "reference")
    profiles = select_profiles(factory().capabilities(),
                               opt("profile").split(",") if opt("profile") else None)
    families = opt("espspec_suite").split(",") if opt("espspec_suite") else list(FAMILIES)
    params = [EspspecCase(metafunc.config, c, p) for p in profiles for c in plan(families)]
    metafunc.parametrize("espspec_case", params,
                         ids=[f"{x.profile.name}:{x.case.id}" for x in params])
