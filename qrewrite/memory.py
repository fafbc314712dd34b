"""Peak memory, measured one way for training runs and benchmarks alike.

On CUDA: ``torch.cuda.max_memory_allocated``. On CPU: the resident-set high-water mark (``VmHWM``), which
:func:`reset_peak_memory` restarts (``/proc/self/clear_refs``) so a measured phase excludes model loading;
``ru_maxrss`` (peak since the process started) where ``/proc`` is unavailable.
"""

from __future__ import annotations

import resource

import torch


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_memory() -> str:
    """Start a new peak-memory window; returns how the peak will be measured."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return "torch.cuda.max_memory_allocated"
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "peak RSS (VmHWM, reset before the measured phase)"
    except OSError:
        return "peak RSS since process start (ru_maxrss; VmHWM reset unavailable)"


def peak_memory_mb() -> float:
    """Peak since the last :func:`reset_peak_memory` (or since the process started)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    hwm = _vm_hwm_mb()
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
