"""The one exception type for problems a user can fix (bad input, missing files)."""


class FaceganError(Exception):
    """A problem with the user's input or files, explained in one line.

    The command line prints the message and exits with status 2, without a traceback.
    """
