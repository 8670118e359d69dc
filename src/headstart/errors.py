"""The one exception type headstart raises for anything the user can fix."""

from __future__ import annotations

__all__ = ["HeadstartError", "NotFittedError"]


class HeadstartError(ValueError):
    """Bad input, a missing artefact or a misuse, with a message that says what to do.

    Subclasses ``ValueError`` so callers that already guard against bad values keep working.
    """


class NotFittedError(HeadstartError):
    """``predict``/``save`` was called on an adapter that has not been fitted or loaded."""
