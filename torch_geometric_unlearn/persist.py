r"""Crash-safe files.

Whatever the package writes (checkpoints, reports, benchmark results) goes
to a temporary file in the target's folder, is flushed and fsynced, and only
then renamed over the target; the folder is fsynced after the rename.  A
crash or a kill at any point leaves either the old file or the complete new
one, never a torn one, because a rename within one file system replaces
the target atomically.  Writing over the file that was read (e.g.
``unlearn --out`` equal to ``--checkpoint``) is therefore safe.

Replacing a file is atomic, but reading it, changing what was read and
writing it back is not: two writers who both read the old file lose one of
their changes.  :func:`file_lock` serialises such writers (an advisory
:obj:`fcntl` lock on a lock file beside the target).

This module needs nothing beyond the standard library.
"""
import os
import stat
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from typing import IO, Callable, Iterator, List, Optional, Sequence, Tuple

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (see file_lock)
    fcntl = None

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
    :obj:`path` is left as it was.  A replaced file keeps its permissions
    (and owner, where permitted); a new one gets what :func:`open` would
    give it.

    Args:
        path (str): The target.
        mode (str): :obj:`'w'` (text) or :obj:`'wb'` (binary).
        **kwargs: Passed to :func:`open` (e.g. :obj:`newline=''`).

    Example:

    .. code-block:: python

        with atomic_open('report.json') as f:
            json.dump(report, f)
    """
    temp, f = _temporary(path, mode, **kwargs)
    try:
        with f:
            yield f
            _seal(f, temp, path)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _sync_folder(os.path.dirname(os.path.abspath(path)))


def atomic_write(files: Sequence[Tuple[str, Callable[[IO], None], str]]):
    r"""Writes several files as one commit: every file to a temporary file
    beside its target first (flushed and fsynced), then each renamed over
    its target in the order given.  A failure while writing (a full disk,
    an interrupt) removes the temporary files and leaves every target as
    it was; put the file that says the work was done (a checkpoint) last,
    so that it is replaced only after the others.

    Args:
        files (Sequence[Tuple[str, Callable, str]]): :obj:`(path, write,
            mode)` per file, :obj:`write(f)` filling the open file
            :obj:`f`, :obj:`mode` :obj:`'w'` or :obj:`'wb'`.
    """
    temps: List[str] = []
    try:
        for path, write, mode in files:
            temp, f = _temporary(path, mode)
            temps.append(temp)
            with f:
                write(f)
                _seal(f, temp, path)
        for (path, _, _), temp in zip(files, list(temps)):
            os.replace(temp, path)
            temps.remove(temp)
    except BaseException:
        for temp in temps:
            with suppress(OSError):
                os.unlink(temp)
        raise
    for folder in {os.path.dirname(os.path.abspath(p)) for p, _, _ in files}:
        _sync_folder(folder)


def _temporary(path: str, mode: str, **kwargs) -> Tuple[str, IO]:
    # A temporary file in the target's folder (a rename within one file
    # system is atomic), opened for writing.
    if mode not in ('w', 'wb'):
        raise ValueError(f"'mode' must be 'w' or 'wb' (got {mode!r})")
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, suffix='.tmp',
                                prefix=f'.{os.path.basename(path)}.')
    try:
        return temp, os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise


def _seal(f: IO, temp: str, path: str):
    # The temporary's content on disk, and the access of the file it will
    # replace, before the rename.
    f.flush()
    os.fsync(f.fileno())
    _keep_access(temp, path)


def _keep_access(temp: str, path: str):
    # A checkpoint holds the training data and the forgotten pairs: a file
    # replaced keeps who may read it.  mkstemp gives 0600, so a new file
    # gets what open() would give it.
    try:
        before = os.stat(path)
    except OSError:
        os.chmod(temp, 0o666 & ~_UMASK)
        return
    os.chmod(temp, stat.S_IMODE(before.st_mode))
    now = os.stat(temp)
    if (now.st_uid, now.st_gid) != (before.st_uid, before.st_gid):
        with suppress(OSError):  # only where permitted
            os.chown(temp, before.st_uid, before.st_gid)


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


_held = threading.local()


def lock_path(path: str) -> str:
    r"""The lock file :func:`file_lock` uses for :obj:`path`: a hidden
    file beside it, left in place (removing a lock file races with the
    next writer opening it)."""
    path = os.path.realpath(path)
    folder, name = os.path.split(path)
    return os.path.join(folder, f'.{name}.lock')


@contextmanager
def file_lock(path: str, timeout: Optional[float] = None,
              on_wait: Optional[Callable[[], None]] = None) -> Iterator[None]:
    r"""Holds the exclusive writer's lock of :obj:`path` for the block.

    Writers that read a file, change it and write it back (e.g. the
    :obj:`unlearn` command on a checkpoint) take it around the whole
    read-change-write, so that a second writer waits and then reads the
    first one's file instead of overwriting it.  The lock is advisory
    (:obj:`fcntl.flock` on :func:`lock_path`), released when the block ends
    or the process dies, and re-entrant within a thread.  Where
    :obj:`fcntl` is missing (Windows) it holds nothing.

    Args:
        path (str): The file to write; its folder must exist.
        timeout (float, optional): Seconds to wait for another holder;
            waits as long as it takes by default.
        on_wait (callable, optional): Called once if the lock is held
            elsewhere, before waiting (e.g. to say so).

    Raises:
        TimeoutError: If :obj:`timeout` passed with the lock held
            elsewhere.
    """
    key = os.path.realpath(path)
    held = vars(_held)
    if fcntl is None or held.get(key):
        held[key] = held.get(key, 0) + 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, path, timeout, on_wait)
        held[key] = 1
        try:
            yield
        finally:
            held[key] = 0
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, path: str, timeout: Optional[float],
             on_wait: Optional[Callable[[], None]]):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if on_wait is not None:
        on_wait()
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"'{path}' is being written by another process (its "
                    f"lock '{lock_path(path)}' was held for more than "
                    f"{timeout:g} s)") from None
            time.sleep(0.05)
