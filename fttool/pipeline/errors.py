"""Errors of running a plan."""


class RunError(Exception):
    """A run that cannot start or cannot continue; the message says what to do."""
