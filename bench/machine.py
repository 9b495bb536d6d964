"""What the benchmarks say about the machine and measure of a process: the CPU model, resident-set figures."""
import ctypes
import platform
from typing import Callable, Tuple


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for the header of every table."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown CPU'


def vm_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``, ...)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def peak_rise_mib(run: Callable[[], object]) -> Tuple[float, float]:
    """``(rise, before)`` in MiB: how far the process's peak resident set rises above its resident set while
    ``run()`` runs (VmHWM reset through /proc/self/clear_refs after ``malloc_trim``), and that resident set. Call
    ``run`` once before (a warm-up) so one-time allocations (thread pools, oneDNN primitives) are not counted."""
    ctypes.CDLL('libc.so.6').malloc_trim(0)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM to the current resident set
    before = vm_kib('VmRSS')
    out = run()
    peak = vm_kib('VmHWM')
    del out
    return (peak - before) / 1024, before / 1024
