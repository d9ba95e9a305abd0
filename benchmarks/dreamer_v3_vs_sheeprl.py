"""Time of one DreamerV3 gradient update: ``sb3_worldmodels.DreamerV3`` against sheeprl's DreamerV3, side by side.

    python benchmarks/dreamer_v3_vs_sheeprl.py --sheeprl-python /tmp/sheeprl-venv/bin/python [--size XS|S|M|L|XL]
        [--tasks vector,pixels] [--threads 1] [--repeats 3] [--warmup 2] [--updates 3] [--malloc tcmalloc|keep-freed|default]
        [--out benchmarks/results/dreamer_v3_vs_sheeprl.json]

One gradient update is the whole training step on one batch: sample 16 sequences of 64 steps from a replay buffer of
2000 random transitions, update the world model on them, imagine 15 steps from each of the 16 x 64 posterior states,
update the actor and the critic on the imagined trajectories, and move the slow (target) critic towards the critic.
Both sides run in float32 on the CPU with the model sizes of the paper's presets (``--size``; S: GRU 512, MLPs of
2 x 512 units, CNN depth 32, 32 x 32 categorical latents) and their own default options otherwise: ours with its CPU
fast paths (``accel="auto"``), sheeprl with its ``dreamer_v3_<size>`` algorithm preset, a Lightning ``Fabric`` on the
CPU in ``32-true`` precision, its metric aggregator on (``metric.log_level=1``) and without ``torch.compile`` (its
default).

Two tasks, with the same spaces on both sides:

- ``vector``: a 24-D observation and a 6-D continuous action (the sizes of DMC walker's state and action);
- ``pixels``: 64x64x3 images and a 1-D continuous action (cartpole from pixels).

The driver runs every measurement in a fresh worker process (``--impl ours|sheeprl``): ours with this interpreter,
sheeprl with ``--sheeprl-python`` (a virtual environment where sheeprl is installed; our package need not be there).
A worker builds the agent, fills its replay buffer, counts the FLOPs of one update (matrix products and convolutions,
backward included, ``torch.utils.flop_counter``; first round only), makes ``--warmup`` updates, times ``--updates``
more, and prints the times. The workers of the two sides take turns, in the order ours, sheeprl, sheeprl, ours, ...
so that the load of a shared machine weighs on both alike. The result is the median update time of each side over
all rounds, their ratio sheeprl / ours (above 1: ours is faster) and each round's ratio. Both workers run with the
same C allocator (``--malloc``) and ``torch.set_num_threads(--threads)``. Results go to ``--out`` under their size
and task; those of other sizes and tasks already in the file are kept.

Differences in work that remain (see also ``NOTES``):

- sheeprl's world model runs its reward and continuation heads on all 64 states of a sequence, ours on the 63 that
  follow a transition; in imagination sheeprl runs the reward and continuation heads on all 16 states of a
  trajectory, ours on the 15 imagined ones; both take the continuation head's mode (no gradient) (the
  comparison in BENCHMARKS.md predates that: ours then took its probability, differentiated);
- in the actor loss sheeprl evaluates the actor again on the imagined states, ours keeps the log-probabilities and
  entropies from the evaluation that drew the actions (the same values);
- sampling: ours takes sequences that may cross or stop at an episode end (padded, with a mask), sheeprl contiguous
  windows of its buffer. The buffers here hold one episode, so both compute on full 16 x 64 batches; the sampling
  time of each side is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from _timing import add_malloc_option, apply_malloc_option, count_flops, malloc_setting

REPO = Path(__file__).resolve().parent.parent
BATCH_SIZE, SEQUENCE_LENGTH, HORIZON = 16, 64, 15
#: Random transitions in the replay buffer before the updates (one episode).
FILL = 2000
SIZES = ("XS", "S", "M", "L", "XL")
#: Observation and action of each task: a flat vector of ``obs_dim`` or ``image`` x ``image`` x 3 pixels.
TASKS: dict[str, dict[str, int]] = {"vector": dict(obs_dim=24, action_dim=6), "pixels": dict(image=64, action_dim=1)}
NOTES = [
    "Same on both sides: batch 16 sequences x 64 steps, imagination of 15 steps from all 1024 posterior states, world "
    "model (reconstruction, two-hot reward, continuation, balanced KL with 1 free nat), actor (dynamics "
    "backpropagation, entropy 3e-4, return scale from the 5-95% percentiles), critic (two-hot on the lambda-returns "
    "plus the slow critic's regulariser), slow critic mixed 2% per update, fused Adam, gradient clipping, float32.",
    "The update time includes sampling the batch from each side's replay buffer (ours: SequenceReplayBuffer inside "
    "DreamerV3.train; sheeprl: EnvIndependentReplayBuffer through sample_batches, as its training loop does); "
    "'sample_ms' gives it apart.",
    "Reward and continuation heads: sheeprl runs them on all 64 states of a sequence, ours on the 63 after a "
    "transition; in imagination sheeprl runs both on all 16 states of a trajectory and takes the continuation mode "
    "(no gradient), ours on the 15 imagined states, also with the mode.",
    "Actor: sheeprl evaluates it on the 15 x 1024 imagined states twice (to draw the actions, then again for the "
    "loss's log-probabilities and entropies), ours once, keeping those values from the evaluation that drew the "
    "actions. Both evaluate the critic once for the actor's returns and once for the critic loss.",
    "Ours computes the learned initial state once per unroll step on one row (broadcast where an episode starts); "
    "sheeprl once per batch, and it projects the embeddings into the posterior's first layer for the whole sequence "
    "at once. Same FLOPs up to these small terms, different kernels.",
    "sheeprl is run through its public modules (train, build_agent, sample_batches) without its command line: "
    "torch.set_float32_matmul_precision keeps PyTorch's default ('highest') on both sides, where sheeprl's command "
    "line sets 'high', so that every product is in full float32. Each side computes the statistics it logs in a "
    "default run (sheeprl: its metric aggregator with metric.log_level=1).",
]


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------------------------------------- ours
def ours_agent(task: str, size: str, seed: int) -> tuple[Callable[[], None], Callable[[], object], dict[str, int]]:
    """Our DreamerV3 with a buffer of ``FILL`` random transitions: the update, the batch sampling and the networks'
    parameter counts."""
    import gymnasium as gym
    from dreamer_speed import ShapeEnv
    from stable_baselines3.common.logger import configure

    from sb3_worldmodels import DreamerV3

    spec = TASKS[task]
    if task == "pixels":
        observation_space, policy = gym.spaces.Box(0, 255, (spec["image"], spec["image"], 3), np.uint8), "CnnPolicy"
    else:
        observation_space, policy = gym.spaces.Box(-np.inf, np.inf, (spec["obs_dim"],), np.float32), "MlpPolicy"
    env = ShapeEnv(observation_space, spec["action_dim"])
    model = DreamerV3(
        policy, env, policy_kwargs=dict(size=size), batch_size=BATCH_SIZE, batch_length=SEQUENCE_LENGTH,
        imagination_horizon=HORIZON, learning_starts=0, buffer_size=FILL, seed=seed, device="cpu",
    )  # fmt: skip
    model.set_logger(configure(None, []))  # train() records its losses; nothing is written
    space, rng = model.observation_space, np.random.default_rng(seed)  # images come channels-first (VecTransposeImage)
    for _ in range(FILL):
        obs = space.sample()[None]
        action = rng.uniform(-1, 1, (1, spec["action_dim"])).astype(np.float32)
        model.replay_buffer.add(obs, obs, action, rng.standard_normal(1), np.array([False]), [{}])
    networks = {"world_model": model.policy.world_model, "actor": model.policy.actor, "critic": model.policy.critic}
    params = {name: sum(p.numel() for p in module.parameters()) for name, module in networks.items()}

    def update() -> None:
        model.train(gradient_steps=1, batch_size=BATCH_SIZE)

    def sample() -> object:
        return model.replay_buffer.sample_sequences(BATCH_SIZE, model.sequence_length)

    return update, sample, params


# ------------------------------------------------------------------------------------------------------ sheeprl
def sheeprl_config(task: str, size: str) -> Any:
    """sheeprl's configuration of a DreamerV3 run (``exp=dreamer_v3``) at ``size`` on the CPU in float32."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf
    from sheeprl.utils.utils import dotdict

    keys = ("[rgb]", "[]") if task == "pixels" else ("[]", "[state]")
    overrides = [
        "exp=dreamer_v3",
        f"algo=dreamer_v3_{size}",
        "env=dummy",
        "env.num_envs=1",
        f"env.screen_size={TASKS['pixels']['image']}",
        f"algo.cnn_keys.encoder={keys[0]}",
        f"algo.mlp_keys.encoder={keys[1]}",
        f"algo.cnn_keys.decoder={keys[0]}",
        f"algo.mlp_keys.decoder={keys[1]}",
        f"algo.per_rank_batch_size={BATCH_SIZE}",
        f"algo.per_rank_sequence_length={SEQUENCE_LENGTH}",
        f"algo.horizon={HORIZON}",
        "algo.compile.enabled=False",
        "fabric.accelerator=cpu",
        "fabric.precision=32-true",
        "fabric.devices=1",
        "buffer.memmap=False",
        "model_manager.disabled=True",
    ]
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    # Plain values, as sheeprl's command line gives them to the algorithm.
    return dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))


