"""Timing helpers shared by the speed benchmarks: matmul rate, median time, FLOP count."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch as th
from torch.utils.flop_counter import FlopCounterMode


def matmul_rate(dtype: th.dtype, size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of square matrix products of ``size`` in ``dtype``."""
    a, b = th.randn(size, size, dtype=dtype), th.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of the matrix products and convolutions of one call of ``fn`` (backward included)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def print_table(rows: list[tuple[str, float, float, float]], precision: str = "fp32") -> None:
    """Markdown table of ``(call, flops, floor seconds, measured seconds)`` rows."""
    print(f"| call | GFLOP | {precision} floor (ms) | measured median (ms) | measured / floor |")
    print("| --- | --- | --- | --- | --- |")
    for name, flops, floor, seconds in rows:
        print(f"| {name} | {flops / 1e9:.2f} | {floor * 1e3:.1f} | {seconds * 1e3:.1f} | {seconds / floor:.2f} |")
