"""Planning with the policy's sequences rolled out once per call against once per iteration, alternately in one process.

    python benchmarks/adhoc/dcmpc_policy_rollouts_ab.py [--rounds 8] [--malloc keep-freed|default]

"Per-call times at the paper's sizes" in BENCHMARKS.md. ``MPPIPlanner.reuse_policy_rollouts`` False
(every sequence rolled out in every iteration, as before the change) and True (the default), A and B alternately in each
round on the same model (paper sizes, 2 threads); per round the median of 3 planning calls of each.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch as th

sys.path.insert(0, str(Path(__file__).parents[1]))
from _timing import median_time  # noqa: E402
from dcmpc_speed import ab_setup  # noqa: E402


def main() -> None:
    args, model = ab_setup(__doc__, default_rounds=8)
    policy = model.policy
    obs = th.randn(1, model.observation_space.shape[0])
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for reuse in times:
            policy.planner.reuse_policy_rollouts = reuse
            times[reuse].append(median_time(lambda: policy.plan(obs, exploration_std=0.1), 3) * 1e3)
    policy.planner.reuse_policy_rollouts = True
    ratio = statistics.median(b / a for a, b in zip(times[False], times[True], strict=True))
    print(f"malloc={args.malloc} rounds={args.rounds} torch={th.__version__}")
    print(
        f"planning call: every iteration {statistics.median(times[False]):.1f} ms, once {statistics.median(times[True]):.1f}"
        f" ms, once / every iteration {ratio:.2f} (median of the rounds' ratios)"
    )
    print(f"  per round: every iteration {[round(x) for x in times[False]]}, once {[round(x) for x in times[True]]}")


if __name__ == "__main__":
    main()