def sheeprl_agent(task: str, size: str, seed: int) -> tuple[Callable[[], None], Callable[[], object], dict[str, int]]:
    """sheeprl's DreamerV3 agent, optimisers and replay buffer (``FILL`` random steps), set up as its ``main`` does:
    the update (the slow critic's update of its training loop, then ``train``), the batch sampling and the networks'
    parameter counts."""
    import gymnasium as gym
    import hydra
    from lightning.fabric import Fabric
    from sheeprl.algos.dreamer_v2.utils import sample_batches
    from sheeprl.algos.dreamer_v3.agent import build_agent
    from sheeprl.algos.dreamer_v3.dreamer_v3 import train
    from sheeprl.algos.dreamer_v3.utils import AGGREGATOR_KEYS, Moments
    from sheeprl.data.buffers import EnvIndependentReplayBuffer, SequentialReplayBuffer
    from sheeprl.utils.metric import MetricAggregator
    from torch.distributions import Distribution

    cfg = sheeprl_config(task, size)
    spec = TASKS[task]
    Distribution.set_default_validate_args(cfg.distribution.validate_args)  # as sheeprl's command line does
    fabric = Fabric(accelerator="cpu", devices=1, num_nodes=1, precision=cfg.fabric.precision)
    fabric.seed_everything(seed)
    # The metrics of the run, as sheeprl's command line keeps them (metric.log_level=1).
    for key in set(cfg.metric.aggregator.metrics.keys()) - AGGREGATOR_KEYS:
        cfg.metric.aggregator.metrics.pop(key, None)
    MetricAggregator.disabled = cfg.metric.log_level == 0 or len(cfg.metric.aggregator.metrics) == 0
    aggregator = None if MetricAggregator.disabled else hydra.utils.instantiate(cfg.metric.aggregator, _convert_="all")

    if task == "pixels":
        image = spec["image"]
        key, space = "rgb", gym.spaces.Box(0, 255, (3, image, image), np.uint8)  # sheeprl's images are channels-first
    else:
        key, space = "state", gym.spaces.Box(-np.inf, np.inf, (spec["obs_dim"],), np.float32)
    observation_space = gym.spaces.Dict({key: space})
    actions_dim = (spec["action_dim"],)
    world_model, actor, critic, target_critic, _ = build_agent(fabric, actions_dim, True, cfg, observation_space)
    world_optimizer = hydra.utils.instantiate(cfg.algo.world_model.optimizer, params=world_model.parameters(), _convert_="all")
    actor_optimizer = hydra.utils.instantiate(cfg.algo.actor.optimizer, params=actor.parameters(), _convert_="all")
    critic_optimizer = hydra.utils.instantiate(cfg.algo.critic.optimizer, params=critic.parameters(), _convert_="all")
    world_optimizer, actor_optimizer, critic_optimizer = fabric.setup_optimizers(
        world_optimizer, actor_optimizer, critic_optimizer
    )
    moments_cfg = cfg.algo.actor.moments
    moments = Moments(moments_cfg.decay, moments_cfg.max, moments_cfg.percentile.low, moments_cfg.percentile.high)

    rb = EnvIndependentReplayBuffer(
        FILL, n_envs=1, obs_keys=(key,), memmap=False, buffer_cls=SequentialReplayBuffer, seed=seed
    )
    rng = np.random.default_rng(seed)
    obs = np.stack([space.sample() for _ in range(FILL)])[:, None]
    is_first = np.zeros((FILL, 1, 1), np.float32)
    is_first[0] = 1
    rb.add(
        {
            key: obs,
            "actions": rng.uniform(-1, 1, (FILL, 1, spec["action_dim"])).astype(np.float32),
            "rewards": rng.standard_normal((FILL, 1, 1)).astype(np.float32),
            "terminated": np.zeros((FILL, 1, 1), np.float32),
            "truncated": np.zeros((FILL, 1, 1), np.float32),
            "is_first": is_first,
        }
    )
    params = {
        "world_model": sum(p.numel() for p in world_model.parameters()),
        "actor": sum(p.numel() for p in actor.parameters()),
        "critic": sum(p.numel() for p in critic.parameters()),
    }
    steps = 0

    def update() -> None:
        nonlocal steps
        (batch,) = sample_batches(fabric, cfg, rb, 1)
        # The slow critic's update of sheeprl's training loop, before each `train` (a copy at the first one).
        if steps % cfg.algo.critic.per_rank_target_network_update_freq == 0:
            tau = 1 if steps == 0 else cfg.algo.critic.tau
            for cp, tcp in zip(critic.module.parameters(), target_critic.parameters(), strict=True):
                tcp.data.copy_(tau * cp.data + (1 - tau) * tcp.data)
        train(
            fabric, world_model, actor, critic, target_critic, world_optimizer, actor_optimizer, critic_optimizer,
            batch, aggregator, cfg, True, actions_dim, moments,
        )  # fmt: skip
        steps += 1

    def sample() -> object:
        return list(sample_batches(fabric, cfg, rb, 1))

    return update, sample, params


