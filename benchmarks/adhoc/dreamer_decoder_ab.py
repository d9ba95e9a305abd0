"""Dreamer's image decoder with its first layer as oneDNN's transposed convolution against the matrix product it is,
alternately in one process (paper pixel sizes, 2 threads).

    python benchmarks/adhoc/dreamer_decoder_ab.py [--rounds 4] [--malloc keep-freed|default]

"Per-call times at the paper's sizes" in BENCHMARKS.md. "transposed convolution" is the decoder as it
was before the change (the 1x1 input through ``nn.ConvTranspose2d``); "product" is the current ``ConvDecoder.forward``.
Each round times the decoder alone (forward and backward of 2500 features, median of 3) and one whole update with
each, A and B alternately, on the same model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch as th

sys.path.insert(0, str(Path(__file__).parents[1]))
import dreamer_speed  # noqa: E402
from _timing import add_malloc_option, apply_malloc_option, median_time  # noqa: E402

from sb3_worldmodels.dreamer.policies import ConvDecoder  # noqa: E402

product_forward = ConvDecoder.forward


def convolution_forward(self: ConvDecoder, feature: th.Tensor) -> th.Tensor:
    """The decoder before the change."""
    x = self.dense(feature).view(-1, self.embed_dim, 1, 1).contiguous(memory_format=th.channels_last)
    return self.net(x).float().contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    add_malloc_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    th.set_num_threads(2)
    model = dreamer_speed.ready_for_updates("paper")
    decoder = next(iter(model.policy.decoders.values()))
    feature = th.randn(2500, decoder.dense.in_features)

    def decoder_step() -> None:
        decoder(feature).square().mean().backward()

    def update() -> None:
        model.train(gradient_steps=1, batch_size=model.batch_size)

    variants = {"transposed convolution": convolution_forward, "product": product_forward}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, forward in variants.items():
            ConvDecoder.forward = forward
            times.setdefault(("decoder forward and backward", name), []).append(median_time(decoder_step, 3) * 1e3)
            times.setdefault(("update", name), []).append(median_time(update, 1) * 1e3)
    ConvDecoder.forward = product_forward
    print(f"malloc={args.malloc} rounds={args.rounds} torch={th.__version__}")
    print("| call | transposed convolution (ms, median of rounds) | product (ms) | product / convolution (median of ratios) |")
    print("| --- | --- | --- | --- |")
    for call in ("decoder forward and backward", "update"):
        a, b = times[(call, "transposed convolution")], times[(call, "product")]
        ratio = statistics.median(y / x for x, y in zip(a, b, strict=True))
        print(f"| {call} | {statistics.median(a):.1f} | {statistics.median(b):.1f} | {ratio:.2f} |")
        print(f"  per round: convolution {[round(x) for x in a]}, product {[round(x) for x in b]}")


if __name__ == "__main__":
    main()
