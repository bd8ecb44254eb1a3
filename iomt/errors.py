"""The command line's own error: a message for the user, printed on one line."""


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""
