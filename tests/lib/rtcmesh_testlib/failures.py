"""One exception hierarchy for test failures."""


class TestFailure(AssertionError):
    """The behaviour under test was wrong, or a process did not do what was waited for.
    An AssertionError, so that `assert` and the kit fail a test the same way."""

    __test__ = False  # not a pytest test class


class Timeout(TestFailure):
    """Something waited for did not happen in time."""


class Skip(Exception):
    """The test cannot run here (a missing optional tool); ctest's SKIP_RETURN_CODE 77."""


def require(cond, message):
    if not cond:
        raise TestFailure(message)
