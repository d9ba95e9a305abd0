"""Page faults and time of successive calls at the paper's sizes, counted with getrusage in one process.

    python benchmarks/adhoc/page_faults.py --algo dcmpc|dreamer [--malloc keep-freed|default] [--calls 6]

DC-MPC: one update and one planning call per line; Dreamer: one pixel update per line. "Per-call times at the paper's
sizes" in BENCHMARKS.md.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import torch as th

sys.path.insert(0, str(Path(__file__).parents[1]))
import dreamer_speed  # noqa: E402
from _timing import add_malloc_option, apply_malloc_option  # noqa: E402
from dcmpc_speed import ready_for_updates  # noqa: E402


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measured(fn) -> str:
    start_faults, start = faults(), time.perf_counter()
    fn()
    return f"{faults() - start_faults} faults ({(time.perf_counter() - start) * 1e3:.0f} ms)"


parser = argparse.ArgumentParser()
parser.add_argument("--algo", choices=["dcmpc", "dreamer"], default="dcmpc")
parser.add_argument("--calls", type=int, default=6)
add_malloc_option(parser)
args = parser.parse_args()
apply_malloc_option(args)
th.set_num_threads(2)
th.manual_seed(0)
if args.algo == "dcmpc":
    model = ready_for_updates("paper")
    obs = th.randn(1, model.observation_space.shape[0])
    for _ in range(args.calls):
        update = measured(lambda: model.train(gradient_steps=1, batch_size=model.batch_size))
        print(f"update {update}, planning call {measured(lambda: model.policy.plan(obs, exploration_std=0.1))}", flush=True)
else:
    model = dreamer_speed.ready_for_updates("paper")
    for _ in range(args.calls):
        update = measured(lambda: model.train(gradient_steps=1, batch_size=model.batch_size))
        print(f"update {update}, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", flush=True)
