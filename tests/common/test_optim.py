"""Fused optimizers and Polyak averaging against PyTorch and SB3."""

from __future__ import annotations

import pytest
import torch as th

from sb3_worldmodels.common.networks import mlp


def test_make_optimizer_uses_the_fused_kernel_and_computes_the_same_update():
    from sb3_worldmodels.common.optim import make_optimizer

    th.manual_seed(0)
    nets = [mlp(4, [8], 2), mlp(4, [8], 2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = make_optimizer(th.optim.AdamW, nets[0].parameters(), 1e-2, weight_decay=0.01)
    loop = th.optim.AdamW(nets[1].parameters(), lr=1e-2, weight_decay=0.01, foreach=False)
    assert fused.defaults["fused"] is True
    x = th.randn(16, 4)
    for _ in range(3):
        for net, opt in zip(nets, (fused, loop), strict=True):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert th.allclose(a, b, rtol=1e-5, atol=1e-6)
    # A caller's explicit choice is kept, and optimizers without a fused option are built as asked.
    assert not make_optimizer(th.optim.Adam, nets[0].parameters(), 1e-3, foreach=False).defaults.get("fused")
    assert isinstance(make_optimizer(th.optim.SGD, nets[0].parameters(), 1e-3), th.optim.SGD)


def test_fused_polyak_update_matches_sb3():
    from stable_baselines3.common.utils import polyak_update as sb3_polyak_update

    from sb3_worldmodels.common.optim import polyak_update

    th.manual_seed(0)
    online, fused, reference = mlp(5, [7, 7], 3), mlp(5, [7, 7], 3), mlp(5, [7, 7], 3)
    reference.load_state_dict(fused.state_dict())
    before = [p.clone() for p in fused.parameters()]
    for _ in range(3):
        polyak_update(online.parameters(), fused.parameters(), 0.3)
        sb3_polyak_update(online.parameters(), reference.parameters(), 0.3)
    for a, b in zip(fused.parameters(), reference.parameters(), strict=True):
        assert th.allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not all(th.allclose(a, old) for a, old in zip(fused.parameters(), before, strict=True))
    # By hand for one step: 0.3 * online + 0.7 * target.
    target = mlp(5, [7, 7], 3)
    expected = [0.3 * p + 0.7 * q for p, q in zip(online.parameters(), target.parameters(), strict=True)]
    polyak_update(online.parameters(), target.parameters(), 0.3)
    for a, b in zip(target.parameters(), expected, strict=True):
        assert th.allclose(a, b, atol=1e-7)
    with pytest.raises(ValueError, match="target parameters"):
        polyak_update(online.parameters(), list(target.parameters())[:-1], 0.3)
