"""Per-update time at the paper's sizes under each C allocator setting, each setting in processes of its own.

    python benchmarks/allocator.py [--rounds 2] [--calls N] [--algos dreamer dcmpc] [--size paper|pendulum-cpu]
        [--out benchmarks/results/allocator.json]

PyTorch allocates CPU tensors with the C library's ``malloc``. glibc's defaults hand large freed blocks back to the
kernel (blocks above the mmap threshold are unmapped, and the heap top is trimmed), so a large tensor of the next
update is new memory, and its first write pays a page fault per 4 KiB. The allocator is a property of the process,
set from outside it: ``GLIBC_TUNABLES`` for glibc (``glibc.malloc.hugetlb=1``: transparent huge pages for the heap,
one fault per 2 MiB), ``LD_PRELOAD`` for jemalloc or tcmalloc (Debian: ``apt-get install libjemalloc2
libtcmalloc-minimal4``). The last setting, "mallopt() in the process", is glibc's keep-freed setting made by the process
itself with ``mallopt()``, for comparison.

Each round starts, for every algorithm and every setting in turn, a process with the model of ``dreamer_speed.py
--size paper`` or ``dcmpc_speed.py --size paper`` (2 threads), which runs one warm-up update and then times ``--calls``
updates (default: 1 Dreamer update, 3 DC-MPC calls of two updates each, as its actor is updated every second step; all
figures are per update). The order of the settings is reversed every other round, so that a change of the machine's
load hits all settings alike. Reported per setting: the median wall-clock time and the median over rounds of its time /
the default's time in the same round; the process's minor page faults and system CPU time per update, which do not
depend on the machine's load; and its peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _timing import GLIBC_KEEP_FREED, hot_calls

LIBRARY_DIR = Path("/usr/lib/x86_64-linux-gnu")
JEMALLOC = LIBRARY_DIR / "libjemalloc.so.2"
TCMALLOC = LIBRARY_DIR / "libtcmalloc_minimal.so.4"
#: Setting name -> environment variables of its process ("mallopt" marks the in-process setting).
SETTINGS = {
    "glibc default": {},
    "glibc, GLIBC_TUNABLES keep freed": {"GLIBC_TUNABLES": GLIBC_KEEP_FREED},
    "glibc, GLIBC_TUNABLES hugetlb=1": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    "jemalloc": {"LD_PRELOAD": str(JEMALLOC)},
    "jemalloc, no decay": {"LD_PRELOAD": str(JEMALLOC), "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"},
    "tcmalloc": {"LD_PRELOAD": str(TCMALLOC)},
    "mallopt() in the process": {"mallopt": "1"},
}
#: Timed calls per process, after one warm-up call.
CALLS = {"dreamer": 1, "dcmpc": 3}


def keep_freed_by_mallopt() -> None:
    """The glibc setting of ``GLIBC_KEEP_FREED``, made from inside the process (trim threshold -1: never)."""
    import ctypes

    mallopt = ctypes.CDLL("libc.so.6").mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # malloc.h
    assert mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, -1) and mallopt(m_top_pad, 1 << 26)


def worker(algo: str, size: str, calls: int, mallopt: bool) -> None:
    """Run one warm-up call and ``calls`` timed calls; print per update their wall-clock milliseconds, minor page faults
    and system CPU seconds, then the peak resident memory and the allocator in use, as JSON."""
    if mallopt:
        keep_freed_by_mallopt()
    import torch as th

    th.set_num_threads(2)
    _, hot = hot_calls(algo, size)
    update = hot["gradient update"]
    update.fn()
    ms, faults, system = [], [], []
    for _ in range(calls):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        update.fn()
        end, after = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        ms.append((end - start) * 1e3 / update.units)
        faults.append((after.ru_minflt - before.ru_minflt) / update.units)
        system.append((after.ru_stime - before.ru_stime) / update.units)
    maps = Path("/proc/self/maps").read_text()
    loaded = next((name for name in ("jemalloc", "tcmalloc") if f"lib{name}" in maps), "glibc")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ms": ms, "minor_faults": faults, "system_s": system, "peak_rss_mib": peak, "allocator": loaded}))


def run_setting(algo: str, size: str, calls: int, variables: dict[str, str]) -> dict:
    env = {**os.environ, **{k: v for k, v in variables.items() if k != "mallopt"}}
    command = [sys.executable, __file__, "--worker", algo, "--size", size, "--calls", str(calls)]
    if "mallopt" in variables:
        command.append("--mallopt")
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def summarize(runs: dict[str, dict[str, list[dict]]]) -> dict:
    """Per algorithm and setting: median time, the median and range over rounds of time / default, faults, memory."""
    summary = {}
    for algo, by in runs.items():
        rounds = min(len(setting_runs) for setting_runs in by.values())
        default = [statistics.median(run["ms"]) for run in by["glibc default"][:rounds]]
        summary[algo] = {}
        for name, setting_runs in by.items():
            setting_runs = setting_runs[:rounds]
            ratios = [statistics.median(run["ms"]) / d for run, d in zip(setting_runs, default, strict=True)]
            summary[algo][name] = {
                "median_ms": statistics.median([t for run in setting_runs for t in run["ms"]]),
                "ratio_to_default": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "minor_faults": statistics.median([f for run in setting_runs for f in run["minor_faults"]]),
                "system_s": statistics.median([s for run in setting_runs for s in run["system_s"]]),
                "peak_rss_mib": max(run["peak_rss_mib"] for run in setting_runs),
            }
    return summary


def print_summary(summary: dict) -> None:
    print("| algorithm | setting | ms per update | / default (range over rounds) | minor faults | system s | peak RSS (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for algo, by in summary.items():
        for name, s in by.items():
            low, high = s["ratio_range"]
            print(
                f"| {algo} | {name} | {s['median_ms']:.0f} | {s['ratio_to_default']:.2f} ({low:.2f}-{high:.2f}) "
                f"| {s['minor_faults']:.0f} | {s['system_s']:.2f} | {s['peak_rss_mib']:.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=None, help="timed calls per process (default: Dreamer 1, DC-MPC 3)")
    parser.add_argument("--algos", nargs="+", choices=["dreamer", "dcmpc"], default=["dreamer", "dcmpc"])
    parser.add_argument("--size", choices=["paper", "pendulum-cpu"], default="paper")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "allocator.json"))
    parser.add_argument("--worker", choices=["dreamer", "dcmpc"], help=argparse.SUPPRESS)
    parser.add_argument("--mallopt", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.size, args.calls, args.mallopt)
        return

    settings = {name: v for name, v in SETTINGS.items() if not v.get("LD_PRELOAD") or Path(v["LD_PRELOAD"]).exists()}
    calls = {algo: args.calls or CALLS[algo] for algo in args.algos}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    result = {
        "command": " ".join(["python", "benchmarks/allocator.py", *sys.argv[1:]]),
        "commit": commit,
        "cpu": cpu,
        "libc": " ".join(platform.libc_ver()),
        "rounds": args.rounds,
        "calls": calls,
        "size": args.size,
        "settings": settings,
    }
    runs = {algo: {name: [] for name in settings} for algo in args.algos}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for round_ in range(args.rounds):
        order = list(settings) if round_ % 2 == 0 else list(reversed(settings))
        for algo in args.algos:
            for name in order:
                runs[algo][name].append(run_setting(algo, args.size, calls[algo], settings[name]))
                print(f"round {round_} {algo} {name}: {runs[algo][name][-1]}", flush=True)
                out.write_text(json.dumps({**result, "runs": runs}, indent=1) + "\n")  # kept if the run is cut short
    result.update(summary=summarize(runs), runs=runs)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"commit {commit}, {cpu}, {result['libc']}, {args.rounds} rounds, timed calls per process {calls}")
    print_summary(result["summary"])


if __name__ == "__main__":
    main()
