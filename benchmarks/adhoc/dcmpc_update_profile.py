"""torch.profiler of two DC-MPC updates at the paper sizes, self CPU time per operation.

    python benchmarks/adhoc/dcmpc_update_profile.py

"Session 5: where a paper-size update goes" in BENCHMARKS.md.
"""

import sys

import torch as th
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
from dcmpc_speed import ready_for_updates

th.set_num_threads(2)
m = ready_for_updates("paper")
m.train(gradient_steps=2, batch_size=m.batch_size)

with profile(activities=[ProfilerActivity.CPU]) as prof:
    m.train(gradient_steps=2, batch_size=m.batch_size)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=40))