# ------------------------------------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> None:
    """Time one implementation on one task and print ``RESULT <json>``."""
    th.set_num_threads(args.threads)
    th.manual_seed(args.seed)
    np.random.seed(args.seed)
    build = ours_agent if args.impl == "ours" else sheeprl_agent
    start = time.perf_counter()
    update, sample, params = build(args.task, args.size, args.seed)
    build_s = time.perf_counter() - start
    flops = count_flops(update) if args.count_flops else None  # an untimed update: also a warm-up
    for _ in range(args.warmup):
        update()
    times = []
    for _ in range(args.updates):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    sample_times = []
    for _ in range(5):
        start = time.perf_counter()
        sample()
        sample_times.append(time.perf_counter() - start)
    result = dict(
        impl=args.impl, task=args.task, size=args.size, threads=th.get_num_threads(), update_s=times,
        sample_ms=statistics.median(sample_times) * 1e3, flops=flops, params=params, build_s=build_s,
        torch=th.__version__, python=platform.python_version(), malloc=malloc_setting(),
    )  # fmt: skip
    if args.impl == "sheeprl":
        from importlib.metadata import version

        result["sheeprl"] = version("sheeprl")
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------------- driver
def run_worker(args: argparse.Namespace, impl: str, task: str, count_flops_: bool) -> dict[str, Any]:
    python = sys.executable if impl == "ours" else args.sheeprl_python
    command = [
        python, str(Path(__file__).resolve()), "--impl", impl, "--task", task, "--size", args.size,
        "--threads", str(args.threads), "--warmup", str(args.warmup), "--updates", str(args.updates),
        "--seed", str(args.seed), "--malloc", "default",  # the driver's allocator, inherited through the environment
    ]  # fmt: skip
    if count_flops_:
        command.append("--count-flops")
    env = dict(os.environ)
    if impl == "ours":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    else:  # sheeprl's environment, without our package on its path
        env.pop("PYTHONPATH", None)
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"worker {impl}/{task} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def driver(args: argparse.Namespace) -> None:
    tasks = [task for task in args.tasks.split(",") if task]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {task: {"ours": [], "sheeprl": []} for task in tasks}
    for round_ in range(args.repeats):
        order = ["ours", "sheeprl"] if round_ % 2 == 0 else ["sheeprl", "ours"]
        for task in tasks:
            for impl in order:
                result = run_worker(args, impl, task, count_flops_=round_ == 0)
                runs[task][impl].append(result)
                print(
                    f"round {round_} {task:6s} {impl:7s}: "
                    + ", ".join(f"{t * 1e3:.0f}" for t in result["update_s"])
                    + f" ms per update (sampling {result['sample_ms']:.1f} ms)",
                    flush=True,
                )

    results: dict[str, Any] = {}
    for task, by_impl in runs.items():
        round_medians = {impl: [statistics.median(r["update_s"]) * 1e3 for r in rs] for impl, rs in by_impl.items()}
        entry: dict[str, Any] = {
            "command": "python benchmarks/dreamer_v3_vs_sheeprl.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"),
            "commit": git_commit(),
            "threads": args.threads,
            "rounds": args.repeats,
            "warmup_updates": args.warmup,
            "timed_updates_per_round": args.updates,
            "malloc": malloc_setting(),
        }
        for impl, rs in by_impl.items():
            first = rs[0]
            entry[impl] = {
                "median_update_ms": round(statistics.median(t * 1e3 for r in rs for t in r["update_s"]), 1),
                "round_median_update_ms": [round(x, 1) for x in round_medians[impl]],
                "fastest_update_ms": round(min(t * 1e3 for r in rs for t in r["update_s"]), 1),
                "sample_ms": round(statistics.median(r["sample_ms"] for r in rs), 2),
                "gflop_per_update": None if first["flops"] is None else round(first["flops"] / 1e9, 1),
                "params": first["params"],
                "torch": first["torch"],
                **({"sheeprl": first["sheeprl"]} if "sheeprl" in first else {}),
            }
        entry["ratio_sheeprl_over_ours"] = round(entry["sheeprl"]["median_update_ms"] / entry["ours"]["median_update_ms"], 3)
        entry["round_ratios"] = [round(s / o, 3) for s, o in zip(round_medians["sheeprl"], round_medians["ours"], strict=True)]
        results[task] = entry

    print(f"\nsize={args.size} threads={args.threads} batch={BATCH_SIZE}x{SEQUENCE_LENGTH} horizon={HORIZON} "
          f"rounds={args.repeats} updates/round={args.updates} malloc={malloc_setting()} cpu={cpu_model()}")  # fmt: skip
    print("| task | ours (ms) | sheeprl (ms) | sheeprl / ours | rounds' ratios | GFLOP ours / sheeprl |")
    print("| --- | --- | --- | --- | --- | --- |")
    for task, entry in results.items():
        ours, theirs = entry["ours"], entry["sheeprl"]
        print(
            f"| {task} | {ours['median_update_ms']:.0f} | {theirs['median_update_ms']:.0f} | "
            f"{entry['ratio_sheeprl_over_ours']:.2f} | {entry['round_ratios']} | "
            f"{ours['gflop_per_update']} / {theirs['gflop_per_update']} |"
        )
    # Earlier results of other sizes and tasks in the same file are kept.
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    merged = previous.get("results", {})
    merged.setdefault(args.size, {}).update(results)
    output = {
        "benchmark": "time of one DreamerV3 gradient update (sampling, world model, 15-step imagination from every "
        "posterior state, actor, critic, slow critic), sb3_worldmodels against sheeprl, float32 on the CPU",
        "batch": {"sequences": BATCH_SIZE, "steps": SEQUENCE_LENGTH, "imagination_horizon": HORIZON},
        "tasks": TASKS,
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count()},
        "ratio": "sheeprl median update time / ours (above 1: ours is faster)",
        "results": merged,
        "notes": NOTES,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="S")
    parser.add_argument("--tasks", default="vector,pixels", help="comma-separated, of: " + ", ".join(TASKS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="rounds: one worker of each side per task and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates per worker")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per worker")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheeprl-python", default="/tmp/sheeprl-venv/bin/python", help="an interpreter with sheeprl")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dreamer_v3_vs_sheeprl.json"))
    parser.add_argument("--impl", choices=["ours", "sheeprl"], help="worker mode: time this implementation only")
    parser.add_argument("--task", choices=list(TASKS), default="vector", help="worker mode: the task")
    parser.add_argument("--count-flops", action="store_true", help="worker mode: count the FLOPs of one update")
    add_malloc_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    if args.impl is None:
        unknown = set(args.tasks.split(",")) - set(TASKS) - {""}
        if unknown:
            parser.error(f"unknown tasks {sorted(unknown)}")
        driver(args)
    else:
        worker(args)


if __name__ == "__main__":
    main()
