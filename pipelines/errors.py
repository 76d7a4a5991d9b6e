"""Errors a user can meet: each carries one sentence that says what happened and what to do."""


class UserError(Exception):
    """A mistake or condition the user can fix; the CLI prints its message and exits non-zero.

    The message must be one sentence and must never contain a secret.
    """

    exit_code = 2
