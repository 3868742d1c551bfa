"""The one exception type for user mistakes.

Raise `UserError("what is wrong; what to do")` anywhere; the CLI catches it at
the top, prints the one line on stderr and exits with status 2.
"""


class UserError(Exception):
    """A mistake the user can fix: bad input, missing file, nonsense flag."""
