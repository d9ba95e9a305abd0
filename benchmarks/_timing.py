"""Timing helpers shared by the speed benchmarks: matmul rate, median time, FLOP count."""

from __future__ import annotations

import argparse
import ctypes.util
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import torch as th
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

#: glibc's malloc keeping freed memory for reuse (docs/performance.md, "Memory allocator"): nothing under 1 GiB
#: mmapped, the heap top trimmed only above 1 TiB (never), 64 MiB of extra heap whenever it grows.
GLIBC_KEEP_FREED = (
    "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1099511627776:glibc.malloc.top_pad=67108864"
)


def tcmalloc_library() -> str | None:
    """The name of an installed tcmalloc for ``LD_PRELOAD`` (Debian: ``libtcmalloc-minimal4``), or ``None``."""
    return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def add_malloc_option(parser: argparse.ArgumentParser) -> None:
    """``--malloc tcmalloc|keep-freed|default``; call :func:`apply_malloc_option` on the parsed arguments first thing."""
    parser.add_argument(
        "--malloc",
        choices=["tcmalloc", "keep-freed", "default"],
        default="tcmalloc" if tcmalloc_library() else "keep-freed",
        help="the C allocator (docs/performance.md, 'Memory allocator'), unless GLIBC_TUNABLES or LD_PRELOAD is set:"
        " tcmalloc through LD_PRELOAD (the default where it is installed), glibc keeping freed memory"
        " (GLIBC_TUNABLES=<GLIBC_KEEP_FREED>), or the environment's as it is",
    )


def apply_malloc_option(args: argparse.Namespace) -> None:
    """Replace this process by the same command under the allocator ``--malloc`` names.

    The C allocator is chosen from the environment when a process starts, so the setting takes a new process
    (``os.execve``; nothing has run yet). An allocator set from outside, ``GLIBC_TUNABLES`` or ``LD_PRELOAD``, is left
    as it is.
    """
    if args.malloc == "default" or {"GLIBC_TUNABLES", "LD_PRELOAD"} & os.environ.keys():
        return
    if args.malloc == "tcmalloc":
        library = tcmalloc_library()
        if library is None:
            raise SystemExit("--malloc tcmalloc: no tcmalloc installed (Debian: apt-get install libtcmalloc-minimal4)")
        variables = {"LD_PRELOAD": library}
    else:
        variables = {"GLIBC_TUNABLES": GLIBC_KEEP_FREED}
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **variables})


