"""The suites as one parametrized pytest test (see harness.pytest_plugin)."""


def test_conformance(espspec_case):
    espspec_case.check()
