"""Dreamer's convolution layers on 500 images: backward passes with and without the bias gradient, and the decoder's
last layer as a sub-pixel convolution.

    python benchmarks/adhoc/conv_bias_grad.py [--images 500] [--rounds 5]

``torch.ops.aten.convolution_backward`` with the input, weight and bias gradients in one call (as PyTorch's modules
ask for them) against the input and weight gradients only, plus the bias gradient as a sum; and the forward pass of
the 32-to-3 transposed convolution against ``networks._sub_pixel_convolution``. Channels-last, 2 threads, median of
``--rounds`` calls in turn. "Per-call times at the paper's sizes" in BENCHMARKS.md.
"""

import argparse
import statistics
import time

import torch as th

from sb3_worldmodels.common import networks

# (in, out, kernel, input size, transposed): the encoder's and the decoder's layers at depth 32.
LAYERS = [
    (32, 64, 4, 31, False),
    (64, 128, 4, 14, False),
    (128, 256, 4, 6, False),
    (128, 64, 5, 5, True),
    (64, 32, 6, 13, True),
    (32, 3, 6, 30, True),
]


def milliseconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def layer_times(cin: int, cout: int, k: int, size: int, transposed: bool, images: int, rounds: int) -> dict[str, float]:
    """Median milliseconds of each call for one layer."""
    cl = th.channels_last
    x = th.randn(images, cin, size, size).to(memory_format=cl)
    weight = (th.randn((cin, cout, k, k) if transposed else (cout, cin, k, k)) * 0.05).to(memory_format=cl)
    bias = th.zeros(cout)
    options = ([2, 2], [0, 0], [1, 1], transposed, [0, 0], 1)
    grad = th.randn_like(th.convolution(x, weight, bias, *options))
    calls = {
        "with bias": lambda: th.ops.aten.convolution_backward(grad, x, weight, [cout], *options, [True, True, True]),
        "apart": lambda: (
            th.ops.aten.convolution_backward(grad, x, weight, None, *options, [True, True, False]),
            grad.sum(dim=(0, 2, 3)),
        ),
        "forward": lambda: th.convolution(x, weight, bias, *options),
    }
    if networks._sub_pixel_applies(weight, options):
        calls["sub-pixel forward"] = lambda: networks._sub_pixel_convolution(x, weight, bias, (2, 2))
    times = {name: [] for name in calls}
    for fn in calls.values():
        fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            times[name].append(milliseconds(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    th.set_num_threads(2)
    print("| layer | input + weight + bias gradients (ms) | input + weight gradients, bias as a sum (ms) | forward (ms) |")
    print("| --- | --- | --- | --- |")
    for cin, cout, k, size, transposed in LAYERS:
        median = layer_times(cin, cout, k, size, transposed, args.images, args.rounds)
        forward = f"{median['forward']:.0f}"
        if "sub-pixel forward" in median:
            forward += f" (sub-pixel {median['sub-pixel forward']:.0f})"
        layer = f"{'transposed' if transposed else 'convolution'} {cin} to {cout}, kernel {k}, {size}x{size}"
        print(f"| {layer} | {median['with bias']:.0f} | {median['apart']:.0f} | {forward} |")


if __name__ == "__main__":
    main()
