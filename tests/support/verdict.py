"""What counts as a broken variant being caught.

A test of the tests runs a state machine against a deliberately broken driver or
device and expects a failure. Only two kinds of failure are the machine doing its job:
an `AssertionError` (an invariant, the refinement check or a model comparison) and a
`VirtioError` (the other side detected the broken rule and rejected it with a typed
error). Anything else, a `TypeError` from a variant whose override no longer matches
the method it replaces for example, means the variant never ran its bug, so it must
not count as caught.
"""

from __future__ import annotations

from collections.abc import Callable

from impl.errors import VirtioError

CAUGHT = (AssertionError, VirtioError)


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside `error`, flattening (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def is_caught(error: BaseException) -> bool:
    """Whether `error` is the machine reporting a violation (and nothing else)."""
    return all(isinstance(leaf, CAUGHT) for leaf in leaves(error))


def fails(run: Callable[[], object]) -> bool:
    """Run `run`; True if it reports a violation, False if it passes.

    Any other exception propagates: a variant that crashes for an unrelated reason is
    a defect of the test, not a catch.
    """
    try:
        run()
    except Exception as error:
        if is_caught(error):
            return True
        raise
    return False
