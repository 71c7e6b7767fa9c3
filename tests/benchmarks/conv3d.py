"""The VAE's conv3d as conv2d against PyTorch's conv3d (README "Kernels"). Not a test.

    python tests/benchmarks/conv3d.py                 # this machine's device, every dtype
    python tests/benchmarks/conv3d.py --device mps    # on a Mac: the numbers auto decides on

Runs generate_video's own self-check (check_conv3d) at the LTX decoders' weight shapes, each at
the side such a layer sees in a 512 px tile (1024 channels: 16 px ... 128 channels: 128 px), 8
output frames, and prints per dtype: the max error against PyTorch's conv3d in float32 (and
PyTorch's own in that dtype), the decoder-weighted
speed ratio and both conv rates in TFLOPS, beside this device's matmul rate. On a CPU this is a
correctness and cost check only: the path exists for MPS, whose conv3d ran at ~6-7% of its
matmul rate before PyTorch moved it onto Metal kernels (pytorch#192213).
"""

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import generate_video as gv  # noqa: E402


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", choices=gv.DEVICES)
    p.add_argument("--dtype", action="append", choices=("bfloat16", "float16", "float32"))
    args = p.parse_args()
    device = gv.pick_device(args.device)
    print(f"{gv.chip_name()}, {platform.system()}, torch {torch.__version__}, device {device}")
    print("| dtype | max error vs float32 (tolerance) | PyTorch's own | conv2d path / conv3d speed | conv3d TFLOPS "
          "| as conv2d TFLOPS | matmul TFLOPS | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.dtype or ("float32", "bfloat16"):
        dtype = getattr(torch, name)
        t0 = time.perf_counter()
        v = gv.check_conv3d(device, dtype, gv.CONV3D_CHECK_SHAPES)
        seconds = time.perf_counter() - t0
        if "speedup" not in v:
            print(f"| {name} | failed: {v['reason']} | | | | | | {seconds:.0f} |")
            continue
        print(f"| {name} | {v['max_error']:.3g} ({v['tolerance']:g}) | {v['stock_max_error']:.3g} | {v['speedup']:.2f}x "
              f"| {v['stock_tflops']:.3g} "
              f"| {v['tflops']:.3g} | {gv.matmul_tflops(device, dtype):.3g} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
