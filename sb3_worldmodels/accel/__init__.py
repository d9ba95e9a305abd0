"""Fast paths: faster computations of the same values as the plain code, applied by the algorithms' ``accel`` argument.

The plain code (``sb3_worldmodels.common.networks``, ``sb3_worldmodels.dcmpc.latent``, the Dreamer modules) is what the
papers write; each fast path below computes the same values (to float32 rounding) another way, and ``tests/accel``
checks values and gradients against the plain code. docs/performance.md has what each one gives, and where.

- ``"onednn_linear"``: float32 linear layers through oneDNN instead of MKL on x86 CPUs (:mod:`.cpu_kernels`).
- ``"mish"``: Mish from one ``exp2`` with its own gradient (:mod:`.cpu_kernels`).
- ``"conv_kernels"``: convolutions in channels-last layout with the bias gradient summed apart, transposed
  convolutions with few output channels as one convolution and an interleave, and a transposed convolution of a 1x1
  input as one matrix product (:mod:`.cpu_kernels`).
- ``"code_major"``: DC-MPC's latent computations in a code-major layout (:mod:`.code_major`).

Only the algorithm classes call :func:`apply_fast_paths`; the CUDA graph of DC-MPC's planning call (:mod:`.cuda_graph`)
has its own argument, ``cuda_graph_planner``, because it changes what a call costs the first time (the capture).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_worldmodels.accel import cpu_kernels
from sb3_worldmodels.accel.code_major import CodeMajorLatent

#: Names of the fast paths, in the order :func:`apply_fast_paths` applies them.
FAST_PATHS = ("onednn_linear", "mish", "conv_kernels", "code_major")

#: The module each fast path puts in place of a PyTorch module: a subclass with the same parameters and state dict.
_MODULE_SWAPS: dict[str, dict[type[nn.Module], type[nn.Module]]] = {
    "onednn_linear": {nn.Linear: cpu_kernels.OneDNNLinear},
    "mish": {nn.Mish: cpu_kernels.FastMish},
    "conv_kernels": {nn.Conv2d: cpu_kernels.SplitBiasConv2d, nn.ConvTranspose2d: cpu_kernels.SplitBiasConvTranspose2d},
}


def resolve(accel: str | Sequence[str]) -> tuple[str, ...]:
    """The fast paths ``accel`` names: ``"auto"`` all of them, ``"none"`` none, or a list of names of :data:`FAST_PATHS`.

    :raises ValueError: for anything else, naming the choices.
    """
    if isinstance(accel, str):
        if accel == "auto":
            return FAST_PATHS
        if accel == "none":
            return ()
        raise ValueError(f'accel must be "auto", "none" or a list of fast paths out of {list(FAST_PATHS)}, got {accel!r}.')
    names = tuple(accel)
    unknown = [name for name in names if name not in FAST_PATHS]
    if unknown:
        raise ValueError(f"Unknown fast paths {unknown} in accel; the fast paths are {list(FAST_PATHS)}.")
    return tuple(name for name in FAST_PATHS if name in names)


def apply_fast_paths(policy: nn.Module, accel: str | Sequence[str]) -> tuple[str, ...]:
    """Apply the fast paths named by ``accel`` (:func:`resolve`) to ``policy`` in place; returns their names.

    Modules change class (to a subclass with the same parameters), never their parameters: optimizers, target copies
    made afterwards and checkpoints are unaffected. The plain modules are recognised by their exact class, so a user's
    own subclass is left as it is.
    """
    paths = resolve(accel)
    swaps = {old: new for name in paths for old, new in _MODULE_SWAPS.get(name, {}).items()}
    for module in policy.modules():
        new_class = swaps.get(type(module))
        if new_class is not None:
            module.__class__ = new_class
            if "conv_kernels" in paths and isinstance(module, nn.modules.conv._ConvNd):
                # oneDNN's CPU convolutions run faster channels-last; a convolution whose weight is channels-last
                # computes in that layout (the values and checkpoints are those of the standard layout).
                module.to(memory_format=th.channels_last)
    if "code_major" in paths and hasattr(policy, "latent"):
        linear = cpu_kernels.linear if "onednn_linear" in paths else F.linear
        policy.latent = CodeMajorLatent(policy.latent.quantizer, policy.latent.latent_dim, linear)
    return paths
