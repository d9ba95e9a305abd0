"""torch.profiler of one Dreamer update at the paper's pixel sizes after 4 warm-up updates, self CPU time per operation.

    python benchmarks/adhoc/dreamer_update_profile.py [--malloc keep-freed|default]

"Per-call times at the paper's sizes" in BENCHMARKS.md.
"""

import argparse
import sys
from pathlib import Path

import torch as th
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parents[1]))
import dreamer_speed  # noqa: E402
from _timing import add_malloc_option, apply_malloc_option  # noqa: E402

parser = argparse.ArgumentParser()
add_malloc_option(parser)
args = parser.parse_args()
apply_malloc_option(args)
th.set_num_threads(2)
model = dreamer_speed.ready_for_updates("paper")
for _ in range(4):  # until the heap has grown to its steady state (no more page faults with keep-freed)
    model.train(gradient_steps=1, batch_size=model.batch_size)
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    model.train(gradient_steps=1, batch_size=model.batch_size)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=40))
averages = prof.key_averages(group_by_input_shape=True)
print(averages.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=28, max_shapes_column_width=80))
