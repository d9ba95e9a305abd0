"""One SB3 contract for both algorithms (after SB3's test_save_load / test_run / test_spaces / test_deterministic).

Every test runs for DCMPC and for Dreamer with tiny networks passed explicitly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import TINY_DCMPC, TINY_DREAMER, TINY_DREAMER_V3, ToyEnv
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from sb3_worldmodels import DCMPC, Dreamer
from sb3_worldmodels.dreamer_v3 import DreamerV3

ALGOS = [
    pytest.param(DCMPC, TINY_DCMPC, id="DCMPC"),
    pytest.param(Dreamer, TINY_DREAMER, id="Dreamer"),
    pytest.param(DreamerV3, TINY_DREAMER_V3, id="DreamerV3"),
]


def make(algo, tiny, env="Pendulum-v1", **extra):
    kwargs = {**tiny, "policy_kwargs": dict(tiny["policy_kwargs"]), **extra}
    return algo("MlpPolicy", env, seed=0, **kwargs)


OBS = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)


# ----------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_get_and_set_parameters(algo, tiny):
    model = make(algo, tiny)
    with th.no_grad():
        for p in model.policy.parameters():
            p.add_(0.1 * th.randn_like(p))
    expected, _ = model.predict(OBS, deterministic=True)
    params = model.get_parameters()
    assert "policy" in params and any(name.endswith("optimizer") for name in params)

    other = make(algo, tiny)
    assert not np.allclose(other.predict(OBS, deterministic=True)[0], expected)
    other.set_parameters(params, exact_match=True)
    np.testing.assert_array_equal(other.predict(OBS, deterministic=True)[0], expected)

    # A partial dict (the policy only) is accepted without exact_match.
    third = make(algo, tiny)
    third.set_parameters({"policy": params["policy"]}, exact_match=False)
    np.testing.assert_array_equal(third.predict(OBS, deterministic=True)[0], expected)

    with pytest.raises(ValueError, match="not_a_module is an invalid object name"):
        other.set_parameters({**params, "not_a_module": {}}, exact_match=True)
    with pytest.raises(ValueError, match="Names of parameters do not match"):
        other.set_parameters({"policy": params["policy"]}, exact_match=True)
    name = next(iter(params["policy"]))
    wrong_shape = {**params["policy"], name: th.zeros(7, 7, 7)}
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.set_parameters({"policy": wrong_shape}, exact_match=False)


# ------------------------------------------------------------------------------------ save/load
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_save_exclude_include_custom_objects_and_no_process_state(algo, tiny, tmp_path):
    model = make(algo, tiny)
    model.learn(tiny["learning_starts"] + 10)
    assert model._acting_state is not None
    model.save(tmp_path / "model", exclude=["tensorboard_log"], include=["_n_updates"])
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        data = json.loads(archive.read("data"))
        # Tensors live in the .pth state dicts only; nothing of the running process (acting state) is pickled.
        assert not {"_acting_state", "_episode_starts", "_acting_stats", "tensorboard_log"} & data.keys()
        assert "_n_updates" in data
        assert all(
            name.endswith(".pth") or name in ("data", "pytorch_variables.pth", "_stable_baselines3_version", "system_info.txt")
            for name in archive.namelist()
        )
    loaded = algo.load(tmp_path / "model", custom_objects={"gamma": 0.5})
    assert loaded.gamma == 0.5 and loaded._acting_state is None
    # gamma also discounts DC-MPC's plans (plan_discount=None), so the actions are compared without custom objects.
    loaded = algo.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(OBS, deterministic=True)[0], model.predict(OBS, deterministic=True)[0])


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_load_onto_cpu_and_set_env(algo, tiny, tmp_path):
    model = make(algo, tiny)
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model", device="cpu")
    assert loaded.device.type == "cpu" and all(p.device.type == "cpu" for p in loaded.policy.parameters())
    loaded.set_env(make_vec_env("Pendulum-v1", n_envs=1, seed=3))
    loaded.learn(20)
    # Another number of envs goes through load(path, env), as in SB3.
    two = algo.load(tmp_path / "model", env=make_vec_env("Pendulum-v1", n_envs=2, seed=3))
    two.learn(20)
    assert two.n_envs == 2 and two.replay_buffer.n_envs == 2
    with pytest.raises(ValueError, match="Observation spaces do not match"):
        loaded.set_env(gym.make("MountainCarContinuous-v0"))


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_bad_checkpoints_give_clear_errors(algo, tiny, tmp_path):
    model = make(algo, tiny)
    model.save(tmp_path / "model")
    raw = (tmp_path / "model.zip").read_bytes()
    (tmp_path / "truncated.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a complete SB3 checkpoint"):
        algo.load(tmp_path / "truncated.zip")
    other = DCMPC if algo is Dreamer else Dreamer
    other_tiny = TINY_DCMPC if algo is Dreamer else TINY_DREAMER
    make(other, other_tiny).save(tmp_path / "other")
    with pytest.raises(ValueError, match=rf"saved by another algorithm .*{other.__name__.lower()}\.policies"):
        algo.load(tmp_path / "other")
    with pytest.raises(ValueError, match="Observation spaces do not match"):
        algo.load(tmp_path / "model", env=gym.make("MountainCarContinuous-v0"))


# ----------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_same_seed_same_results(algo, tiny):
    buffers = []
    for _ in range(2):
        model = make(algo, tiny)
        model.learn(tiny["learning_starts"] + 60)
        size = model.replay_buffer.size()
        buffers.append((model.replay_buffer.actions[:size].copy(), model.replay_buffer.rewards[:size].copy()))
    np.testing.assert_array_equal(buffers[0][0], buffers[1][0])
    np.testing.assert_array_equal(buffers[0][1], buffers[1][1])


# -------------------------------------------------------------------------------------- vec-envs
class ShortEpisodes(gym.Wrapper):
    """Pendulum whose episodes last ``length`` steps, so that envs of one VecEnv end at different steps."""

    def __init__(self, length: int):
        super().__init__(gym.wrappers.TimeLimit(gym.make("Pendulum-v1").unwrapped, length))


@pytest.mark.parametrize("algo, tiny", ALGOS)
@pytest.mark.parametrize("n_envs", [1, 2, 4])
def test_dummy_vec_env_with_episodes_ending_at_different_steps(algo, tiny, n_envs):
    from stable_baselines3.common.monitor import Monitor

    env = DummyVecEnv([lambda k=k: Monitor(ShortEpisodes(13 + 7 * k)) for k in range(n_envs)])
    model = make(algo, tiny, env=env)
    model.learn(tiny["learning_starts"] + 40 * n_envs)
    assert model.replay_buffer.n_envs == n_envs
    assert len(model.ep_info_buffer) > 0  # Monitor statistics reach rollout/ep_rew_mean
    data = model.replay_buffer.sample_sequences(8, 4)
    assert data.observations.shape[:2] == (8, 5)


@pytest.mark.parametrize("algo, tiny", ALGOS)
@pytest.mark.parametrize("n_envs", [1, 2, 4])
def test_subproc_vec_env_with_episodes_ending_at_different_steps(algo, tiny, n_envs):
    # Each worker's env has its own episode length (the lambdas travel to the workers by value).
    env = SubprocVecEnv([lambda k=k: Monitor(gym.make("Pendulum-v1", max_episode_steps=13 + 7 * k)) for k in range(n_envs)])
    try:
        model = make(algo, tiny, env=env)
        model.learn(tiny["learning_starts"] + 40 * n_envs)
        assert model.num_timesteps >= tiny["learning_starts"] + 40 * n_envs and model._n_updates > 0
        assert len(model.ep_info_buffer) > 0
        ends = {k: np.flatnonzero(model.replay_buffer.dones[: model.replay_buffer.pos, k]) for k in range(n_envs)}
        for k in range(n_envs):  # env k's episodes end every 13 + 7 k steps
            np.testing.assert_array_equal(np.diff(ends[k]), 13 + 7 * k)
    finally:
        env.close()


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_dict_observations_with_multi_input_policy(algo, tiny, tmp_path):
    # A 0-d Box, as dm_control walker's "height", is one feature.
    observation_space = spaces.Dict(
        {
            "height": spaces.Box(-2, 2, (), np.float64),
            "position": spaces.Box(-1, 1, (3,), np.float32),
            "velocity": spaces.Box(-5, 5, (2,), np.float64),
        }
    )
    env = ToyEnv(observation_space, spaces.Box(-1, 1, (2,), np.float32))
    model = algo("MultiInputPolicy", env, seed=0, **{**tiny, "policy_kwargs": dict(tiny["policy_kwargs"])})
    model.learn(tiny["learning_starts"] + 20)
    assert set(model.replay_buffer.observations) == {"height", "position", "velocity"}
    assert model.replay_buffer.observations["height"].shape == (model.replay_buffer.buffer_size, 1)
    obs = {key: np.stack([space.sample() for _ in range(4)]) for key, space in observation_space.spaces.items()}
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (4, 2)
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], actions, atol=1e-5)


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_dm_control_walker_through_shimmy(algo, tiny):
    # The Zoo files list dm_control/walker-walk-v0: a Dict observation whose "height" is a 0-d Box.
    import shimmy

    gym.register_envs(shimmy)
    env = gym.make("dm_control/walker-walk-v0")
    assert env.observation_space["height"].shape == ()
    model = algo("MultiInputPolicy", env, seed=0, **{**tiny, "policy_kwargs": dict(tiny["policy_kwargs"])})
    model.learn(tiny["learning_starts"] + 10)
    assert model._n_updates > 0
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (6,) and np.all(np.abs(action) <= 1)


# ------------------------------------------------------------------------ episodes and buffer sizes
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_a_buffer_smaller_than_one_sequence_trains(algo, tiny):
    # 2 steps per env: sequences stop at the newest stored transition and are padded.
    model = make(algo, tiny, env=make_vec_env("Pendulum-v1", n_envs=2), buffer_size=4, learning_starts=10)
    model.learn(20)
    assert model._n_updates > 0


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_one_update_per_collected_transition_from_the_first_one(algo, tiny):
    # SB3's own expectation (test_run.py::test_offpolicy_multi_env): learning_starts=0 and gradient_steps=-1 make one
    # update per transition collected, as soon as one is stored; pretraining bursts are left out here.
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    extra = {"pretrain_gradient_steps": 0} if algo is DCMPC else {}
    model = make(algo, tiny, env=env, learning_starts=0, train_freq=1, gradient_steps=-1, **extra)
    model.learn(10)
    assert model._n_updates == 10


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_episodes_shorter_than_a_sequence_train(algo, tiny):
    env = gym.make("Pendulum-v1", max_episode_steps=2)  # every episode has 2 transitions, sequences are longer
    model = make(algo, tiny, env=env)
    assert model.sequence_length > 2
    model.learn(tiny["learning_starts"] + 10)
    assert model._n_updates > 0 and model.non_finite_updates == 0


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_an_episode_longer_than_the_buffer(algo, tiny):
    # One episode that never ends while the buffer wraps around several times: training samples inside it.
    env = gym.make("Pendulum-v1", max_episode_steps=100_000)
    model = make(algo, tiny, env=env, buffer_size=40, learning_starts=30, train_freq=10, gradient_steps=1)
    model.learn(200)
    assert model.replay_buffer.full and model._n_updates > 0
    assert model.replay_buffer.dones.sum() == 0
    batch = model.replay_buffer.sample_sequences(8, model.sequence_length)
    assert th.all(batch.terminations == 0) and th.all(batch.truncations == 0)


# ------------------------------------------------------------------------------ faults in the env
@pytest.mark.parametrize("algo, tiny", ALGOS)
@pytest.mark.parametrize("fault", ["subprocess_crash", "keyboard_interrupt"])
def test_a_crash_in_the_env_leaves_the_last_checkpoint_and_buffer_loadable(algo, tiny, fault, tmp_path):
    crash_at = 90  # steps of the crashing env: after learning started and several checkpoints were written

    def env_fn(crash: bool):
        def make_env():
            class Crashing(gym.Wrapper):  # defined here so that cloudpickle sends it to the subprocess by value
                def __init__(self, env):
                    super().__init__(env)
                    self.steps = 0

                def step(self, action):
                    self.steps += 1
                    if crash and self.steps == crash_at:
                        if fault == "subprocess_crash":
                            os._exit(1)  # the worker process dies without a word
                        raise KeyboardInterrupt
                    return self.env.step(action)

            return Monitor(Crashing(gym.make("Pendulum-v1")))

        return make_env

    vec_env_cls = SubprocVecEnv if fault == "subprocess_crash" else DummyVecEnv
    env = vec_env_cls([env_fn(False), env_fn(True)])
    model = make(algo, tiny, env=env, learning_starts=40, train_freq=10)
    checkpoints = CheckpointCallback(save_freq=10, save_path=str(tmp_path), name_prefix="model", save_replay_buffer=True)
    expected = (EOFError, ConnectionError) if fault == "subprocess_crash" else KeyboardInterrupt
    try:
        with pytest.raises(expected):
            model.learn(1000, callback=checkpoints)
    finally:
        # SB3's SubprocVecEnv.close() would wait for the step results it already consumed before the crash.
        env.waiting = False
        with contextlib.suppress(Exception):
            env.close()
    assert model._n_updates > 0
    steps = max(int(re.search(r"_(\d+)_steps", p.name).group(1)) for p in tmp_path.glob("model_*_steps.zip"))
    assert steps == 2 * 10 * ((crash_at - 1) // 10)  # the last checkpoint before the crash
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    loaded = algo.load(tmp_path / f"model_{steps}_steps.zip", env=make_vec_env("Pendulum-v1", n_envs=2, seed=1))
    loaded.load_replay_buffer(tmp_path / f"model_replay_buffer_{steps}_steps.pkl")
    # SB3 calls the callbacks before it stores the step's transition, so a checkpoint holds one row fewer.
    assert loaded.num_timesteps == steps and loaded.replay_buffer.size() == steps // 2 - 1
    loaded.learn(20, reset_num_timesteps=False)  # training resumes from them
    assert loaded.num_timesteps == steps + 20
    # The model in memory is intact too: it saves and loads after the crash.
    model.save(tmp_path / "after_crash")
    assert algo.load(tmp_path / "after_crash").num_timesteps == model.num_timesteps


# ---------------------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_asymmetric_action_bounds_and_float64_observations(algo, tiny):
    env = ToyEnv(spaces.Box(-1, 1, (3,), np.float64), spaces.Box(0.0, 2.0, (2,), np.float32))
    model = make(algo, tiny, env=env)
    model.learn(tiny["learning_starts"] + 10)
    actions, _ = model.predict(OBS.astype(np.float64), deterministic=False)
    assert actions.shape == (4, 2) and (actions >= 0).all() and (actions <= 2).all()
    stored = model.replay_buffer.actions[: model.replay_buffer.size()]
    assert stored.min() >= -1 and stored.max() <= 1 and stored.min() < 0  # rescaled to [-1, 1] in the buffer
    assert model.replay_buffer.observations.dtype == np.float32


@pytest.mark.parametrize("algo, tiny", ALGOS)
@pytest.mark.parametrize(
    "observation_space, action_space",
    [
        (spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 3])),
        (spaces.Tuple([spaces.Box(-1, 1, (3,))]), spaces.Box(-1, 1, (1,))),
        (spaces.Box(-1, 1, (4, 5, 6)), spaces.Box(-1, 1, (1,))),
    ],
)
def test_unsupported_spaces_name_what_is_supported(algo, tiny, observation_space, action_space):
    with pytest.raises(ValueError, match="supports"):
        make(algo, tiny, env=ToyEnv(observation_space, action_space))


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_unknown_policy_kwargs_fail_clearly(algo, tiny):
    # The message names the key and lists the options the policy does take.
    with pytest.raises(TypeError, match=r"no option 'not_an_option'; its policy_kwargs are: .*(activation_fn|units)"):
        algo("MlpPolicy", "Pendulum-v1", **{**tiny, "policy_kwargs": {**tiny["policy_kwargs"], "not_an_option": 1}})


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_share_features_extractor(algo, tiny):
    # Every network reads the world model's latent: True is what the policies do (accepted), False is refused.
    model = make(algo, tiny, policy_kwargs={**tiny["policy_kwargs"], "share_features_extractor": True})
    assert "share_features_extractor" not in model.policy_kwargs
    with pytest.raises(ValueError, match="share_features_extractor=False"):
        make(algo, tiny, policy_kwargs={**tiny["policy_kwargs"], "share_features_extractor": False})


def test_dcmpc_takes_sb3_net_arch_activation_and_features_extractor():
    from stable_baselines3.common.torch_layers import FlattenExtractor

    class Doubling(FlattenExtractor):  # a user's extractor: its output size sets the encoder's input
        def __init__(self, observation_space, factor: int = 2):
            super().__init__(observation_space)
            self.factor = factor
            self._features_dim = 3 * factor

        def forward(self, observations):
            return super().forward(observations).repeat(1, self.factor)

    policy_kwargs = dict(
        TINY_DCMPC["policy_kwargs"],
        net_arch=[24, 12],
        activation_fn=th.nn.Tanh,
        features_extractor_class=Doubling,
        features_extractor_kwargs={"factor": 3},
    )
    model = make(DCMPC, TINY_DCMPC, policy_kwargs=policy_kwargs)
    linears = [m for m in model.policy.actor.modules() if isinstance(m, th.nn.Linear)]
    assert [m.out_features for m in linears] == [24, 12, 1]
    assert any(isinstance(m, th.nn.Tanh) for m in model.policy.actor.modules())
    assert isinstance(model.policy.features_extractor, Doubling)
    encoder_input = next(m for m in model.policy.encoder.modules() if isinstance(m, th.nn.Linear))
    assert encoder_input.in_features == 9
    model.learn(TINY_DCMPC["learning_starts"] + 5)
    with pytest.raises(ValueError, match="one list of hidden layer sizes"):
        make(DCMPC, TINY_DCMPC, policy_kwargs=dict(TINY_DCMPC["policy_kwargs"], net_arch=dict(pi=[8], qf=[8])))


def test_dreamer_takes_sb3_net_arch_as_a_list_or_a_dict_of_its_mlps():
    def hidden(module):
        return [m.out_features for m in module.modules() if isinstance(m, th.nn.Linear)][:-1]

    policy = make(Dreamer, TINY_DREAMER, policy_kwargs={**TINY_DREAMER["policy_kwargs"], "net_arch": [24, 24]}).policy
    assert hidden(policy.reward) == hidden(policy.value) == [24, 24]
    assert policy.actor_net_arch == policy.mlp_net_arch == [24, 24]
    sized = {"actor": [12], "value": [20, 20]}
    policy = make(Dreamer, TINY_DREAMER, policy_kwargs={**TINY_DREAMER["policy_kwargs"], "net_arch": sized}).policy
    assert hidden(policy.value) == [20, 20] and policy.actor_net_arch == [12]
    assert policy.reward_net_arch == TINY_DREAMER["policy_kwargs"]["reward_net_arch"]
    with pytest.raises(ValueError, match="names its MLPs .*; got pi"):
        make(Dreamer, TINY_DREAMER, policy_kwargs={**TINY_DREAMER["policy_kwargs"], "net_arch": {"pi": [8]}})


def test_dreamer_names_its_own_options_for_sb3_features_extractor():

    for key, value, hint in [
        ("features_extractor_kwargs", {}, "embed_dim"),
    ]:
        with pytest.raises(ValueError, match=rf"does not take policy_kwargs\['{key}'\]: .*{hint}"):
            make(Dreamer, TINY_DREAMER, policy_kwargs={**TINY_DREAMER["policy_kwargs"], key: value})
    model = make(Dreamer, TINY_DREAMER, policy_kwargs={**TINY_DREAMER["policy_kwargs"], "activation_fn": th.nn.Tanh})
    assert any(isinstance(m, th.nn.Tanh) for m in model.policy.actor.modules())
    assert any(isinstance(m, th.nn.Tanh) for m in model.policy.rssm.modules())


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_optimizer_class_and_kwargs_are_used(algo, tiny):
    policy_kwargs = {**tiny["policy_kwargs"], "optimizer_class": th.optim.RMSprop, "optimizer_kwargs": {"alpha": 0.9}}
    model = make(algo, tiny, policy_kwargs=policy_kwargs)
    assert isinstance(model.policy.actor_optimizer, th.optim.RMSprop)
    assert model.policy.actor_optimizer.defaults["alpha"] == 0.9


def test_buffer_io_round_trip_in_memory():
    # save_replay_buffer / load_replay_buffer accept file objects too, as SB3's do.
    model = make(DCMPC, TINY_DCMPC)
    model.learn(60)
    stream = io.BytesIO()
    model.save_replay_buffer(stream)
    stream.seek(0)
    other = make(DCMPC, TINY_DCMPC)
    other.load_replay_buffer(stream)
    assert other.replay_buffer.size() == model.replay_buffer.size()


@pytest.mark.parametrize("algo, tiny", ALGOS)
@pytest.mark.parametrize("fused", [True, False])
def test_non_finite_losses_skip_the_step_and_are_counted(algo, tiny, fused):
    policy_kwargs = {**tiny["policy_kwargs"], "optimizer_kwargs": {} if fused else {"foreach": False}}
    model = make(algo, tiny, policy_kwargs=policy_kwargs)
    model.learn(tiny["learning_starts"] + 10)
    optimizer = model.policy.actor_optimizer
    before = [p.detach().clone() for p in model.policy.actor.parameters()]
    state_before = {k: v.clone() for k, v in optimizer.state[next(model.policy.actor.parameters())].items()}
    actor = model.policy.actor
    features = next(m for m in actor.modules() if isinstance(m, th.nn.Linear)).in_features

    def actor_loss(x: th.Tensor) -> th.Tensor:
        out = actor(x)
        if isinstance(out, th.distributions.Distribution):  # DreamerV3's actor
            return out.rsample().sum()
        return getattr(out, "sample", out).sum()

    model._clip_and_step(optimizer, actor_loss(th.full((2, features), float("nan"), device=model.device)), 10.0)
    for a, b in zip(before, model.policy.actor.parameters(), strict=True):
        assert th.equal(a, b)
    for key, value in optimizer.state[next(model.policy.actor.parameters())].items():
        assert th.equal(value, state_before[key]), key
    model._record_means({})
    assert model.non_finite_updates == 1
    # A finite loss afterwards steps as usual.
    model._clip_and_step(optimizer, actor_loss(th.ones(2, features, device=model.device)), 10.0)
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.actor.parameters(), strict=True))


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_vec_normalize_and_vec_frame_stack(algo, tiny):
    from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), norm_obs=True, norm_reward=True)
    model = make(algo, tiny, env=env)
    model.learn(tiny["learning_starts"] + 20)
    size = model.replay_buffer.size()
    raw_rewards = model.replay_buffer.rewards[:size]
    assert raw_rewards.min() < -1.0  # the buffer keeps Pendulum's raw rewards (SB3 stores original values)
    data = model.replay_buffer.sample_sequences(8, 2, env=env)
    assert data.rewards.abs().max() < raw_rewards.__abs__().max()  # normalised when sampled with the env

    stacked = VecFrameStack(make_vec_env("Pendulum-v1", n_envs=2, seed=0), n_stack=3)
    model = make(algo, tiny, env=stacked)
    model.learn(tiny["learning_starts"] + 20)
    assert model.observation_space.shape == (9,)
    assert model.predict(np.zeros((2, 9), np.float32), deterministic=True)[0].shape == (2, 1)


@pytest.mark.parametrize("shape", [(64, 64, 3), (3, 64, 64)], ids=["HWC", "CHW"])
def test_dreamer_images_hwc_and_chw(shape):
    env = ToyEnv(spaces.Box(0, 255, shape, np.uint8), spaces.Box(-1, 1, (1,), np.float32))
    tiny = {**TINY_DREAMER, "policy_kwargs": dict(TINY_DREAMER["policy_kwargs"]), "learning_starts": 20}
    model = Dreamer("CnnPolicy", env, seed=0, **tiny)
    model.learn(30)
    assert model.replay_buffer.observations.shape[2:] == (3, 64, 64)
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert action.shape == (1,)


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_saved_tensors_load_with_weights_only(algo, tiny, tmp_path):
    model = make(algo, tiny)
    model.save(tmp_path / "model")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        names = [name for name in archive.namelist() if name.endswith(".pth")]
        assert "policy.pth" in names
        for name in names:
            # weights_only=True refuses anything but tensors and plain containers: nothing in them can run code.
            th.load(io.BytesIO(archive.read(name)), weights_only=True)


# ------------------------------------------------------------------------------- mixed precision
def _one_update(model) -> dict[str, float]:
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    th.manual_seed(0)
    np.random.seed(0)
    model.train(1, model.batch_size)
    return dict(model.logger.name_to_value)


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_bf16_actions_and_losses_stay_close_to_float32(algo, tiny, tmp_path):
    fp32 = make(algo, tiny)
    fp32.learn(tiny["learning_starts"] + 40)
    fp32.save(tmp_path / "model")
    fp32.save_replay_buffer(tmp_path / "buffer")
    bf16 = algo.load(tmp_path / "model", env=gym.make("Pendulum-v1"), custom_objects={"mixed_precision": "bf16"})
    bf16.load_replay_buffer(tmp_path / "buffer")
    assert bf16.mixed_precision == "bf16" and bf16.policy.mixed_precision == "bf16"
    # Acting: the same deterministic actions up to bfloat16 rounding (8 bits of mantissa).
    if algo is DreamerV3:
        # Its deterministic acting takes the most likely categorical code, which a bfloat16 rounding flips wherever two
        # logits nearly tie (a tiny, barely trained model has many ties): the actor is compared on the same states.
        features = th.randn(16, fp32.policy.world_model.rssm.feature_dim, generator=th.Generator().manual_seed(1))
        with th.no_grad(), th.autocast("cpu", dtype=th.bfloat16):
            actions_bf16 = bf16.policy.actor.mode(features).float().numpy()
        with th.no_grad():
            actions_fp32 = fp32.policy.actor.mode(features).numpy()
    else:
        obs = np.random.default_rng(1).uniform(-1, 1, (16, 3)).astype(np.float32)
        actions_fp32, _ = fp32.predict(obs, deterministic=True)
        actions_bf16, _ = bf16.predict(obs, deterministic=True)
    assert np.abs(actions_fp32 - actions_bf16).mean() < 0.1
    # Training: the same batch and noise give losses within a few percent.
    stats_fp32, stats_bf16 = _one_update(fp32), _one_update(bf16)
    for key in ("world_model/loss", "world_model/reward_loss", "train/actor_loss"):
        if key in stats_fp32:
            assert stats_bf16[key] == pytest.approx(stats_fp32[key], rel=0.05, abs=0.02), key
    assert all(th.isfinite(p).all() for p in bf16.policy.parameters())


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_fp16_trains_with_a_gradient_scaler(algo, tiny):
    model = make(algo, tiny, mixed_precision="fp16")
    model.learn(tiny["learning_starts"] + 40)
    assert model._n_updates > 0 and len(model._grad_scalers) >= 2  # one scaler per optimizer
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    with pytest.raises(ValueError, match="mixed_precision must be None"):
        make(algo, tiny, mixed_precision="int8")


def test_compiled_planner_gives_the_eager_actions(tmp_path):
    eager = make(DCMPC, TINY_DCMPC)
    eager.learn(TINY_DCMPC["learning_starts"] + 10)
    eager.save(tmp_path / "model")
    compiled = DCMPC.load(tmp_path / "model", custom_objects={"compile_planner": True})
    # The compiled steps shadow the methods as instance attributes.
    assert {"_imagine_step", "policy_prior"} <= set(vars(compiled.policy))
    assert not {"_imagine_step", "policy_prior"} & set(vars(eager.policy))
    obs = np.random.default_rng(2).uniform(-1, 1, (8, 3)).astype(np.float32)
    actions_eager, state_eager = eager.predict(obs, deterministic=True)
    # On CUDA (device="auto" on a GPU machine) the compiled steps are CUDA graphs: the first calls record them, the
    # later ones replay them into the same output memory, which the planner must not read after it is overwritten.
    for _ in range(3):
        actions_compiled, state_compiled = compiled.predict(obs, deterministic=True)
    np.testing.assert_allclose(actions_compiled, actions_eager, atol=1e-4)
    np.testing.assert_allclose(state_compiled[0], state_eager[0], atol=1e-4)
    # New weights reach the compiled steps (nothing was baked in as a constant).
    eager.learn(20, reset_num_timesteps=False)
    compiled.policy.load_state_dict(eager.policy.state_dict())
    actions_after, _ = eager.predict(obs, deterministic=True)
    assert not np.allclose(actions_after, actions_eager, atol=1e-3)
    actions_compiled, _ = compiled.predict(obs, deterministic=True)
    np.testing.assert_allclose(actions_compiled, actions_after, atol=1e-4)
    compiled.save(tmp_path / "again")  # the compiled functions are not part of the checkpoint
    assert DCMPC.load(tmp_path / "again").compile_planner
