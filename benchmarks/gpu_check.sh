#!/usr/bin/env bash
# The CUDA checks and GPU timings as one script, for a GPU machine (BENCHMARKS.md, "GPU").
#
#   [STEPS="cuda-tests walker-dcmpc ..."] bash benchmarks/gpu_check.sh [deadline_seconds]
#
# STEPS names the steps to run (default: all; the import check always runs).
# Runs, in order of importance, each step under a timeout that also respects the overall deadline (default 520 s):
# the CUDA tests (tests/integration/test_cuda.py), the rest of the test suite on CUDA (the tests leave SB3's device="auto", which
# picks the GPU), DC-MPC's per-call speed on the GPU (eager, compiled steps, the planning call as a CUDA graph) and env
# steps per second on dm_control walker-walk at the paper's sizes, then Dreamer's, then bf16. Everything goes to
# $OUT/gpu_check.log (default /tmp).
#
# On a machine with a normal Python environment, `pip install -e ".[tests]"` is all it needs. On a machine that has
# PyTorch but no package index, the other packages' wheels can be unpacked into .devsite (ignored by git; put on
# PYTHONPATH below), made elsewhere with:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       stable-baselines3==2.9.2 gymnasium==1.4.0 farama-notifications==0.0.6 shimmy==2.0.1 dm-control==1.0.50 \
#       dm-env==1.6 dm-tree==0.1.10 mujoco==3.17.0 pyopengl==3.1.10 glfw==2.11.0
#   mkdir .devsite && for w in .whl/*.whl; do unzip -q -o "$w" -d .devsite; done
# and .gl can hold the EGL loader packages MuJoCo's headless rendering needs (Debian's libvulkan1 libegl1 libglvnd0
# libopengl0 libgl1 libglx0 libgles2, from `apt-get download`); they are unpacked below.
set -u
deadline=$((SECONDS + ${1:-520}))
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl PYTHONPATH="$PWD:$PWD/.devsite"
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$vendor"

step() {  # step NAME LIMIT COMMAND...: run COMMAND for at most LIMIT seconds, or what is left before the deadline
    local name=$1 limit=$2 left=$((deadline - SECONDS))
    shift 2
    if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]] && [ "$name" != imports ]; then
        return
    fi
    ((left < limit)) && limit=$left
    if ((limit < 15)); then
        echo "== $name: skipped, $left s left"
        return
    fi
    echo "== $name (limit $limit s): $*"
    local start=$SECONDS
    timeout "$limit" "$@"
    echo "== $name: exit $? after $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
step imports 60 python3 -c "
import torch, stable_baselines3, gymnasium, dm_control, mujoco, sb3_worldmodels
print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'sb3', stable_baselines3.__version__,
      'mujoco', mujoco.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))
import shimmy; gymnasium.register_envs(shimmy)
env = gymnasium.make('sb3_worldmodels/dmc-walker-walk-pixels-v0'); obs, _ = env.reset(seed=0)
print('pixel walker frame', obs.shape, obs.dtype, 'mean', obs.mean())
" || exit 1

step cuda-tests 150 python3 -m pytest tests/integration/test_cuda.py -n 4 -q -rfEs -p no:cacheprovider --durations=5
# The rest of the suite, on CUDA (rl_zoo3 is not on the machine: the Zoo and Hub tests are left out).
step suite-on-cuda 150 python3 -m pytest tests -n 8 -q -rfE -p no:cacheprovider --ignore=tests/integration/test_zoo.py \
    --ignore=tests/integration/test_hub.py --ignore=tests/integration/test_cuda.py --ignore=tests/learning/test_learning.py --durations=5
cd benchmarks
step dcmpc-speed-fp32 50 python3 dcmpc_speed.py --device cuda --repeats 20 --threads 4
step dcmpc-speed-compiled 90 python3 dcmpc_speed.py --device cuda --repeats 20 --threads 4 --compile-planner
step dcmpc-speed-graph 60 python3 dcmpc_speed.py --device cuda --repeats 20 --threads 4 --cuda-graph-planner
step dcmpc-speed-graph-compiled 90 python3 dcmpc_speed.py --device cuda --repeats 20 --threads 4 --cuda-graph-planner \
    --compile-planner
step walker-dcmpc 75 python3 walker_steps.py --algo dcmpc
step walker-dcmpc-compiled 90 python3 walker_steps.py --algo dcmpc --compile-planner
step walker-dcmpc-graph 90 python3 walker_steps.py --algo dcmpc --cuda-graph-planner
step walker-dcmpc-graph-compiled 100 python3 walker_steps.py --algo dcmpc --cuda-graph-planner --compile-planner
step dreamer-speed-fp32 50 python3 dreamer_speed.py --device cuda --repeats 5 --threads 4
step walker-dreamer-pixels 100 python3 walker_steps.py --algo dreamer --pixels
step walker-dreamer-vector 80 python3 walker_steps.py --algo dreamer
step dreamer-speed-vector 40 python3 dreamer_speed.py --device cuda --size paper-vector --repeats 5 --threads 4
step dcmpc-speed-bf16 50 python3 dcmpc_speed.py --device cuda --repeats 20 --threads 4 --mixed-precision bf16
step dreamer-speed-bf16 45 python3 dreamer_speed.py --device cuda --repeats 5 --threads 4 --mixed-precision bf16
cd ..
echo "== done after $SECONDS s"
