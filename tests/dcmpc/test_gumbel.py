"""The Gumbel noise of the straight-through sample."""

from __future__ import annotations

import pytest
import torch as th


@pytest.mark.parametrize("numel", [200_000, 200_001])
def test_gumbel_noise_has_the_gumbel_distribution(numel):
    from sb3_worldmodels.dcmpc.dcmpc import gumbel_noise

    th.manual_seed(0)
    buffer = th.empty(numel, dtype=th.int64)  # larger than needed: its first ceil(numel / 2) words are used
    g = gumbel_noise((numel,), "cpu", buffer)
    assert g.shape == (numel,) and g.dtype == th.float32 and g.data_ptr() == buffer.data_ptr()
    assert th.isfinite(g).all()
    # Standard Gumbel: mean = Euler-Mascheroni constant, variance = pi^2 / 6, P(g <= 0) = exp(-1).
    assert abs(g.mean().item() - 0.5772) < 0.01
    assert abs(g.var().item() - 3.14159**2 / 6) < 0.02
    assert abs((g <= 0).float().mean().item() - 0.3679) < 0.005
    # The two uniforms drawn from one 64-bit word are independent: no correlation between neighbours.
    pairs = g[: numel // 2 * 2].view(-1, 2).double()
    assert abs(th.corrcoef(pairs.t())[0, 1].item()) < 0.01
    # U takes 2^23 levels in [0, 1): its largest value, 1 - 2^-23, gives the largest noise, -log(-log(U)) = 15.94.
    assert g.max().item() <= 15.95
    # Seeded by the global generator, like torch.rand; without a buffer it allocates its own.
    th.manual_seed(0)
    assert th.equal(gumbel_noise((numel,), "cpu"), g.clone())
    assert not th.equal(gumbel_noise((numel,), "cpu"), g)
