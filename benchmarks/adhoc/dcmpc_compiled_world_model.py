"""The DC-MPC world-model step at the paper sizes, eager against torch.compile (forward and backward), alternately.

    python benchmarks/adhoc/dcmpc_compiled_world_model.py

"Per-call times at the paper's sizes" in BENCHMARKS.md. A copy of the loss of DCMPC._update_world_model.
"""

import sys
import time

import torch as th
import torch.nn.functional as F

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
from dcmpc_speed import ready_for_updates

from sb3_worldmodels.dcmpc.dcmpc import gumbel_noise

th.set_num_threads(2)
m = ready_for_updates("paper")
policy, H, rho = m.policy, m.horizon, m.rho
K = policy.quantizer.codebook_size
B = m.batch_size
print("batch", B, "H", H, "latent", policy.latent_dim, "K", K, flush=True)


def loss_fn(obs, actions, rewards, terminations, gumbel):
    Bn = actions.shape[0]
    codes = policy.encode(obs[:, 0])
    with th.no_grad():
        target_idx = policy.code_indices(policy.encode(obs[:, 1 : H + 1].flatten(0, 1))).view(Bn, H, policy.latent_dim)
        alive = th.cumprod(1.0 - terminations[:, :H], dim=1)
        alive = th.cat([th.ones_like(alive[:, :1]), alive[:, :-1]], dim=1)
    cons = rew = 0.0
    for t in range(H):
        a = actions[:, t]
        lp = F.log_softmax(policy.dynamics_logits(codes, a), dim=-1)
        ce = -lp.gather(-1, target_idx[:, t].unsqueeze(-1)).squeeze(-1).mean(dim=1)
        re = (policy.predict_reward(codes, a) - rewards[:, t]) ** 2
        cons = cons + rho**t * (alive[:, t] * ce).mean()
        rew = rew + rho**t * (alive[:, t] * re).mean()
        if t < H - 1:
            p = lp + gumbel[t]
            soft = th.softmax(p, -1)
            hard = F.one_hot(p.argmax(-1), K).to(soft.dtype)
            codes = policy.codes_from_probs(hard + soft - soft.detach())
    return cons / H + rew / H


opt = policy.world_model_optimizer


def step(fn):
    d = m.replay_buffer.sample_sequences(B, m.sequence_length)
    g = gumbel_noise((H - 1, B, policy.latent_dim, K), "cpu")
    loss = fn(d.observations, d.actions, d.rewards, d.terminations, g)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench(name, fn, n=5):
    t = time.perf_counter()
    step(fn)
    print(name, "first call", f"{time.perf_counter() - t:.1f} s", flush=True)
    step(fn)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        step(fn)
        ts.append(time.perf_counter() - t)
    ts.sort()
    print(name, f"median {ts[n // 2] * 1000:.0f} ms", [round(x * 1000) for x in ts], flush=True)


def full():
    t = time.perf_counter()
    m.train(gradient_steps=2, batch_size=B)
    return (time.perf_counter() - t) / 2


full()
print("full update (per update, 2 updates):", [round(full() * 1000) for _ in range(3)], flush=True)
bench("eager", loss_fn)
comp = th.compile(loss_fn, dynamic=False)
bench("compiled", comp)
bench("eager", loss_fn)
bench("compiled", comp)
