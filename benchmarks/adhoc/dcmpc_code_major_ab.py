"""Code-major dynamics logits against the slot-major ones, alternately in one process (paper sizes, 2 threads).

    python benchmarks/adhoc/dcmpc_code_major_ab.py [--rounds 6] [--malloc keep-freed|default]

"slot-major" is the computation before the change: logits ``(batch, slot, code)`` straight from the stored output
layer, softmax / log-softmax / argmax over the innermost 15 codes, one-hot straight-through sample. "code-major" is
the current one (``DCMPCPolicy.dynamics_head_by_code``). Both run on the same model and batch, A and B alternately in each
round, so that the machine's drift affects both alike. Reported per round: median of 3 calls of each.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch as th
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parents[1]))
from dcmpc_speed import ab_setup  # noqa: E402

from sb3_worldmodels.dcmpc.dcmpc import _flatten_time, _select_time, gumbel_noise  # noqa: E402


def slot_major_world_model_step(model, data) -> None:
    """The world-model update as it was before the change (same losses; slot-major logits)."""
    policy, H = model.policy, model.horizon
    batch, slots, size = data.actions.shape[0], policy.latent_dim, policy.quantizer.codebook_size
    codes = policy.encode(_select_time(data.observations, 0))
    with th.no_grad():
        next_obs = _flatten_time(_select_time(data.observations, slice(1, H + 1)))
        target_idx = policy.code_indices(policy.encode(next_obs)).view(batch, H, slots)
        alive = th.cumprod(1.0 - data.terminations[:, :H], dim=1)
        alive = th.cat([th.ones_like(alive[:, :1]), alive[:, :-1]], dim=1)
        gumbel = gumbel_noise((H - 1, batch, slots, size), model.device)
    consistency = reward_loss = th.zeros(())
    for t in range(H):
        action = data.actions[:, t]
        logits = policy.dynamics(th.cat([codes, action], dim=-1)).view(batch, slots, size)
        log_probs = F.log_softmax(logits, dim=-1)
        ce = -log_probs.gather(-1, target_idx[:, t].unsqueeze(-1)).squeeze(-1).mean(dim=1)
        error = (policy.predict_reward(codes, action) - data.rewards[:, t]) ** 2
        consistency = consistency + model.rho**t * (alive[:, t] * ce).mean()
        reward_loss = reward_loss + model.rho**t * (alive[:, t] * error).mean()
        if t < H - 1:
            perturbed = log_probs + gumbel[t]
            soft = th.softmax(perturbed, dim=-1)
            hard = F.one_hot(perturbed.argmax(dim=-1), size).to(soft.dtype)
            codes = ((hard + soft - soft.detach()) @ policy.quantizer.codebook).flatten(1)
    loss = (model.consistency_coef * consistency + model.reward_coef * reward_loss) / H
    model._clip_and_step(policy.world_model_optimizer, loss, model.max_grad_norm)


def main() -> None:
    args, model = ab_setup(__doc__, default_rounds=6)
    policy = model.policy
    data = model.replay_buffer.sample_sequences(model.batch_size, model.sequence_length)
    obs = th.as_tensor(np.random.randn(1, 24).astype(np.float32))

    def slot_major_imagine(latent, action):
        logits = policy.dynamics(th.cat([latent, action], dim=-1)).view(latent.shape[0], policy.latent_dim, -1)
        return (th.softmax(logits, dim=-1) @ policy.quantizer.codebook).flatten(1), policy.predict_reward(latent, action)

    def plan(slot_major: bool):
        if slot_major:
            policy.imagine_step = slot_major_imagine
        try:
            policy.plan(obs, exploration_std=0.1)
        finally:
            vars(policy).pop("imagine_step", None)

    calls = {
        ("world-model step", "slot-major"): lambda: slot_major_world_model_step(model, data),
        ("world-model step", "code-major"): lambda: model._update_world_model(data),
        ("planning call", "slot-major"): lambda: plan(True),
        ("planning call", "code-major"): lambda: plan(False),
    }
    times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for fn in calls.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for key, fn in calls.items():
            one = []
            for _ in range(3):
                start = time.perf_counter()
                fn()
                one.append(time.perf_counter() - start)
            times[key].append(statistics.median(one) * 1e3)
    print(f"malloc={args.malloc} rounds={args.rounds} threads=2 torch={th.__version__}")
    print("| call | layout | per round (ms) | median (ms) |")
    print("| --- | --- | --- | --- |")
    for (call, layout), values in times.items():
        print(f"| {call} | {layout} | {', '.join(f'{v:.0f}' for v in values)} | {statistics.median(values):.1f} |")
    for call in ("world-model step", "planning call"):
        ratios = [c / s for c, s in zip(times[(call, "code-major")], times[(call, "slot-major")], strict=True)]
        per_round = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"{call}: code-major / slot-major per round {per_round}; median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
