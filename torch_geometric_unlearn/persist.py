r"""Crash-safe files.

Whatever the package writes (checkpoints, reports, benchmark results) goes
to a temporary file in the target's folder, is flushed and fsynced, and only
then renamed over the target; the folder is fsynced after the rename.  A
crash or a kill at any point leaves either the old file or the complete new
one, never a torn one, because a rename within one file system replaces
the target atomically.  Writing over the file that was read (e.g.
``unlearn --out`` equal to ``--checkpoint``) is therefore safe.

This module needs nothing beyond the standard library.
"""
import os
import tempfile
from contextlib import contextmanager, suppress
from typing import IO, Iterator

# The permissions a plain open() would give a new file (mkstemp gives 0600).
_UMASK = os.umask(0)
os.umask(_UMASK)


def check_output(path: str, what: str = 'output') -> str:
    r"""Returns :obj:`path` if a file can be written there: its folder
    exists and is writable, and :obj:`path` is not a folder.  Otherwise
    raises a :class:`ValueError` naming :obj:`what` and the problem, so
    that a command fails before its long work, not after it.

    Args:
        path (str): The file to write.
        what (str): What the file is, for the message (e.g. an option).
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"{what} must be a file path (got {path!r})")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{what} '{path}' is a folder, not a file")
    if not os.path.isdir(folder):
        raise ValueError(f"{what} '{path}': the folder '{folder}' does not "
                         f"exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} '{path}': the folder '{folder}' is not "
                         f"writable")
    return path


@contextmanager
def atomic_open(path: str, mode: str = 'w', **kwargs) -> Iterator[IO]:
    r"""Opens a temporary file beside :obj:`path` for writing.  When the
    block ends normally, the file is flushed, fsynced and renamed over
    :obj:`path`; when it raises, the temporary file is removed and
    :obj:`path` is left as it was.

    Args:
        path (str): The target.
        mode (str): :obj:`'w'` (text) or :obj:`'wb'` (binary).
        **kwargs: Passed to :func:`open` (e.g. :obj:`newline=''`).

    Example:

    .. code-block:: python

        with atomic_open('report.json') as f:
            json.dump(report, f)
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"'mode' must be 'w' or 'wb' (got {mode!r})")
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, suffix='.tmp',
                                prefix=f'.{os.path.basename(path)}.')
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o666 & ~_UMASK)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _sync_folder(folder)


def _sync_folder(folder: str):
    # Makes the rename itself durable; not every platform can open a
    # folder (Windows cannot), and there the rename is all there is.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
