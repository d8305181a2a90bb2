"""Writing files so that a failure leaves no partial file: everything is written to a temporary
file in the target's folder, then published under its name in one step."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError


@contextmanager
def atomic_path(target: Path, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; when the block ends without an error it
    becomes ``target`` (keeping the mode of a file it replaces), otherwise it is removed.
    Without ``overwrite``, of two writers racing for a new path exactly one wins."""
    target = Path(target)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        existing = target.stat().st_mode & 0o7777 if target.exists() else None
        os.chmod(tmp, existing if existing is not None else 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, target)
        else:
            _publish_new(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes | str, overwrite: bool = True) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``target`` through :func:`atomic_path`."""
    with atomic_path(target, overwrite) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(target)


def _publish_new(tmp: Path, target: Path) -> None:
    """A hard link fails if the name exists, so only one of several writers gets a new path."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise InputError(f"{target} exists; use --force to overwrite") from None
    except OSError:  # a file system without hard links: check, then rename
        if target.exists():
            raise InputError(f"{target} exists; use --force to overwrite") from None
        os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
