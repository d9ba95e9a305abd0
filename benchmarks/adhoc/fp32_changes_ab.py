"""The float32 speed changes, before ("A") and after ("B"), alternately in one process.

    python benchmarks/adhoc/fp32_changes_ab.py [--change onednn|ensemble|exp2|relu-inplace|conv-bias|trim]
        [--algo dcmpc|dreamer]
        [--size paper|paper-vector|pendulum-cpu|pixels-cpu] [--threads 2] [--rounds 6] [--repeats 3] [--compile-planner]
        [--malloc keep-freed|default]

"Per-call times at the paper's sizes" in BENCHMARKS.md.
``--change onednn``: linear layers through MKL (``F.linear``, A) or oneDNN (``networks.linear``, B), switched with
``networks.ONEDNN_LINEAR``. ``--change ensemble``: an ensemble layer whose input the members share (the critics' first
layer) as one batched product per member (``baddbmm``, A) or one product with the members side by side (B).
``--change exp2``: ``exp`` (A) or ``exp2`` (B) in Mish and in planning's expected codes (whose logits are then in base 2).
``--change relu-inplace``: Dreamer's convolutional encoder and decoder with ``nn.ReLU()`` (A) or ``nn.ReLU(inplace=True)``
(B).
``--change conv-bias``: Dreamer's convolutions as PyTorch computes them (A) or with their bias gradients
summed apart and, for the image decoder's last layer, a sub-pixel forward pass (B, ``networks.OWN_CPU_CONVOLUTIONS``;
with ``--sub-pixel-max-channels 0`` only the bias gradients).
``--change trim``: :func:`sb3_worldmodels.keep_freed_memory` as before the change, with glibc's heap top
trimmed above 2 GiB (A), or never trimmed, as now (B); set with ``mallopt`` between the variants. The update's
losses are not compared for it (:func:`compare_losses` says why).
Every round times each call ``--repeats`` times with A and then with B, on the same model (``--size``: DC-MPC
``paper`` or ``pendulum-cpu``, Dreamer ``paper``, ``paper-vector``, ``pendulum-cpu`` or ``pixels-cpu``);
the report gives the median of each and the median of the rounds' ratios. Before the rounds, the values are compared:
a seeded planning call's action, and one update's losses from the same state (the model's and optimisers' state is
restored in between).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

sys.path.insert(0, str(Path(__file__).parents[1]))
from _timing import add_malloc_option, alternate, apply_malloc_option, hot_calls, print_comparison  # noqa: E402

import sb3_worldmodels.common.networks as networks  # noqa: E402
from sb3_worldmodels.common import allocator  # noqa: E402
from sb3_worldmodels.common.precision import no_autocast  # noqa: E402
from sb3_worldmodels.dcmpc.policies import DCMPCPolicy  # noqa: E402

batched_per_member = networks.EnsembleLinear.forward


def trim_heap_top_above_2_gib(flag: bool) -> None:
    """glibc's trim threshold: 2 GiB, the largest positive value (``keep_freed_memory`` before the change), or -1
    (never trim, as it is now)."""
    set_option = allocator.mallopt()
    if set_option is None or not set_option(allocator.M_TRIM_THRESHOLD, 2**31 - 1 if flag else -1):
        raise RuntimeError("mallopt(M_TRIM_THRESHOLD) failed")


def side_by_side(self, x: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
    """Tried and not kept (no gain): an input shared by the members as one product with the members'
    weights side by side, ``(batch, in) @ (in, n * out)``, laid out in a copy."""
    weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
    if x.dim() != 2:
        return th.baddbmm(bias, x, weight)
    n = weight.shape[0]
    weights = weight.permute(1, 0, 2).reshape(self.in_features, n * self.out_features)
    out = networks.linear(x, weights.t(), bias.reshape(n * self.out_features))
    return out.view(x.shape[0], n, self.out_features).transpose(0, 1)


class ExpVariant:
    """Mish and planning's expected codes with ``exp`` (before the change) or ``exp2`` (current)."""

    current = (
        networks._MishFunction.forward,
        networks.Mish.forward,
        DCMPCPolicy.planning_head,
        DCMPCPolicy.expected_codes,
    )

    @staticmethod
    def mish_function_forward(ctx, x: th.Tensor) -> th.Tensor:
        e = x.clamp(max=20.0).exp_()
        t, _ = networks._mish_from_exp(x, e)
        ctx.save_for_backward(x, t, e)
        return t * x

    def mish_forward(self, x: th.Tensor) -> th.Tensor:
        if th.is_grad_enabled() and x.requires_grad:
            return networks._MishFunction.apply(x)
        e = x.clamp(max=20.0).exp_()
        n = (e + 2).mul_(e)
        return n.div_(n + 2).mul_(x)

    def expected_codes(self, logits: th.Tensor) -> th.Tensor:
        codebook = self.quantizer.codebook.to(logits.dtype)
        weights = th.cat([codebook, th.ones_like(codebook[:, :1])], dim=1)
        with no_autocast(logits.device):
            sums = weights.t() @ logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
        channels = codebook.shape[1]
        return (sums[:, :channels] / sums[:, channels:]).transpose(1, 2).flatten(1).float()

    @classmethod
    def use(cls, exp2: bool) -> None:
        if exp2:
            functions = cls.current
        else:
            functions = (cls.mish_function_forward, cls.mish_forward, DCMPCPolicy.dynamics_head_by_code, cls.expected_codes)
        networks._MishFunction.forward = staticmethod(functions[0])
        networks.Mish.forward, DCMPCPolicy.planning_head, DCMPCPolicy.expected_codes = functions[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    changes = ["onednn", "ensemble", "exp2", "relu-inplace", "conv-bias", "trim"]
    parser.add_argument("--change", choices=changes, default="onednn")
    parser.add_argument("--algo", choices=["dcmpc", "dreamer"], default="dcmpc")
    parser.add_argument("--size", choices=["paper", "paper-vector", "pendulum-cpu", "pixels-cpu"], default="paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile-planner", action="store_true")
    parser.add_argument("--sub-pixel-max-channels", type=int, default=networks.SUB_PIXEL_MAX_CHANNELS)
    add_malloc_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    th.set_num_threads(args.threads)
    networks.SUB_PIXEL_MAX_CHANNELS = args.sub_pixel_max_channels

    def use(flag: bool) -> None:
        if args.change == "onednn":
            networks.ONEDNN_LINEAR = flag
        elif args.change == "exp2":
            ExpVariant.use(flag)
        elif args.change == "conv-bias":
            networks.OWN_CPU_CONVOLUTIONS = flag
        elif args.change == "trim":
            trim_heap_top_above_2_gib(not flag)
        elif args.change == "relu-inplace":
            for module in model.policy.modules():
                if isinstance(module, th.nn.ReLU):
                    module.inplace = flag
        else:
            networks.EnsembleLinear.forward = side_by_side if flag else batched_per_member

    model, calls = hot_calls(args.algo, args.size, args.compile_planner)
    if args.algo == "dcmpc":
        obs = th.as_tensor(np.random.randn(1, model.observation_space.shape[0]).astype(np.float32))
        actions = {}
        for flag in (False, True):
            use(flag)
            actions[flag] = model.policy.plan(obs, deterministic=True).action
        print(f"deterministic planning action, largest difference: {(actions[True] - actions[False]).abs().max():.2e}")

    if args.change != "trim":  # the allocator does not change values
        compare_losses(model, use)
    times = alternate(calls, {"A": lambda: use(False), "B": lambda: use(True)}, args.rounds, args.repeats)
    use(True)
    print(f"change={args.change} algo={args.algo} size={args.size} compiled={args.compile_planner}", end=" ")
    print(f"rounds={args.rounds} repeats={args.repeats}")
    print_comparison(times, "A", "B", per_round=True)


def compare_losses(model: Any, use: Callable[[bool], None]) -> None:
    """The same update from the same state with A and with B: the losses logged by the model's logger.

    Not for ``--change trim``: the copies of the state made here sit above the update's activations in the heap, so
    the heap top is never trimmed afterwards and A looks like B (measured: 1.00 that way, against faults of about
    2 GB per update with A without the copies).
    """
    state = copy.deepcopy(model.policy.state_dict())
    optimizers = {
        name: copy.deepcopy(opt.state_dict())
        for name, opt in vars(model.policy).items()
        if isinstance(opt, th.optim.Optimizer)
    }
    losses = {}
    for flag in (False, True):
        use(flag)
        model.policy.load_state_dict(state)
        for name, opt in optimizers.items():
            getattr(model.policy, name).load_state_dict(opt)
        th.manual_seed(1)
        np.random.seed(1)
        model.train(gradient_steps=1, batch_size=model.batch_size)
        losses[flag] = {k: v for k, v in model.logger.name_to_value.items() if "loss" in k}
    for key in losses[False]:
        a, b = losses[False][key], losses[True][key]
        print(f"  {key}: A {a:.6g} B {b:.6g} relative difference {abs(a - b) / max(abs(a), 1e-12):.1e}")


if __name__ == "__main__":
    main()
