"""Errors a user can meet: each carries one sentence that says what happened and what to do."""


class UserError(Exception):
    """A mistake or condition the user can fix; the CLI prints its message and exits non-zero.

    The message must be one sentence and must never contain a secret.
    """

    exit_code = 2


class LandedButFailed(UserError):
    """The load landed (raw data and saved state moved on), but a later step (transform,
    publish) failed: readers still see the last good build. Exit code 3, as the README says."""

    exit_code = 3
