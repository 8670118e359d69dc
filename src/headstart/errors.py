"""The one exception type headstart raises for anything the user can fix."""

from __future__ import annotations

__all__ = ["HeadstartError", "NotFittedError"]


class HeadstartError(ValueError):
    """Bad input, a missing artefact or a misuse, with a message that says what to do.

    Subclasses ``ValueError`` so callers that already guard against bad values keep working.
    """


try:  # scikit-learn's own, so its tooling (check_is_fitted, check_estimator) recognises it
    from sklearn.exceptions import NotFittedError as _NotFitted
except ImportError:  # deployment (headstart.deploy) runs without scikit-learn
    class _NotFitted(ValueError, AttributeError):  # type: ignore[no-redef]
        pass


class NotFittedError(HeadstartError, _NotFitted):
    """``predict``/``save`` was called on an adapter that has not been fitted or loaded."""
