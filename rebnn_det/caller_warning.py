"""warn_at_caller: a warning shown at the user's line, not at a line inside rebnn_det or torch."""
import importlib.util
import os.path as osp
import sys
import sysconfig
import warnings

# frames in these folders are not "the caller" (what Python 3.12's ``warnings.warn(skip_file_prefixes=...)``
# does): rebnn_det itself and every installed package (torch's nn.Module.__call__ and optimizer step hooks,
# mmengine's runner, any wrapper a tool puts between two calls) -- the caller is the user's own code
_PACKAGE_DIR = osp.dirname(osp.abspath(importlib.util.find_spec(__package__).origin))
_INSTALLED = {osp.abspath(sysconfig.get_paths()[key]) for key in ('purelib', 'platlib')}
INTERNAL_PREFIXES = tuple(sorted(osp.join(folder, '') for folder in {_PACKAGE_DIR} | _INSTALLED))


def warn_at_caller(message: str, category=UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first stack frame outside rebnn_det and the installed
    packages: the code that called into rebnn_det, through any number of rebnn_det functions,
    ``nn.Module.__call__`` or an optimizer's step hooks (the outermost frame if all are internal)."""
    frame, stacklevel = sys._getframe(1), 2  # stacklevel 2 names the function that called warn_at_caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(INTERNAL_PREFIXES):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel)
