"""How much faster mixed precision is than float32, for the hot calls of both algorithms, in one process.

    python benchmarks/mixed_precision_speed.py [--algo dcmpc|dreamer] [--size paper|paper-vector] [--precision bf16]
        [--rounds 6] [--repeats 3] [--compile-planner] [--threads 2] [--malloc keep-freed|default]

The speed issue asks for ``mixed_precision="bf16"`` to plan at least 3x faster than float32 on a CPU with native
bfloat16 products. The two precisions are compared on the same model (same weights, same replay buffer): in every
round each call runs ``--repeats`` times in float32 and then in the lower precision (the model's ``mixed_precision``
is switched between them), and the report gives the median time of each and the median of the rounds' ratios, so that
the machine's load, which moves from minute to minute, hits both alike. The matmul rates of 1024^3 products in both
precisions are measured before and after, as the ceiling of the ratio the hardware allows.

DC-MPC (``--algo dcmpc``, paper sizes only): one MPPI planning call and one gradient update (the actor's update
every 2nd step averaged in). Dreamer (``--algo dreamer``, ``--size paper`` for 64x64 pixels or ``paper-vector``): one
gradient update. Results: BENCHMARKS.md, "Mixed precision on a CPU with bfloat16 instructions".
"""

from __future__ import annotations

import argparse
import platform
import statistics

import numpy as np
import torch as th
from _timing import PRECISIONS, add_malloc_option, apply_malloc_option, call_times, matmul_rate


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

    calls = {}
    if args.algo == "dcmpc":
        if args.size != "paper":
            parser.error("DC-MPC is benchmarked at the paper's sizes only (--size paper)")
        from dcmpc_speed import ready_for_updates

        model = ready_for_updates("paper")
        if args.compile_planner:
            model.policy.compile_planner()
        obs = th.as_tensor(np.random.randn(1, model.observation_space.shape[0]).astype(np.float32))
        calls["planning call"] = lambda: model.policy.plan(obs, exploration_std=0.1)
        # The actor is updated every 2nd step: two updates per timing, reported per update.
        calls["gradient update"] = lambda: model.train(gradient_steps=2, batch_size=model.batch_size)
        per_call = {"planning call": 1, "gradient update": 2}
    else:
        from dreamer_speed import ready_for_updates

        model = ready_for_updates(args.size)
        calls["gradient update"] = lambda: model.train(gradient_steps=1, batch_size=model.batch_size)
        per_call = {"gradient update": 1}

    def use(precision: str | None) -> None:
        model.mixed_precision = precision
        model.policy.mixed_precision = precision

    rates = {name: [] for name in ("fp32", args.precision)}

    def measure_rates() -> None:
        for name in rates:
            rates[name].append(matmul_rate(PRECISIONS[name]).median / 1e9)

    measure_rates()
    times: dict[str, dict[str, list[float]]] = {call: {"fp32": [], args.precision: []} for call in calls}
    for _ in range(args.rounds):
        for call, fn in calls.items():
            for name, precision in (("fp32", None), (args.precision, args.precision)):
                use(precision)
                times[call][name].append(statistics.median(call_times(fn, args.repeats)) * 1e3 / per_call[call])
    use(None)
    measure_rates()

    print(
        f"algo={args.algo} size={args.size} precision={args.precision} compiled={args.compile_planner} rounds={args.rounds}"
        f" repeats={args.repeats} threads={args.threads} malloc={args.malloc} torch={th.__version__}"
        f" cpu={platform.processor() or platform.machine()}"
    )
    low = args.precision
    print(
        "matmul rate, 1024^3 (GFLOP/s, median product, before and after): "
        + "; ".join(f"{name} {', '.join(f'{r:.0f}' for r in values)}" for name, values in rates.items())
    )
    print(f"| call | fp32 median (ms) | {low} median (ms) | fp32 / {low} (median of rounds) | range of the rounds' ratios |")
    print("| --- | --- | --- | --- | --- |")
    for call, by_precision in times.items():
        ratios = [a / b for a, b in zip(by_precision["fp32"], by_precision[low], strict=True)]
        print(
            f"| {call} | {statistics.median(by_precision['fp32']):.1f} | {statistics.median(by_precision[low]):.1f} |"
            f" {statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |"
        )


if __name__ == "__main__":
    main()
