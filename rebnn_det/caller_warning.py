"""warn_at_caller: a warning shown at the user's line, not at a line inside rebnn_det or torch."""
import importlib.util
import os
import os.path as osp
import sys
import warnings


# frames in these packages are not "the caller" (what Python 3.12's ``warnings.warn(skip_file_prefixes=...)``
# does): rebnn_det itself, torch (nn.Module.__call__, optimizer step hooks) and mutmut (the function wrappers of
# `make mutation`, which sit between every two calls of the mutated code)
INTERNAL_PREFIXES = tuple(osp.dirname(osp.abspath(spec.origin)) + os.sep
                          for spec in map(importlib.util.find_spec, (__package__, 'torch', 'mutmut'))
                          if spec is not None and spec.origin)


def warn_at_caller(message: str, category=UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first stack frame outside rebnn_det and torch: the
    code that called into rebnn_det, through any number of rebnn_det functions, ``nn.Module.__call__`` or an
    optimizer's step hooks (the outermost frame if all are internal)."""
    frame, stacklevel = sys._getframe(1), 2  # stacklevel 2 names the function that called warn_at_caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(INTERNAL_PREFIXES):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel)
