"""The one exception type for mistakes a user can make (bad config, missing data, wrong checkpoint).

Catching ``SSAGANError`` at the entry points lets them print one clean line instead of a traceback,
and tests can assert on it without matching library-internal exception types.
"""


class SSAGANError(ValueError):
    """A problem with user input; the message names the offending file/key/value and the fix."""
