"""How rebnn_det writes files others may read or write at the same time (plain Python): :func:`atomic_write`
(never half a file) and :func:`exclusive_lock` (one writer at a time)."""
import contextlib
import errno
import os
import os.path as osp
import signal
import threading
import time
import uuid
import warnings
from typing import BinaryIO, Callable, Iterator

# Signals whose default action ends the process without running Python's clean-up: while a temporary file is being
# written they raise SystemExit instead (exit status 128 + signal number, as the default action reports), so the
# temporary file is removed and the process still ends.
EXIT_SIGNALS = tuple(getattr(signal, name) for name in ('SIGTERM', 'SIGHUP') if hasattr(signal, name))


@contextlib.contextmanager
def exit_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM/SIGHUP raise ``SystemExit(128 + signum)`` in the main thread (where their
    handler is still the default one), so ``finally`` blocks and ``except BaseException`` clean-ups run; the
    previous handlers are restored afterwards. Off the main thread (where Python cannot set handlers) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def _raise(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in EXIT_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _link_exclusive(tmp: str, path: str) -> None:
    """Give the complete file ``tmp`` the name ``path`` only if no file has that name (atomic: ``os.link``);
    ``FileExistsError`` otherwise. Where hard links are not supported, ``path`` is first claimed with an exclusive
    create and then replaced by the complete file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # claims the name or raises
        os.replace(tmp, path)
    else:
        os.remove(tmp)


def atomic_write(path: str, write: Callable[[BinaryIO], None], replace: bool = True) -> None:
    """Call ``write(f)`` on a unique temporary file next to ``path``, flush it to disk and move it onto ``path``: a
    reader sees the old file or the complete new one, never half of one; concurrent writers never share a
    temporary file (the name holds the pid and a random part); on any error, Ctrl-C, SIGTERM or SIGHUP the
    temporary file is removed and ``path`` is untouched (only SIGKILL or a power cut can leave the hidden temporary
    file behind). ``replace=False`` creates ``path`` exclusively: if it exists when the file is complete (even if
    it appeared meanwhile), ``FileExistsError`` and it is left as it is. The file gets the usual permissions (0666
    less the umask)."""
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp')
    with exit_signals_raise():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, 'wb') as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if replace:
                os.replace(tmp, path)
            else:
                _link_exclusive(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created if needed, never removed): ``fcntl.flock``
    on Linux/macOS, ``msvcrt.locking`` on Windows. The OS drops it when the holder dies, so a killed generator
    never blocks the next run. Where no lock is available a warning says that concurrent writers are unsafe. Used by
    the shapes generator (one writer per split) and the benchmark's results merge (one writer of the json)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            import fcntl
        except ImportError:
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:  # e.g. a network file system without lock support
                warnings.warn(f'cannot lock {path} ({e}): do not start several writers of what it guards at once')
            yield
            return
        try:
            import msvcrt
        except ImportError:
            msvcrt = None
        if msvcrt is None:
            warnings.warn(f'no file locking on this platform: do not start several writers of what {path} guards '
                          'at once')
            yield
            return
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                break
            except OSError:
                time.sleep(0.1)
        try:
            yield
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)  # closing the descriptor also releases a flock
