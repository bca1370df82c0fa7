"""Exit codes and the usage error every command shares."""

from __future__ import annotations

EXIT_OK = 0  # every rule judged, none failed
EXIT_FAIL = 1  # the target broke a rule
EXIT_USAGE = 2  # how chatconform was called, or a target it cannot use at all
EXIT_ERROR = 3  # no rule failed, but the run could not judge some rule (ERROR)
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with how chatconform was called or what it was pointed at: exit 2, one line."""
