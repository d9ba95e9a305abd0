"""CNN encoder and decoder of Dreamer (depth 32), forward and backward on 500 images, NCHW against channels-last.

    python benchmarks/adhoc/conv_layout.py

"Per-call times at the paper's sizes" in BENCHMARKS.md (the encoder / decoder milliseconds). The layout is now
fixed inside the modules, so the "contiguous" rows convert them back to NCHW for the comparison.
"""

import time

import torch as th

from sb3_worldmodels.dreamer.policies import ConvDecoder, ConvEncoder

th.set_num_threads(2)
th.manual_seed(0)
N = 500
enc, dec = ConvEncoder(3, 32), ConvDecoder(230, 3, 32)
img = th.rand(N, 3, 64, 64) - 0.5
feat = th.randn(N, 230)


def med(f, reps=5):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1000


for cl in (False, True, False, True):
    fmt = th.channels_last if cl else th.contiguous_format
    enc.to(memory_format=fmt)
    dec.to(memory_format=fmt)
    x = img.contiguous(memory_format=fmt)
    te = med(lambda x=x: enc(x).square().mean().backward())
    td = med(lambda: (dec(feat) - img).square().mean().backward())
    print("cl" if cl else "contig", f"enc {te:.0f} ms  dec {td:.0f} ms", flush=True)
enc.to(memory_format=th.contiguous_format)
dec.to(memory_format=th.contiguous_format)
ya, za = enc(img), dec(feat)
enc.to(memory_format=th.channels_last)
dec.to(memory_format=th.channels_last)
yb, zb = enc(img.contiguous(memory_format=th.channels_last)), dec(feat)
print("fwd rel enc", ((ya - yb).norm() / ya.norm()).item(), "dec", ((za - zb).norm() / za.norm()).item())
