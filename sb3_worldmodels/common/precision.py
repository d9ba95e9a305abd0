"""Mixed precision (``torch.autocast``) for planning, acting and updates, shared by the algorithms.

``mixed_precision=None`` (the default) computes in float32. ``"bf16"`` runs matrix products and convolutions
in bfloat16 on CPU or CUDA; ``"fp16"`` in float16 (meant for CUDA), with a gradient scaler per optimizer so
that small gradients do not underflow. Network heads return float32, so losses, returns, distributions and the
planner's statistics stay in float32 either way.

Whether it is faster depends on the hardware: CPUs without native bfloat16 instructions (e.g. AVX2-only) run
bfloat16 matrix products far slower than float32; a Zen 4 with AVX512-BF16 runs them 2.2-2.8x faster than MKL's
float32 (about 2x oneDNN's), and the algorithms' hot calls 1.4-1.9x faster (BENCHMARKS.md, "Mixed precision on a
CPU with bfloat16 instructions").
"""

from __future__ import annotations

import contextlib

import torch as th

DTYPES = {"bf16": th.bfloat16, "fp16": th.float16}


def check_mixed_precision(value: str | None) -> str | None:
    """Validate a ``mixed_precision`` argument; ``"fp32"`` is the same as ``None``."""
    if value is None or value == "fp32":
        return None
    if value not in DTYPES:
        raise ValueError(f"mixed_precision must be None (float32), 'bf16' or 'fp16'; got {value!r}")
    return value


def autocast(device: th.device | str, mixed_precision: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in the chosen precision, or a no-op for float32."""
    if mixed_precision is None:
        return contextlib.nullcontext()
    return th.autocast(device_type=th.device(device).type, dtype=DTYPES[mixed_precision])


def no_autocast(device: th.device | str) -> contextlib.AbstractContextManager:
    """Autocast off: backward passes run in the precision autocast chose for each op of the forward pass."""
    return th.autocast(device_type=th.device(device).type, enabled=False)
