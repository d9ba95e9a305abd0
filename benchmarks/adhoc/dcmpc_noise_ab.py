"""The update's Gumbel noise from ``torch.rand`` against the current ``gumbel_noise``, alternately in one process.

    python benchmarks/adhoc/dcmpc_noise_ab.py [--rounds 8] [--malloc keep-freed|default]

"Per-call times at the paper's sizes" in BENCHMARKS.md. "torch.rand" is the noise as drawn before the
change (one float32 uniform per element from PyTorch's serial CPU generator, a fresh tensor every update); "words" is
the current one (two uniforms from each 64-bit random integer, written to memory kept from the last update). Each
round times the noise alone (median of 5 draws of the paper-size update's 4 x 512 x 15 x 512 values) and whole
updates (median of 3) with each, A and B alternately, on the same model (paper sizes, 2 threads).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch as th

sys.path.insert(0, str(Path(__file__).parents[1]))
from _timing import median_time  # noqa: E402
from dcmpc_speed import ab_setup  # noqa: E402

import sb3_worldmodels.dcmpc.dcmpc as dcmpc_module  # noqa: E402

current = dcmpc_module.gumbel_noise


def torch_rand_noise(shape, device, buffer=None):
    """The noise before the change."""
    return th.rand(shape, device=device).clamp_(min=1e-20).log_().neg_().log_().neg_()


def main() -> None:
    args, model = ab_setup(__doc__, default_rounds=8)
    policy = model.policy
    shape = (model.horizon - 1, model.batch_size, policy.quantizer.codebook_size, policy.latent_dim)
    variants = {"torch.rand": torch_rand_noise, "words": current}
    noise = {name: [] for name in variants}
    update = {name: [] for name in variants}
    for fn in variants.values():  # warm-up: the buffer, the heap
        dcmpc_module.gumbel_noise = fn
        model.train(gradient_steps=1, batch_size=model.batch_size)
    for _ in range(args.rounds):
        for name, fn in variants.items():
            dcmpc_module.gumbel_noise = fn
            noise[name].append(median_time(lambda: model._gumbel_noise(shape), 5) * 1e3)
            update[name].append(median_time(lambda: model.train(gradient_steps=1, batch_size=model.batch_size), 3) * 1e3)
    dcmpc_module.gumbel_noise = current
    print(f"malloc={args.malloc} rounds={args.rounds} torch={th.__version__}")
    print("| call | torch.rand (ms, median of rounds) | words (ms) | words / torch.rand (median of the rounds' ratios) |")
    print("| --- | --- | --- | --- |")
    for label, table in (("noise of one update", noise), ("update", update)):
        a, b = table["torch.rand"], table["words"]
        ratio = statistics.median(y / x for x, y in zip(a, b, strict=True))
        print(f"| {label} | {statistics.median(a):.1f} | {statistics.median(b):.1f} | {ratio:.2f} |")
        print(f"  per round: torch.rand {[round(x) for x in a]}, words {[round(x) for x in b]}")


if __name__ == "__main__":
    main()
