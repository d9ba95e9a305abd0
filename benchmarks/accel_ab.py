"""A/B timing of the fast paths (``accel``): the same hot calls with two ``accel`` settings, side by side in one process.

    python benchmarks/accel_ab.py --algo dcmpc --a auto --b none [--size paper] [--rounds 5] [--repeats 3]
    python benchmarks/accel_ab.py --algo dreamer --a auto --b auto-conv_kernels --json benchmarks/results/accel_ab.json

``--a`` / ``--b``: ``auto``, ``none``, ``auto-NAME`` (every fast path but NAME) or comma-separated names out of
``sb3_worldmodels.accel.FAST_PATHS``. Two models are built from the same seed, one per setting; each round times every
call with A then B (``repeats`` calls after a warm-up, the median kept), so that the machine's changing load hits both
alike. Prints the median times and the median of the rounds' ratios A / B, and appends them to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess

import torch as th
from _timing import accel_option, add_malloc_option, apply_malloc_option, call_times, hot_calls, malloc_setting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["dcmpc", "dreamer"], default="dcmpc")
    parser.add_argument("--size", default="paper", help="a size of dcmpc_speed.py / dreamer_speed.py")
    parser.add_argument("--a", default="auto")
    parser.add_argument("--b", default="none")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=pathlib.Path, help="append the result to this JSON list")
    add_malloc_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    th.set_num_threads(args.threads)
    settings = {"A": args.a, "B": args.b}
    calls = {name: hot_calls(args.algo, args.size, accel=accel_option(value))[1] for name, value in settings.items()}
    times = {call: {name: [] for name in settings} for call in calls["A"]}
    for _ in range(args.rounds):
        for call in times:
            for name in settings:
                hot = calls[name][call]
                times[call][name].append(statistics.median(call_times(hot.fn, args.repeats)) * 1e3 / hot.units)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {
        "algo": args.algo, "size": args.size, "a": args.a, "b": args.b, "rounds": args.rounds, "repeats": args.repeats,
        "threads": args.threads, "malloc": malloc_setting(), "torch": th.__version__, "commit": commit, "calls": {},
    }  # fmt: skip
    print(f"{args.algo} size={args.size} A={args.a} B={args.b} malloc={malloc_setting()} commit={commit}")
    print("| call | A median (ms) | B median (ms) | A / B (median of rounds) | rounds' range |")
    print("| --- | --- | --- | --- | --- |")
    for call, by in times.items():
        ratios = [a / b for a, b in zip(by["A"], by["B"], strict=True)]
        row = dict(a_ms=statistics.median(by["A"]), b_ms=statistics.median(by["B"]), ratio=statistics.median(ratios))
        result["calls"][call] = {**row, "ratio_range": [min(ratios), max(ratios)], "a_rounds": by["A"], "b_rounds": by["B"]}
        print(f"| {call} | {row['a_ms']:.1f} | {row['b_ms']:.1f} | {row['ratio']:.2f} | {min(ratios):.2f}-{max(ratios):.2f} |")
    if args.json is not None:
        previous = json.loads(args.json.read_text()) if args.json.exists() else []
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([*previous, result], indent=1) + "\n")


if __name__ == "__main__":
    main()
