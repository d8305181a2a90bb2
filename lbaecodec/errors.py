"""Typed errors. The CLI turns each into one line on stderr and a non-zero exit."""


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (\\x1b, \\n, ...): a
    name read from a file must not move the cursor, retitle or clear a terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class LbaeError(Exception):
    """Base class of every error lbaecodec raises on bad input."""

    exit_code = 1


def value_or_raise(result):
    """For functions that return, item by item, a value or the exception that item raised:
    the value, or raise the exception."""
    if isinstance(result, Exception):
        raise result
    return result


class InputError(LbaeError):
    """An input file is missing, unreadable or not what it should be."""

    exit_code = 2


class LbaeFormatError(LbaeError):
    """A .lbae file is truncated, corrupted, or of an unknown version."""

    exit_code = 3


class ModelError(LbaeError):
    """A model cannot be found, loaded, or does not match a file."""

    exit_code = 4


class DataError(LbaeError):
    """A dataset is missing, fails its checksum, or cannot be parsed."""

    exit_code = 5


class MissingExtra(LbaeError):
    """A command needs an optional dependency that is not installed."""

    exit_code = 6

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs the Python package {module!r}: pip install 'lbaecodec[{extra}]'")
        self.module, self.extra = module, extra


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency, or raise MissingExtra naming the extra that brings it."""
    from importlib import import_module

    try:
        return import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module.split(".")[0]:
            raise
        raise MissingExtra(module, extra, purpose) from None
