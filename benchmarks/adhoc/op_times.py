"""Time of every ATen call inside DC-MPC or Dreamer updates at the paper's sizes, with layouts and page faults.

    python benchmarks/adhoc/op_times.py --algo dcmpc|dreamer [--updates 2] [--warmup 3] [--top 40]
        [--malloc keep-freed|default]

A ``TorchDispatchMode`` times each call with ``perf_counter`` and counts the page faults it took (``getrusage``); the
report lists the slowest kinds of call (operator, input shapes and layouts: ``C`` contiguous, ``CL`` channels-last,
``S`` other strides) per update, then the time per operator. The mode itself costs some Python per call, so the sum
of the calls is a little under the update's time. "Per-call times at the paper's sizes" in BENCHMARKS.md: this found
the convolutions' slow bias gradients.
"""

import argparse
import collections
import resource
import sys
import time
from pathlib import Path

import torch as th
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).parents[1]))
from _timing import add_malloc_option, apply_malloc_option  # noqa: E402


def layout(t: th.Tensor) -> str:
    if t.dim() == 4 and t.is_contiguous(memory_format=th.channels_last) and not t.is_contiguous():
        return "CL"
    return "C" if t.is_contiguous() else "S"


class OpTimes(TorchDispatchMode):
    """Totals ``[milliseconds, calls, page faults]`` per (operator, input shapes, input layouts)."""

    def __init__(self):
        super().__init__()
        self.totals = collections.defaultdict(lambda: [0.0, 0, 0])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        out = func(*args, **(kwargs or {}))
        elapsed = time.perf_counter() - start
        tensors = [a for a in args if isinstance(a, th.Tensor)][:3]
        key = (str(func), tuple(tuple(t.shape) for t in tensors), tuple(layout(t) for t in tensors))
        total = self.totals[key]
        total[0] += elapsed * 1e3
        total[1] += 1
        total[2] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["dcmpc", "dreamer"], default="dreamer")
    parser.add_argument("--updates", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3, help="updates before the timed ones (the heap grows first)")
    parser.add_argument("--top", type=int, default=40)
    add_malloc_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    th.set_num_threads(2)
    if args.algo == "dcmpc":
        from dcmpc_speed import ready_for_updates
    else:
        from dreamer_speed import ready_for_updates
    model = ready_for_updates("paper")
    for _ in range(args.warmup):
        model.train(gradient_steps=1, batch_size=model.batch_size)
    mode = OpTimes()
    start = time.perf_counter()
    with mode:
        for _ in range(args.updates):
            model.train(gradient_steps=1, batch_size=model.batch_size)
    n = args.updates
    print(f"{args.algo}: {(time.perf_counter() - start) / n * 1e3:.1f} ms per update with the mode on, ", end="")
    print(f"{sum(t[0] for t in mode.totals.values()) / n:.1f} ms in its calls")
    print("| ms per update | calls | page faults | operator | input shapes | layouts |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (op, shapes, layouts), (ms, calls, faults) in sorted(mode.totals.items(), key=lambda kv: -kv[1][0])[: args.top]:
        print(f"| {ms / n:.1f} | {calls // n} | {faults // n} | {op} | {list(shapes)} | {' '.join(layouts)} |")
    by_op = collections.defaultdict(float)
    for (op, _, _), (ms, _, _) in mode.totals.items():
        by_op[op.rsplit(".", 1)[0]] += ms / n
    print("\n| operator | ms per update |\n| --- | --- |")
    for op, ms in sorted(by_op.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| {op} | {ms:.1f} |")


if __name__ == "__main__":
    main()
