"""Write a file whole or not at all, and never over a file the user has unless asked.

Every writer (TIFF export, model files, checkpoints) goes through :func:`write_atomically`:
the bytes go to a fresh, uniquely named temporary file in the target folder (created with
O_EXCL and without following links, so a planted link or a stale file of the same name is
never written through or deleted), then the finished file is published in one step:

- ``overwrite=False``: ``os.link(tmp, path)`` creates the name only if it does not exist,
  atomically, so of two writers racing for one name exactly one wins and the other gets
  :class:`OutputExistsError` (a check-then-rename would let the second silently replace
  the first). Where hard links are not supported, an ``O_CREAT | O_EXCL | O_NOFOLLOW``
  reservation of the name followed by ``os.replace`` gives the same guarantee.
- ``overwrite=True``: ``os.replace(tmp, path)``, atomic; a link at ``path`` is replaced, not followed.

A reader that opens ``path`` sees the old file or the new one whole, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import OutputExistsError, WriteError

#: mode of published files: mkstemp makes 0600 files, but models and exports are meant to be shared
FILE_MODE = 0o644
#: os.link errors that mean "this filesystem has no hard links", not "this cannot be written"
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def exists_message(path: Path) -> str:
    return f"{path} already exists; choose another name or allow overwriting."


def write_error(path: Path, err: OSError) -> WriteError:
    """One sentence for an OS error while writing ``path`` (a full disk says so plainly)."""
    if err.errno in _DISK_FULL:
        return WriteError(f"Cannot write {path}: the disk is full.")
    reason = (err.strerror or str(err) or type(err).__name__).rstrip(".")
    return WriteError(f"Cannot write {path}: {reason}.")


def temp_path_in(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty, uniquely named file in ``folder`` for writing ``name``: (open descriptor, path).

    mkstemp opens with O_CREAT | O_EXCL (and O_NOFOLLOW where it exists): it never
    reuses or follows an existing entry. Hidden (leading dot) so folder listings skip it.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    return fd, Path(tmp)


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the finished ``tmp`` the name ``path`` in one atomic step; ``tmp`` is gone afterwards.

    Raises OutputExistsError when ``path`` exists (even as a dangling link) and not ``overwrite``.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists in any form, dangling links included
    except FileExistsError:
        raise OutputExistsError(exists_message(path)) from None
    except OSError as err:
        if err.errno not in _NO_HARD_LINKS:
            raise
        _publish_by_reservation(tmp, path)
        return
    with contextlib.suppress(OSError):  # published already: a leftover hidden name must not undo that
        os.unlink(tmp)


def _publish_by_reservation(tmp: Path, path: Path) -> None:
    """Fallback without hard links: claim the name exclusively, then replace the claim."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(path, flags, FILE_MODE))
    except FileExistsError:
        raise OutputExistsError(exists_message(path)) from None
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(path)  # our own empty reservation: give the name back
        raise


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None], overwrite: bool = False) -> Path:
    """Create ``path`` with the bytes ``write(file)`` writes, whole or not at all.

    Creates missing parent folders. Refuses (OutputExistsError) an existing ``path`` unless
    ``overwrite``, also when it appears while writing. Any OS error (a full disk, no permission)
    becomes one WriteError sentence and leaves neither a temporary file nor a partial output.
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):  # fail before the work; publish() checks again, atomically
        raise OutputExistsError(exists_message(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_path_in(path.parent, path.name)
    except OSError as err:
        raise write_error(path, err) from err
    try:
        # the descriptor mkstemp opened, never the name again; open() rather than fdopen() so the
        # file object has a path as its name (tifffile splits it)
        with open(tmp, "wb", opener=lambda _name, _flags: fd) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the name points at them
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), FILE_MODE)
        if not hasattr(os, "fchmod"):
            os.chmod(tmp, FILE_MODE)
        publish(tmp, path, overwrite)
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path
