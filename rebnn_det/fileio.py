"""atomic_write: the one way rebnn_det writes a file that others may read while it is written (plain Python)."""
import contextlib
import os
import os.path as osp
import uuid
from typing import BinaryIO, Callable


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a unique temporary file next to ``path``, flush it to disk and ``os.replace`` it onto
    ``path``: a reader sees the old file or the complete new one, never half of one; concurrent writers never
    share a temporary file (the name holds the pid and a random part); on any error the temporary file is removed
    and ``path`` is untouched. The file gets the usual permissions (0666 less the umask)."""
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
