"""Network building blocks: MLPs and ensembles."""

from __future__ import annotations

import torch as th

from sb3_worldmodels.common.networks import EnsembleLinear, ensemble_mlp, mlp


# ------------------------------------------------------------------------------------ ensembles
def test_ensemble_mlp_equals_separate_mlps():
    th.manual_seed(0)
    n, batch = 5, 7
    ensemble = ensemble_mlp(n, 4, [8, 8], 1)
    x = th.randn(batch, 4)
    out = ensemble(x)
    assert out.shape == (n, batch, 1)
    for i in range(n):
        single = mlp(4, [8, 8], 1)
        linear_idx = [0, 3, 6]
        for layer_idx in linear_idx:
            single[layer_idx].weight.data = ensemble[layer_idx].weight.data[i].T
            single[layer_idx].bias.data = ensemble[layer_idx].bias.data[i, 0]
        for norm_idx in [1, 4]:
            single[norm_idx].weight.data = ensemble[norm_idx].weight.data[i, 0]
            single[norm_idx].bias.data = ensemble[norm_idx].bias.data[i, 0]
        assert th.allclose(single(x), out[i], rtol=1e-5, atol=1e-6)


def test_ensemble_linear_members_are_independent():
    layer = EnsembleLinear(3, 2, 2)
    x = th.randn(3, 4, 2, requires_grad=True)
    layer(x)[1].sum().backward()
    assert layer.weight.grad[0].abs().sum() == 0 and layer.weight.grad[2].abs().sum() == 0
    assert layer.weight.grad[1].abs().sum() > 0
