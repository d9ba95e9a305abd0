"""A CUDA graph of DC-MPC's whole planning call: ``DCMPC(cuda_graph_planner=True)`` on a GPU."""

from __future__ import annotations

import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_worldmodels.common.precision import autocast
from sb3_worldmodels.dcmpc.planner import PlanResult
from sb3_worldmodels.dcmpc.policies import DCMPCPolicy, _tensor_items


class PlanGraph:
    """A CUDA graph of one planning call (:meth:`DCMPCPolicy._plan`: encoder, warm start, MPPI, exploration noise) for
    observations of one shape.

    A planning call launches many small kernels (in each of the 6 MPPI iterations, 3 latent steps of a few products,
    a softmax and elementwise work, then the elite selection and refit), and on a GPU the launches, not the arithmetic,
    take its time at the paper's sizes (BENCHMARKS.md, "GPU"). A graph launches them all at once. Its inputs and
    outputs live in fixed memory: each call copies the observation, the previous plan, the episode starts and the noise
    std in, replays, and returns copies of the outputs (the next replay overwrites them).

    - The parameters are read from their memory at every replay, so updates (in place, as the optimizers and the
      Polyak averaging write them) and ``load_state_dict`` reach the graph. Parameters moved to new memory make
      :meth:`DCMPCPolicy._graphed_plan` capture again.
    - Random numbers come from PyTorch's default CUDA generator, which a graph advances at each replay as the eager
      call would: after the same ``torch.manual_seed`` a replay draws the same noise as the eager call.
    - The noise std is an input, so one graph serves the whole exploration schedule; it always draws the noise,
      also when the std is 0 (adding zeros).
    - Without a previous plan, the warm start is the plan of a new episode: zeros.

    :param policy: The policy whose planning call is captured.
    :param obs: An observation batch of the shape to capture (its values are not used after the capture).
    """

    def __init__(self, policy: DCMPCPolicy, obs: PyTorchObs):
        self.policy = policy
        #: Where the policy's parameters and buffers were at the capture (the graph reads them there).
        self.addresses = self.addresses_of(policy)
        self.obs = {k: v.clone() for k, v in obs.items()} if isinstance(obs, dict) else obs.clone()
        n_states, planner = _tensor_items(obs)[0][1].shape[0], policy.planner
        device = policy.device
        self.previous_mean = th.zeros(n_states, planner.plan_horizon, planner.action_dim, device=device)
        self.episode_start = th.ones(n_states, dtype=th.bool, device=device)
        self.noise_std = th.zeros((), device=device)

        self.graph: th.cuda.CUDAGraph | None = None
        if device.type != "cuda":  # no graph: each call runs eagerly on the static inputs (the tests on the CPU)
            return
        # Warm up on a side stream (lazy initialisations, the compiled steps' compilation), then capture.
        stream = th.cuda.Stream(device)
        stream.wait_stream(th.cuda.current_stream(device))
        with th.cuda.stream(stream):
            for _ in range(2):
                self._call()
        th.cuda.current_stream(device).wait_stream(stream)
        self.graph = th.cuda.CUDAGraph()
        with th.cuda.graph(self.graph):
            self.outputs = self._call()

    @staticmethod
    def addresses_of(policy: DCMPCPolicy) -> tuple[int, ...]:
        """Memory addresses of ``policy``'s parameters and buffers."""
        return tuple(t.data_ptr() for t in (*policy.parameters(), *policy.buffers()))

    def _call(self) -> PlanResult:
        with th.inference_mode(), autocast(self.policy.device, self.policy.mixed_precision):
            return self.policy._plan(self.obs, self.previous_mean, self.episode_start, self.noise_std)

    def __call__(
        self, obs: PyTorchObs, previous_mean: th.Tensor | None, episode_start: th.Tensor | None, noise_std: float
    ) -> PlanResult:
        with th.inference_mode():
            for (_, static), (_, value) in zip(_tensor_items(self.obs), _tensor_items(obs), strict=True):
                static.copy_(value)
            if previous_mean is None:
                self.episode_start.fill_(True)
            else:
                self.previous_mean.copy_(previous_mean)
                if episode_start is None:
                    self.episode_start.fill_(False)
                else:
                    self.episode_start.copy_(episode_start)
            self.noise_std.fill_(noise_std)
            if self.graph is None:
                self.outputs = self._call()
            else:
                self.graph.replay()
            return PlanResult(*(t.clone() for t in self.outputs))
