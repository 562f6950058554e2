"""facegan's own exception (problems a user can fix: bad input, missing files) and warning."""


class FaceganError(Exception):
    """A problem with the user's input or files, explained in one line.

    The command line prints the message and exits with status 2, without a traceback.
    """


class FaceganWarning(UserWarning):
    """Something the user should know that does not stop the work; the command line
    prints it as one line."""
