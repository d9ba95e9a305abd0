"""DC-MPC components against hand-computed cases: FSQ, n-step targets, ensembles, MPPI."""

from __future__ import annotations

import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from sb3_worldmodels.common import allocator
from sb3_worldmodels.common.networks import EnsembleLinear, ensemble_mlp, mlp
from sb3_worldmodels.common.returns import n_step_targets
from sb3_worldmodels.dcmpc.fsq import FSQ
from sb3_worldmodels.dcmpc.planner import MPPIPlanner


# ------------------------------------------------------------------------------------------- FSQ
def test_fsq_codebook_has_15_ordered_codes():
    fsq = FSQ([5, 3])
    assert fsq.codebook_size == 15
    assert fsq.codebook.shape == (15, 2)
    assert set(fsq.codebook[:, 0].tolist()) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert set(fsq.codebook[:, 1].tolist()) == {-1.0, 0.0, 1.0}
    # index = level_index_0 * 1 + level_index_1 * 5
    assert fsq.codebook[0].tolist() == [-1.0, -1.0]
    assert fsq.codebook[1].tolist() == [-0.5, -1.0]
    assert fsq.codebook[5].tolist() == [-1.0, 0.0]
    assert fsq.codebook[14].tolist() == [1.0, 1.0]


def test_fsq_values_match_hand_computation():
    fsq = FSQ([5, 3])
    z = th.tensor([[0.0, 0.0], [0.3, 0.3], [0.6, 0.6], [5.0, 5.0], [-5.0, -0.6]])
    # Channel 0: tanh(z) * 2.002 rounded, / 2.  Channel 1: tanh(z) * 1.001 rounded, / 1.
    # tanh(0.3) = 0.2913 -> 0.583 -> 1 -> 0.5 ; 0.2916 -> 0
    # tanh(0.6) = 0.5370 -> 1.075 -> 1 -> 0.5 ; 0.5375 -> 1
    expected = th.tensor([[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    assert th.equal(fsq(z), expected)
    assert fsq.codes_to_indices(expected).tolist() == [7, 8, 13, 14, 0]


def test_fsq_indices_round_trip():
    fsq = FSQ([5, 3])
    idx = th.arange(15)
    assert th.equal(fsq.codes_to_indices(fsq.indices_to_codes(idx)), idx)
    z = th.randn(100, 7, 2) * 3
    codes = fsq(z)
    assert th.equal(fsq.indices_to_codes(fsq.codes_to_indices(codes)), codes)


def test_fsq_even_levels_use_an_offset():
    fsq = FSQ([4])
    codes = fsq(th.linspace(-6, 6, 101).unsqueeze(-1))
    assert set(codes.squeeze(-1).tolist()) == {-1.0, -0.5, 0.0, 0.5}


def test_fsq_gradient_is_straight_through_the_rounding():
    fsq = FSQ([5, 3])
    z = th.tensor([[0.3, -0.2]], requires_grad=True)
    fsq(z).sum().backward()
    # d/dz [tanh(z) * half / (L // 2)] = (1 - tanh^2 z) * half / (L // 2): rounding contributes identity.
    half = th.tensor([2.002, 1.001])
    expected = (1 - th.tanh(z.detach()) ** 2) * half / th.tensor([2.0, 1.0])
    assert th.allclose(z.grad, expected)


# -------------------------------------------------------------------------------------- returns
def test_n_step_targets_hand_computed():
    gamma = 0.5
    rewards = th.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    terminations = th.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    bootstrap = th.tensor([8.0, 8.0, 8.0])
    targets = n_step_targets(rewards, terminations, bootstrap, gamma)
    # 1 + .5*2 + .25*4 + .125*8 = 4 ; terminated at step 1: 1 + .5*2 = 2 ; terminated at step 2: 1 + 1 + 1 = 3
    assert targets.tolist() == [4.0, 2.0, 3.0]


def test_one_step_target_is_discounted():
    # The official DC-MPC code leaves gamma out of its 1-step target; ours applies it.
    targets = n_step_targets(th.tensor([[1.0]]), th.tensor([[0.0]]), th.tensor([10.0]), 0.99)
    assert targets.item() == pytest.approx(1.0 + 0.99 * 10.0)


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


# ----------------------------------------------------------------------------------------- MPPI
class PointMass:
    """Toy latent model: x' = x + a, reward -|x' - goal|^2; the best plan walks to the goal."""

    def __init__(self, goal: th.Tensor, prior_action: th.Tensor | None = None):
        self.goal = goal
        self.prior_action = prior_action

    def imagine_step(self, latent, action):
        nxt = latent + action
        return nxt, -((nxt - self.goal) ** 2).sum(-1)

    def policy_prior(self, latent):
        if self.prior_action is None:
            return th.zeros_like(latent)
        return self.prior_action.expand_as(latent)

    def terminal_value(self, latent, generator, action_noise=None):
        return -((latent - self.goal) ** 2).sum(-1)


def test_mppi_finds_the_optimum_of_a_toy_problem():
    th.manual_seed(0)
    goal = th.tensor([0.7, -0.4])
    planner = MPPIPlanner(action_dim=2, horizon=3, iterations=6, num_samples=512, num_elites=64, num_policy_trajs=24)
    start = th.zeros(1, 2)
    result = planner.plan(PointMass(goal), start, planner.warm_start(None, None, 1, start.device))
    # Reaching the goal in the first step and staying there is optimal: a_0 = goal, a_1 = a_2 = 0.
    assert th.allclose(result.mean[0, 0], goal, atol=0.05)
    assert th.allclose(result.mean[0, 1:], th.zeros(2, 2), atol=0.1)
    assert th.allclose(result.action[0], goal, atol=0.15)
    assert th.all(result.std <= 2.0) and th.all(result.std >= 0.05)


def test_mppi_plans_every_state_of_a_batch_independently():
    th.manual_seed(0)
    goal = th.tensor([0.5])
    planner = MPPIPlanner(action_dim=1, num_samples=256, num_elites=32, num_policy_trajs=8)
    start = th.tensor([[0.0], [0.3], [-0.3]])
    result = planner.plan(PointMass(goal), start, planner.warm_start(None, None, 3, start.device))
    assert th.allclose(result.mean[:, 0, 0], goal - start[:, 0], atol=0.05)


def test_mppi_uses_the_policy_prior():
    th.manual_seed(0)
    goal = th.tensor([0.9])
    planner = MPPIPlanner(action_dim=1, horizon=1, iterations=1, num_samples=16, num_elites=1, num_policy_trajs=1, max_std=0.1)
    start = th.zeros(1, 1)
    # The Gaussian samples stay near 0 (std 0.1): only the prior's trajectory reaches the goal.
    result = planner.plan(PointMass(goal, prior_action=goal), start, planner.warm_start(None, None, 1, start.device))
    assert th.allclose(result.action, goal.view(1, 1))


def test_mppi_warm_start_shifts_and_resets():
    planner = MPPIPlanner(action_dim=1, horizon=3)
    previous = th.tensor([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    mean = planner.warm_start(previous, th.tensor([False, True]), 2, previous.device)
    assert mean[:, :, 0].tolist() == [[2.0, 3.0, 0.0], [0.0, 0.0, 0.0]]


def test_mppi_is_repeatable_with_a_seeded_generator():
    goal = th.tensor([0.2, 0.1])
    planner = MPPIPlanner(action_dim=2, num_samples=64, num_elites=8, num_policy_trajs=4)
    start = th.zeros(2, 2)
    mean = planner.warm_start(None, None, 2, start.device)
    a = planner.plan(PointMass(goal), start, mean, generator=th.Generator().manual_seed(3))
    b = planner.plan(PointMass(goal), start, mean, generator=th.Generator().manual_seed(3))
    assert th.equal(a.action, b.action) and th.equal(a.mean, b.mean)


def test_mppi_with_a_generator_plans_a_state_as_if_it_were_alone():
    goal = th.tensor([0.4])
    planner = MPPIPlanner(action_dim=1, num_samples=64, num_elites=8, num_policy_trajs=4)
    batch = th.tensor([[0.1], [-0.5], [0.9]])
    together = planner.plan(
        PointMass(goal), batch, planner.warm_start(None, None, 3, batch.device), generator=th.Generator().manual_seed(5)
    )
    for i in range(3):
        alone = planner.plan(
            PointMass(goal),
            batch[i : i + 1],
            planner.warm_start(None, None, 1, batch.device),
            generator=th.Generator().manual_seed(5),
        )
        assert th.allclose(alone.action, together.action[i : i + 1], atol=1e-6)
        assert th.allclose(alone.mean, together.mean[i : i + 1], atol=1e-6)
    # The actions are inside the bounds but not saturated, so the comparison above is not trivially true.
    assert (together.action.abs() < 0.99).all()


def test_mppi_draws_the_acting_elite_by_its_score():
    # The prior's action (1.0) earns 2 ln 3, the Gaussian samples around -0.5 earn 0. With 4 elites and temperature
    # 0.5 the prior's score is 3 / (3 + 1 + 1 + 1) = 0.5: the acting elite is the prior's half of the time.
    class Bandit:
        def imagine_step(self, latent, action):
            return latent, 2 * math.log(3) * (action[:, 0] > 0.9).float()

        def policy_prior(self, latent):
            return th.ones(latent.shape[0], 1)

        def terminal_value(self, latent, generator, action_noise=None):
            return th.zeros(latent.shape[0])

    th.manual_seed(0)
    planner = MPPIPlanner(action_dim=1, horizon=1, iterations=1, num_samples=8, num_elites=4, num_policy_trajs=1, max_std=0.01)
    actions = th.cat([planner.plan(Bandit(), th.zeros(1, 1), th.full((1, 1, 1), -0.5)).action for _ in range(1000)])
    frequency = (actions == 1.0).float().mean().item()
    assert abs(frequency - 0.5) < 0.05, frequency


# ------------------------------------------------------------------------------------------ Mish
def test_fast_mish_matches_torch_mish_values_and_gradients():
    from sb3_worldmodels.common.networks import Mish

    x = th.linspace(-30, 30, 2001, dtype=th.float64).requires_grad_()
    fast = Mish()(x)
    reference = th.nn.functional.mish(x)
    assert th.allclose(fast, reference, rtol=1e-10, atol=1e-12)
    (grad_fast,) = th.autograd.grad(fast.sum(), x)
    (grad_ref,) = th.autograd.grad(reference.sum(), x)
    assert th.allclose(grad_fast, grad_ref, rtol=1e-8, atol=1e-10)
    with th.no_grad():
        y = th.randn(1000) * 10
        assert th.allclose(Mish()(y), th.nn.functional.mish(y), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ oneDNN linear
def _relative_error(a: th.Tensor, b: th.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("shape", [(37, 48), (3, 11, 48)])
def test_onednn_linear_matches_f_linear_values_and_gradients(shape, monkeypatch):
    from sb3_worldmodels.common import networks

    monkeypatch.setattr(networks, "ONEDNN_MIN_MACS", 1)  # these small products through oneDNN too
    gen = th.Generator().manual_seed(sum(shape))
    x = th.randn(shape, generator=gen, requires_grad=True)
    weight = th.randn(70, 48, generator=gen, requires_grad=True)
    bias = th.randn(70, generator=gen, requires_grad=True)
    grad_out = th.randn(*shape[:-1], 70, generator=gen)
    out = networks.linear(x, weight, bias)
    reference = th.nn.functional.linear(x, weight, bias)
    assert out.shape == reference.shape
    assert _relative_error(out, reference) < 1e-5
    grads = th.autograd.grad(out, (x, weight, bias), grad_out)
    reference_grads = th.autograd.grad(reference, (x, weight, bias), grad_out)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        assert grad.shape == reference_grad.shape
        assert _relative_error(grad, reference_grad) < 1e-5
    with th.no_grad():  # the path without autograd, and without a bias
        assert _relative_error(networks.linear(x, weight), th.nn.functional.linear(x, weight)) < 1e-5


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_convolutions_on_their_own_cpu_path_match_pytorch(transposed, channels_last):
    from sb3_worldmodels.common import networks

    gen = th.Generator().manual_seed(2 * transposed + channels_last)
    if transposed:  # stride 2, output padding, as the decoder's layers (which have none)
        layer = networks.ConvTranspose2d(5, 7, 6, stride=2, padding=1, output_padding=1)
        reference = th.nn.ConvTranspose2d(5, 7, 6, stride=2, padding=1, output_padding=1)
    else:
        layer = networks.Conv2d(5, 7, 4, stride=2, padding=1, dilation=2)
        reference = th.nn.Conv2d(5, 7, 4, stride=2, padding=1, dilation=2)
    reference.load_state_dict(layer.state_dict())  # the same parameters and state dict as PyTorch's modules
    memory_format = th.channels_last if channels_last else th.contiguous_format
    layer.to(memory_format=memory_format)
    x = th.randn(3, 5, 13, 11, generator=gen).to(memory_format=memory_format).requires_grad_()
    out, expected = layer(x), reference(x)
    assert out.grad_fn.name() == "_ConvolutionFunctionBackward"  # float32 on a CPU with gradients: the new path
    assert out.shape == expected.shape and _relative_error(out, expected) < 1e-5
    grad_out = th.randn(out.shape, generator=gen)
    grads = th.autograd.grad(out, (x, layer.weight, layer.bias), grad_out)
    expected_grads = th.autograd.grad(expected, (x, reference.weight, reference.bias), grad_out)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert grad.shape == expected_grad.shape and _relative_error(grad, expected_grad) < 1e-5
    # Only the weight's gradient (the input needs none, as the encoder's images): the same values.
    (weight_grad,) = th.autograd.grad(layer(x.detach()), layer.weight, grad_out)
    assert _relative_error(weight_grad, expected_grads[1]) < 1e-5
    # Without gradients, under autocast and with output_size: PyTorch's own path.
    with th.no_grad():
        assert layer(x).grad_fn is None and _relative_error(layer(x), expected) < 1e-5
    with th.autocast("cpu", dtype=th.bfloat16):
        assert layer(x).dtype == th.bfloat16
    if transposed:
        sized = layer(x, output_size=list(expected.shape[-2:]))
        assert sized.grad_fn.name() != "_ConvolutionFunctionBackward" and _relative_error(sized, expected) < 1e-5


@pytest.mark.parametrize(
    "channels, kernel, stride, channels_last",
    [(3, 6, 2, True), (3, 6, 2, False), (2, 4, 2, True), (4, (6, 3), (2, 3), False), (1, 3, 1, True)],
)
def test_sub_pixel_transposed_convolutions_match_pytorch(channels, kernel, stride, channels_last):
    from sb3_worldmodels.common import networks

    gen = th.Generator().manual_seed(channels)
    layer = networks.ConvTranspose2d(6, channels, kernel, stride=stride)
    assert networks._sub_pixel_applies(layer.weight, (layer.stride, layer.padding, layer.dilation, True, (0, 0), 1))
    reference = th.nn.ConvTranspose2d(6, channels, kernel, stride=stride)
    reference.load_state_dict(layer.state_dict())
    memory_format = th.channels_last if channels_last else th.contiguous_format
    layer.to(memory_format=memory_format)
    x = th.randn(4, 6, 9, 7, generator=gen).to(memory_format=memory_format).requires_grad_()
    out, expected = layer(x), reference(x)
    assert out.shape == expected.shape and _relative_error(out, expected) < 1e-5
    grad_out = th.randn(out.shape, generator=gen)
    grads = th.autograd.grad(out, (x, layer.weight, layer.bias), grad_out)
    expected_grads = th.autograd.grad(expected, (x, reference.weight, reference.bias), grad_out)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert _relative_error(grad, expected_grad) < 1e-5
    with th.no_grad():
        assert _relative_error(layer(x), expected) < 1e-5
    # Not for more output channels, padding or output padding: the transposed convolution itself.
    for options in [(layer.stride, (0, 0), (1, 1), True, (0, 0), 1), (layer.stride, (1, 0), (1, 1), True, (0, 0), 1)]:
        wide = th.empty(6, networks.SUB_PIXEL_MAX_CHANNELS + 1, 4, 4)
        assert not networks._sub_pixel_applies(wide, options)
        assert networks._sub_pixel_applies(layer.weight, options) == (options[1] == (0, 0))


def test_onednn_linear_is_used_for_large_float32_products_on_x86_cpus_and_f_linear_otherwise(monkeypatch):
    import platform

    from sb3_worldmodels.common import networks

    calls = []
    original = networks._onednn_linear
    monkeypatch.setattr(networks, "_onednn_linear", lambda *a: calls.append(a[0].shape) or original(*a))
    layer = networks.Linear(256, 256)
    x = th.randn(256, 256)  # 2**24 multiply-adds: ONEDNN_MIN_MACS
    layer(x)
    x86 = platform.machine().lower() in ("x86_64", "amd64") and th.backends.mkldnn.is_available()
    assert calls == ([x.shape] if x86 else [])
    calls.clear()
    layer(x[:255])  # one row fewer: below the threshold
    with th.autocast("cpu", dtype=th.bfloat16):  # autocast's own products (bf16 through oneDNN already)
        assert layer(x).dtype == th.bfloat16
    assert networks.Linear(256, 256, dtype=th.float64)(x.double()).dtype == th.float64
    monkeypatch.setattr(networks, "ONEDNN_MIN_MACS", 1)
    assert layer(th.randn(0, 256)).shape == (0, 256)
    assert calls == []
    monkeypatch.setattr(networks, "ONEDNN_LINEAR", False)
    layer(x)
    assert calls == []


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


# -------------------------------------------------------------------------------------- wrappers
def test_action_repeat_sums_rewards_and_stops_at_the_episode_end():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from sb3_worldmodels.common.wrappers import ActionRepeat

    class Counter(gym.Env):
        observation_space = gym.spaces.Box(0, 100, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.array([0.0], np.float32), {}

        def step(self, action):
            self.t += 1
            return np.array([self.t], np.float32), float(self.t), self.t == 5, False, {"t": self.t}

    env = ActionRepeat(Counter(), repeat=2)
    env.reset()
    obs, reward, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert obs[0] == 2 and reward == 1 + 2 and not terminated and info["t"] == 2
    env.step(np.zeros(1, np.float32))
    obs, reward, terminated, _, _ = env.step(np.zeros(1, np.float32))
    assert obs[0] == 5 and reward == 5 and terminated  # stopped after one of its two steps
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        ActionRepeat(Counter(), repeat=0)
    check_env(ActionRepeat(Counter(), repeat=3), skip_render_check=True)


def test_pixel_dm_control_env_renders_uint8_frames_once_per_agent_step():
    from gymnasium.utils.env_checker import check_env

    from sb3_worldmodels.common.wrappers import ActionRepeat, make_pixel_dm_control

    env = make_pixel_dm_control("dm_control/cartpole-swingup-v0", size=32, action_repeat=2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert isinstance(env.env, ActionRepeat)  # the renderer sits outside the repetition
    _, reward, _, _, _ = env.step(env.action_space.sample())
    assert 0.0 <= reward <= 2.0  # two DMC rewards in [0, 1]
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize(
    "env_id", ["sb3_worldmodels/dmc-cartpole-swingup-pixels-v0", "sb3_worldmodels/dmc-walker-walk-pixels-v0"]
)
def test_registered_pixel_ids_pass_the_env_checkers(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    import sb3_worldmodels  # noqa: F401 - registers the ids
    from sb3_worldmodels.common.wrappers import ActionRepeat

    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.render().shape == (64, 64, 3)
    wrapper = env
    while not isinstance(wrapper, ActionRepeat):
        wrapper = wrapper.env
    assert wrapper.repeat == 2
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    with pytest.raises(ValueError, match="rgb_array frames only"):
        gym.make(env_id, render_mode="human")


# ------------------------------------------------------------------------------------------- allocator
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_keep_freed_memory_lets_fresh_large_tensors_reuse_pages():
    # In a fresh process (the setting is process-wide): count the page faults of writing new 40 MB tensors (above
    # the 32 MiB up to which glibc's own threshold adapts), each freed while a small allocation made after it is
    # kept, before and after keep_freed_memory().
    code = """
import resource, torch as th
from sb3_worldmodels import keep_freed_memory
def faults():
    kept, start = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        big = th.empty(10_000_000)
        big.fill_(1.0)
        kept.append(th.empty(1000))
        del big
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
faults()
before = faults()
assert keep_freed_memory() and keep_freed_memory()  # idempotent
faults()
print(before, faults())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    before, after = map(int, out.stdout.split())
    pages = 20 * 40_000_000 // 4096
    assert before > pages // 2, (before, after)  # glibc's defaults: the pages of every new tensor fault in
    # Now nearly all reuse pages (a few faults remain where small tensors split a freed block and the heap grows).
    assert after < pages // 4, (before, after)


def _available_memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) / 2**20
    except (OSError, StopIteration):
        return 0.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
@pytest.mark.skipif(_available_memory_gib() < 8, reason="writes 2.25 GiB")
@pytest.mark.parametrize("trim_threshold", ["never", "2 GiB"])
def test_keep_freed_memory_keeps_more_than_2_gib_freed_at_the_heap_top(trim_threshold):
    # A Dreamer update at the paper's pixel sizes frees more than 2 GiB at the top of the heap. With the largest
    # positive trim threshold, 2 GiB (an earlier keep_freed_memory setting, the "2 GiB" case here), glibc
    # handed it back to the kernel and the next update faulted it in again. In a fresh process: three 768 MiB blocks
    # (each under the 1 GiB mmap threshold, so on the heap) written, freed, written again.
    # The blocks come from malloc itself, not from tensors: PyTorch asks for 64-byte-aligned memory, and glibc 2.36 pads
    # such a request beyond the freed block's size, so whether a tensor lands on the freed space depends on what else
    # sits beside it (one CI run saw two of three tensors on new pages with nothing handed back). Plain malloc puts
    # the blocks back where they were, so the page faults of the second write show what was handed back.
    code = """
import ctypes, importlib.util, resource, sys
spec = importlib.util.spec_from_file_location("allocator", sys.argv[2])  # the module alone: no torch needed
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
assert allocator.keep_freed_memory()
if sys.argv[1] == "2 GiB":
    assert allocator.mallopt()(allocator.M_TRIM_THRESHOLD, 2**31 - 1)
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
size = 3 * 2**28
def resident_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) // 1024
def write_three():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(size) for _ in range(3)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start, resident_mib(), blocks
resident_mib()
first, with_blocks, blocks = write_three()
for block in blocks:
    libc.free(block)
freed = resident_mib()
second, _, again = write_three()
print(first, second, with_blocks - freed, int(again == blocks))
"""
    script = [sys.executable, "-c", code, trim_threshold, allocator.__file__]
    out = subprocess.run(script, capture_output=True, text=True, check=True, timeout=120)
    first, second, released_mib, same_places = map(int, out.stdout.split())
    assert same_places, out.stdout  # the second write is on the freed blocks' addresses
    # Faults count 4 KiB pages, or 2 MiB ones where transparent huge pages are always on: compared as ratios.
    if trim_threshold == "never":
        assert released_mib < 256, out.stdout  # the freed 2.25 GiB stayed in the process...
        assert second < first // 20, out.stdout  # ...and the second write found its pages there (measured: 0 faults)
    else:  # the old setting, to show the test tells them apart (measured: 2240 MiB back, 573,440 of 589,791 faults)
        assert released_mib > 2048, out.stdout
        assert second > first // 2, out.stdout
