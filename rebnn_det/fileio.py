"""atomic_write: the one way rebnn_det writes a file that others may read while it is written (plain Python)."""
import contextlib
import errno
import os
import os.path as osp
import signal
import threading
import uuid
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
