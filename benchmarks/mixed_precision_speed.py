"""How much faster mixed precision is than float32, for the hot calls of both algorithms, in one process.

    python benchmarks/mixed_precision_speed.py [--algo dcmpc|dreamer] [--size paper|paper-vector] [--precision bf16]
        [--rounds 6] [--repeats 3] [--compile-planner] [--threads 2] [--malloc keep-freed|default]

The question is whether ``mixed_precision="bf16"`` plans at least 3x faster than float32 on a CPU with native
bfloat16 products. The two precisions are compared on the same model (same weights, same replay buffer): in every
round each call runs ``--repeats`` times in float32 and then in the lower precision (the model's ``mixed_precision``
is switched between them), and the report gives the median time of each and the median of the rounds' ratios, so that
the machine's load, which moves from minute to minute, hits both alike. The matmul rates of 1024^3 products in both
precisions are measured before and after, as the ceiling of the ratio the hardware allows.

DC-MPC (``--algo dcmpc``, paper sizes only): one MPPI planning call and one gradient update (the actor's update
every 2nd step averaged in). Dreamer (``--algo dreamer``, ``--size paper`` for 64x64 pixels or ``paper-vector``): one
gradient update. Results: docs/performance.md, "Mixed precision and compilation".
"""

from __future__ import annotations

import argparse
import platform

import torch as th
from _timing import (
    PRECISIONS,
    add_malloc_option,
    alternate,
    apply_malloc_option,
    hot_calls,
    malloc_setting,
    matmul_rate,
    print_comparison,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["dcmpc", "dreamer"], default="dcmpc")
    parser.add_argument("--size", choices=["paper", "paper-vector"], default="paper")
    parser.add_argument("--precision", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile-planner", action="store_true", help="DC-MPC: compile the planner (both precisions)")
    parser.add_argument("--threads", type=int, default=2)
    add_malloc_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    th.set_num_threads(args.threads)

    if args.algo == "dcmpc" and args.size != "paper":
        parser.error("DC-MPC is benchmarked at the paper's sizes only (--size paper)")
    model, calls = hot_calls(args.algo, args.size, args.compile_planner)

    def use(precision: str | None) -> None:
        model.mixed_precision = precision
        model.policy.mixed_precision = precision

    rates = {name: [] for name in ("fp32", args.precision)}

    def measure_rates() -> None:
        for name in rates:
            rates[name].append(matmul_rate(PRECISIONS[name]).median / 1e9)

    measure_rates()
    variants = {"fp32": lambda: use(None), args.precision: lambda: use(args.precision)}
    times = alternate(calls, variants, args.rounds, args.repeats)
    use(None)
    measure_rates()

    print(
        f"algo={args.algo} size={args.size} precision={args.precision} compiled={args.compile_planner} rounds={args.rounds}"
        f" repeats={args.repeats} threads={args.threads} malloc={malloc_setting()} torch={th.__version__}"
        f" cpu={platform.processor() or platform.machine()}"
    )
    low = args.precision
    print(
        "matmul rate, 1024^3 (GFLOP/s, median product, before and after): "
        + "; ".join(f"{name} {', '.join(f'{r:.0f}' for r in values)}" for name, values in rates.items())
    )
    print_comparison(times, "fp32", low)


if __name__ == "__main__":
    main()
