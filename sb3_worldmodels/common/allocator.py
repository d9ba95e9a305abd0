"""Keep freed memory in the process: large CPU tensors then reuse pages instead of faulting in fresh ones.

PyTorch allocates CPU tensors with the C library's ``malloc``. With glibc's defaults, blocks above a threshold (128 KiB
at first; it adapts to the blocks freed, up to 32 MiB) are mapped with ``mmap`` and unmapped when freed, and the top
of the heap is handed back to the kernel once it is large enough. A large tensor of a planning call or an update is
then often new memory, whose first write pays one page fault per 4 KiB: writing a fresh 40 MB tensor took 20.6 ms
here against 1.1 ms with reuse, and a fresh 15.7 MB one (DC-MPC's dynamics logits at the paper's sizes) 4.6 ms
against 0.13 ms. :func:`keep_freed_memory` turns both mechanisms off, so that freed blocks stay in the heap for the
next tensor of the same size (as jemalloc or tcmalloc, often recommended for PyTorch on CPU, do). The cost: the
process keeps its peak memory until it exits.

Trimming is turned off completely (a threshold of -1, which glibc reads as the largest size), not merely raised to
the largest positive value, 2 GiB: a Dreamer update at the paper's pixel sizes can free more than 2 GiB at the top of
the heap (whether it does depends on what else the heap holds above it), which was then trimmed, and the next update
faulted in about 2 GB of pages again (BENCHMARKS.md, "Per-call times at the paper's sizes").

What it cannot change: PyTorch asks for 64-byte-aligned memory (``posix_memalign``), and glibc 2.36 (this machine's)
serves such a request by asking for the size plus the alignment plus a minimum chunk. A freed block of exactly one
tensor's size is then too small for the next tensor of that size unless it has merged with freed neighbours, and the
heap grows instead, onto new pages: one source of the page faults that remain with this setting (BENCHMARKS.md,
"Per-call times at the paper's sizes").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

# mallopt() parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

_applied = False


def mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt(param, value)`` (returns 1 on success), or ``None`` where there is none (not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int]
    return function


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory for reuse (Linux with glibc only; elsewhere nothing happens).

    Process-wide and not undoable; call it once, before training. ``sb3_worldmodels.train`` (the RL Zoo entry point),
    the examples and the speed benchmarks call it. Measured effect: BENCHMARKS.md, "Per-call times at the paper's sizes".

    :return: Whether the setting is in effect.
    """
    global _applied
    if _applied:
        return True
    set_option = mallopt()
    if set_option is None:
        return False
    # No mmap for blocks under 1 GiB, no trimming of the heap top at all, 64 MiB extra whenever the heap grows.
    _applied = bool(
        set_option(M_MMAP_THRESHOLD, 1 << 30) and set_option(M_TRIM_THRESHOLD, -1) and set_option(M_TOP_PAD, 1 << 26)
    )
    return _applied