def malloc_setting() -> str:
    """The allocator settings of this process's environment, for the header of a result (``keep-freed``: glibc with
    ``GLIBC_KEEP_FREED`` alone; ``tcmalloc``: tcmalloc preloaded alone)."""
    names = [name for name in ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF") if name in os.environ]
    if names == ["GLIBC_TUNABLES"] and os.environ["GLIBC_TUNABLES"] == GLIBC_KEEP_FREED:
        return "keep-freed"
    if names == ["LD_PRELOAD"] and "tcmalloc" in os.environ["LD_PRELOAD"]:
        return "tcmalloc"
    return ",".join(f"{name}={os.environ[name]}" for name in names) or "default"


class Rate(NamedTuple):
    """FLOP/s of one matmul-rate measurement: from the median and from the fastest of its products."""

    median: float
    best: float


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device cpu|cuda``: where the model runs and where the matmul rate is measured."""
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")


#: ``--mixed-precision`` choices and the dtype of their matrix products.
PRECISIONS = {"fp32": th.float32, "bf16": th.bfloat16, "fp16": th.float16}


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """``--mixed-precision fp32|bf16|fp16``; :func:`mixed_precision` gives the constructor argument."""
    parser.add_argument("--mixed-precision", choices=list(PRECISIONS), default="fp32")


def mixed_precision(args: argparse.Namespace) -> str | None:
    """The algorithms' ``mixed_precision`` argument for ``--mixed-precision`` (``None`` for fp32)."""
    return None if args.mixed_precision == "fp32" else args.mixed_precision


def synchronize(device: th.device | str) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously: a host clock read without this times the launch)."""
    if th.device(device).type == "cuda":
        th.cuda.synchronize(device)


def matmul_rate(dtype: th.dtype, size: int = 1024, repeats: int = 20, device: th.device | str = "cpu") -> Rate:
    """FLOP/s of square matrix products of ``size`` in ``dtype`` on ``device``.

    On CUDA, float32 products run in full float32 (PyTorch's default ``float32_matmul_precision("highest")``, no TF32).
    On an x86 CPU two backends are timed and the faster gives the rate: ``a @ b`` (MKL in float32, oneDNN in bf16 and
    fp16) and oneDNN's linear, which ``accel.cpu_kernels.linear`` uses for float32 (1.0-1.1x MKL's rate at
    1024^3 on the Zen 4 host), so that the floor is that of the fastest products this machine offers.
    """
    a, b = th.randn(size, size, dtype=dtype, device=device), th.randn(size, size, dtype=dtype, device=device)
    products = [lambda: a @ b]
    if th.device(device).type == "cpu" and th.backends.mkldnn.is_available() and dtype == th.float32:
        products.append(lambda: th.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))  # a @ b.T
    rates = []
    for product in products:
        for _ in range(2):
            product()
        times = call_times(product, repeats, device)  # after a third warm-up product
        rates.append(Rate(2 * size**3 / statistics.median(times), 2 * size**3 / min(times)))
    return Rate(max(r.median for r in rates), max(r.best for r in rates))


def device_matmul_rate(dtype: th.dtype, device: th.device | str) -> Rate:
    """:func:`matmul_rate` at sizes that suit ``device``: 8192^3 products on CUDA (smaller ones time the launch more
    than the product); on the CPU 1024^3 in float32, and fewer 512^3 products in lower precision, which without native
    bf16 / fp16 instructions take seconds at 1024."""
    if th.device(device).type == "cuda":
        return matmul_rate(dtype, size=8192, repeats=10, device=device)
    return matmul_rate(dtype) if dtype == th.float32 else matmul_rate(dtype, size=512, repeats=3)


def call_times(fn: Callable[[], object], repeats: int, device: th.device | str = "cpu") -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn``, after one warm-up call, each until ``device`` is idle."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


class HotCall(NamedTuple):
    """A call timed by the in-process comparisons, and how many units (updates) one call makes."""

    fn: Callable[[], object]
    units: int


def accel_option(value: str) -> str | list[str]:
    """The ``accel`` argument a command line names: ``auto``, ``none``, ``auto-NAME`` (every fast path but NAME) or
    comma-separated fast paths."""
    from sb3_worldmodels.accel import FAST_PATHS

    if value in ("auto", "none"):
        return value
    if value.startswith("auto-"):
        return [name for name in FAST_PATHS if name != value[len("auto-") :]]
    return [name for name in value.split(",") if name]


def hot_calls(
    algo: str, size: str, compile_planner: bool = False, accel: str | list[str] = "auto"
) -> tuple[object, dict[str, HotCall]]:
    """A seeded model (``dcmpc_speed`` / ``dreamer_speed``'s ``ready_for_updates``) and its hot calls: DC-MPC's
    planning call and gradient update (two per call, as the actor is updated every 2nd step), Dreamer's update."""
    import numpy as np

    if algo == "dreamer":
        from dreamer_speed import ready_for_updates

        model = ready_for_updates(size, accel=accel)
        return model, {"gradient update": HotCall(lambda: model.train(gradient_steps=1, batch_size=model.batch_size), 1)}
    from dcmpc_speed import ready_for_updates

    model = ready_for_updates(size, accel=accel)
    if compile_planner:
        model.policy.compile_planner()
    obs = th.as_tensor(np.random.randn(1, model.observation_space.shape[0]).astype(np.float32))
    return model, {
        "planning call": HotCall(lambda: model.policy.plan(obs, exploration_std=0.1), 1),
        "gradient update": HotCall(lambda: model.train(gradient_steps=2, batch_size=model.batch_size), 2),
    }


def alternate(
    calls: dict[str, HotCall], variants: dict[str, Callable[[], None]], rounds: int, repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per unit of every call under every variant, ``{call: {variant: [one median per round]}}``.

    Each round times each call ``repeats`` times (after a warm-up call) with each variant in turn (``variants`` maps a
    name to the function that switches the model to it), so that the machine's changing load hits all alike.
    """
    times = {call: {name: [] for name in variants} for call in calls}
    for _ in range(rounds):
        for call, hot in calls.items():
            for name, switch in variants.items():
                switch()
                times[call][name].append(statistics.median(call_times(hot.fn, repeats)) * 1e3 / hot.units)
    return times


def print_comparison(times: dict[str, dict[str, list[float]]], first: str, second: str, per_round: bool = False) -> None:
    """Markdown table of :func:`alternate`'s times: the median of each variant and of the rounds' ratios first / second."""
    print(f"| call | {first} median (ms) | {second} median (ms) | {first} / {second} (median of rounds) | rounds' range |")
    print("| --- | --- | --- | --- | --- |")
    for call, by in times.items():
        ratios = [a / b for a, b in zip(by[first], by[second], strict=True)]
        print(
            f"| {call} | {statistics.median(by[first]):.1f} | {statistics.median(by[second]):.1f} |"
            f" {statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |"
        )
        if per_round:
            print(f"  per round: {first} {[round(x) for x in by[first]]}, {second} {[round(x) for x in by[second]]}")


def median_time(fn: Callable[[], object], repeats: int, device: th.device | str = "cpu") -> float:
    """Median wall-clock seconds of ``fn`` over ``repeats`` calls, after one warm-up call."""
    return statistics.median(call_times(fn, repeats, device))


if th.backends.mkldnn.is_available():

    @register_flop_formula(th.ops.mkldnn._linear_pointwise)
    def _onednn_linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        """``accel.cpu_kernels.linear``'s oneDNN products (unknown to the FLOP counter): ``x (..., K) @ w (N, K).T``."""
        return 2 * math.prod(x_shape[:-1]) * w_shape[0] * w_shape[1]


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of the matrix products and convolutions of one call of ``fn`` (backward included)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def print_table(rows: list[tuple[str, float, list[float]]], rates: list[Rate], precision: str = "fp32") -> None:
    """Markdown table of ``(call, flops, call times in seconds)`` rows against the floor FLOPs / matmul rate.

    The machine is shared, and the load of its neighbours moves both the calls and the matmul rate. Two comparisons:
    the median call against the floor at the highest median rate of the run, and the fastest call against the floor
    at the fastest product of the run (both the least disturbed measurements of the same machine).
    """
    median_rate, best_rate = max(r.median for r in rates), max(r.best for r in rates)
    header = f"| call | GFLOP | {precision} floor (ms) | measured median (ms) | median / floor "
    print(header + "| floor at the fastest product (ms) | fastest call (ms) | fastest / floor |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, flops, times in rows:
        floor, median = flops / median_rate, statistics.median(times)
        best_floor, fastest = flops / best_rate, min(times)
        print(
            f"| {name} | {flops / 1e9:.2f} | {floor * 1e3:.1f} | {median * 1e3:.1f} | {median / floor:.2f} "
            f"| {best_floor * 1e3:.1f} | {fastest * 1e3:.1f} | {fastest / best_floor:.2f} |"
        )


def print_peak_memory(device: th.device | str) -> None:
    """The process's peak resident memory, and on CUDA the GPU memory PyTorch allocated at most."""
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if th.device(device).type == "cuda":
        print(f"peak GPU memory allocated: {th.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


def describe(device: th.device | str) -> str:
    """The device in words, for the header of a result (the CPU model is left to the caller's notes)."""
    if th.device(device).type == "cuda":
        return f"cuda ({th.cuda.get_device_name(device)})"
    return "cpu"
