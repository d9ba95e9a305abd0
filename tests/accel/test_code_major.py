"""DC-MPC's code-major latent (sb3_worldmodels.accel.code_major) against the plain code of dcmpc/latent.py."""

from __future__ import annotations

import pytest
import torch as th


@pytest.mark.parametrize("numel", [200_000, 200_001])
def test_gumbel_noise_has_the_gumbel_distribution(numel):
    from sb3_worldmodels.accel.code_major import gumbel_noise

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


def test_first_argmax_is_the_first_maximum_along_an_outer_dimension():
    from sb3_worldmodels.accel.code_major import first_argmax

    x = th.randint(0, 3, (64, 15, 40)).float()  # many ties
    assert th.equal(first_argmax(x, dim=1), x.transpose(1, 2).contiguous().argmax(dim=-1))
    x = th.randn(8, 300, 5)  # more than 255 candidates: wider index type
    x[:, 7] = x[:, 250] = 10.0
    assert th.equal(first_argmax(x, dim=1), th.full((8, 5), 7))
    x[0, :, 0] = float("nan")  # diverged logits still give a valid index
    assert 0 <= first_argmax(x, dim=1)[0, 0] < 300


def _policy(tiny_dcmpc_kwargs, accel, seed=1):
    from sb3_worldmodels import DCMPC

    th.manual_seed(seed)
    return DCMPC("MlpPolicy", "Pendulum-v1", device="cpu", accel=accel, **tiny_dcmpc_kwargs)


def test_code_major_latent_gives_the_values_and_gradients_of_the_paper_latent(tiny_dcmpc_kwargs):
    from sb3_worldmodels.accel.code_major import CodeMajorLatent
    from sb3_worldmodels.dcmpc.latent import PaperLatent

    policy = _policy(tiny_dcmpc_kwargs, "none").policy
    plain, fast = policy.latent, CodeMajorLatent(policy.quantizer, policy.latent_dim)
    assert type(plain) is PaperLatent
    slots, size, batch = policy.latent_dim, policy.quantizer.codebook_size, 32
    codes, action = policy.encode(th.randn(batch, 3) * 3).detach(), th.rand(batch, 1) * 2 - 1
    layer = policy.dynamics[-1]
    targets = th.randint(0, size, (batch, slots))
    gumbel = plain.gumbel_noise(plain.noise_shape(1, batch), "cpu")[0]  # (batch, slot, code)
    assert fast.noise_shape(1, batch) == (1, batch, size, slots)

    def run(latent, noise):
        policy.latent = latent  # as apply_fast_paths sets it
        policy.zero_grad()
        logits = policy.dynamics_logits(codes, action, latent.output_layer(layer))
        log_probs = latent.log_probs(logits)
        loss = latent.consistency_loss(log_probs, targets)
        sample = latent.sample(log_probs, noise)
        expected = latent.expected_code(logits)
        (loss.sum() + (sample * th.linspace(-1, 1, sample.shape[1])).sum() + expected.square().sum()).backward()
        grads = [p.grad.clone() for p in policy.dynamics.parameters()]
        return logits, loss, sample, expected, latent.most_likely_code(logits), grads

    reference, got = run(plain, gumbel), run(fast, gumbel.transpose(1, 2).contiguous())
    assert reference[0].shape == (batch, slots, size) and got[0].shape == (batch, size, slots)
    assert th.allclose(got[0], reference[0].transpose(1, 2), rtol=1e-5, atol=1e-6)
    for want, have in zip(reference[1:4], got[1:4], strict=True):
        assert th.allclose(have, want, rtol=1e-5, atol=1e-6)
    assert th.equal(got[4], reference[4])
    for want, have in zip(reference[5], got[5], strict=True):
        assert th.allclose(have, want, rtol=1e-4, atol=1e-6)
    # Planning: base-2 logits from the planning layer, the expectation in place, also far outside exp's range.
    with th.no_grad():
        policy.latent = fast
        base2 = policy.dynamics_logits(codes, action, fast.output_layer(layer, planning=True))
        assert th.allclose(fast.planning_expected_code(base2), reference[3], rtol=1e-5, atol=1e-6)
        wide = th.randn(8, slots, size) * 200
        want = plain.expected_code(wide)
        assert th.allclose(fast.planning_expected_code(wide.transpose(1, 2) * 1.4426950408889634), want, atol=1e-5)


def test_a_whole_update_and_planning_call_are_the_same_with_and_without_the_fast_paths(tiny_dcmpc_kwargs, monkeypatch):
    tiny_dcmpc_kwargs["learning_starts"] = 100
    plain, fast = _policy(tiny_dcmpc_kwargs, "none"), _policy(tiny_dcmpc_kwargs, "auto")
    fast.policy.load_state_dict(plain.policy.state_dict())
    plain.learn(60)  # fills the buffer with random actions; no update yet
    data = plain.replay_buffer.sample_sequences(16, plain.sequence_length)
    noise = plain.policy.latent.gumbel_noise(plain.policy.latent.noise_shape(plain.horizon - 1, 16), "cpu")
    monkeypatch.setattr(plain.policy.latent, "gumbel_noise", lambda shape, device: noise)
    monkeypatch.setattr(fast.policy.latent, "gumbel_noise", lambda shape, device: noise.transpose(2, 3).contiguous())
    plain.max_grad_norm = fast.max_grad_norm = 1e9
    stats = [model._update_world_model(data) for model in (plain, fast)]
    assert th.allclose(stats[0]["world_model/loss"], stats[1]["world_model/loss"], rtol=1e-5)
    for a, b in zip(plain.policy.parameters(), fast.policy.parameters(), strict=True):
        assert th.allclose(a, b, rtol=1e-4, atol=1e-6)  # one AdamW step from the same gradients
    obs = th.randn(3, 3)
    actions = [model.policy.plan(obs, deterministic=True).action for model in (plain, fast)]
    assert th.allclose(actions[0], actions[1], atol=1e-4)
