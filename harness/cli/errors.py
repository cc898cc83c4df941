"""The one exception the command line raises for bad usage (exit status 2)."""


class UsageError(Exception):
    """The command line asks for something that does not exist or cannot be done."""
