"""torch.profiler of two DC-MPC updates (or planning calls) at the paper sizes, self CPU time per operation.

    python benchmarks/adhoc/dcmpc_update_profile.py [--call update|plan] [--shapes] [--malloc keep-freed|default]
        [--warmup 1]

"Per-call times at the paper's sizes" in BENCHMARKS.md (it was run once before the --call,
--shapes and --malloc options existed, with glibc's default allocator).
"""

import argparse
import sys
from pathlib import Path

import torch as th
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parents[1]))
from _timing import add_malloc_option, apply_malloc_option  # noqa: E402
from dcmpc_speed import ready_for_updates  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--call", choices=["update", "plan"], default="update")
parser.add_argument("--shapes", action="store_true", help="group by input shapes")
parser.add_argument("--warmup", type=int, default=1, help="calls before the profiled one (the heap grows over the first)")
add_malloc_option(parser)
args = parser.parse_args()
apply_malloc_option(args)
th.set_num_threads(2)
m = ready_for_updates("paper")
obs = th.randn(1, m.observation_space.shape[0])


def call():
    if args.call == "update":
        m.train(gradient_steps=2, batch_size=m.batch_size)
    else:
        for _ in range(2):
            m.policy.plan(obs, exploration_std=0.1)


for _ in range(args.warmup):
    call()
with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
    call()
print(
    prof.key_averages(group_by_input_shape=args.shapes).table(
        sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=40, max_shapes_column_width=70
    )
)
