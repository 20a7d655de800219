"""User-facing errors: one line, naming the input and what is wrong with it."""


class InputError(Exception):
    """Bad input from the user (file, shape, values): the CLI prints ``str(e)`` and exits 2.

    Raise it as ``InputError(f"{path}: expected 3 dimensions, got 2")``: the message must
    name the input and the problem on one line, since the CLI prints nothing else.
    """
