"""n-step targets against hand-computed cases."""

from __future__ import annotations

import pytest
import torch as th

from sb3_worldmodels.common.returns import n_step_targets


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
