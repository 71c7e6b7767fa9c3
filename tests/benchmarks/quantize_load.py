"""Peak memory of loading an LTX-2 transformer quantized as it loads (README "LTX-2"). Not a test.

    python tests/benchmarks/quantize_load.py      # ~2 min on 2 CPU cores, 1 GB of disk in a temp folder

A mid-size LTX-2 transformer (the real config at hidden 1024, 16 blocks: 0.41B parameters, 0.76 GiB
in bf16) is saved as sharded safetensors, then loaded in a fresh process per setting while a thread
samples the process's anonymous memory (/proc/self/smaps_rollup, Linux): the safetensors files'
pages are the OS's page cache, which it can drop, so they are not counted. Each setting is loaded
through generate_video.load_pipeline's own call, with glibc's default allocator and with the fixed
mmap threshold generate_video sets (return_freed_memory).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CHILD = r"""
import sys, threading, time, torch, diffusers
sys.path.insert(0, {root!r})
import generate_video as gv
folder, q, fixed = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def anon():
    return next(int(l.split()[1]) for l in open("/proc/self/smaps_rollup") if l.startswith("Anonymous:")) / 2**20
peak, stop = [0.0], [False]
def watch():
    while not stop[0]:
        peak[0] = max(peak[0], anon()); time.sleep(0.002)
if fixed:
    gv.return_freed_memory()
base = anon()
threading.Thread(target=watch, daemon=True).start()
kw = {{}} if q == "none" else {{"quantization_config": diffusers.QuantoConfig(weights_dtype=q)}}
m = diffusers.LTX2VideoTransformer3DModel.from_pretrained(folder, torch_dtype=torch.bfloat16, **kw)
time.sleep(0.05); stop[0] = True
print(f"{{peak[0] - base:.2f}}")
"""


def main():
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    import fake_repos as fr

    tmp = Path(tempfile.mkdtemp())
    cfg = dict(fr.REAL_LTX2_TRANSFORMER, num_attention_heads=8, attention_head_dim=128, cross_attention_dim=1024,
               audio_num_attention_heads=8, audio_attention_head_dim=64, audio_cross_attention_dim=512,
               num_layers=16, caption_channels=1024)
    with torch.device("meta"):
        model = LTX2VideoTransformer3DModel(**cfg)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(tmp / "transformer", max_shard_size="500MB")
    del model
    print(f"| load ({params / 1e9:.2f}B params, {params * 2 / 2**30:.2f} GiB in bf16) | glibc default | "
          "fixed threshold (ours) |\n|---|---|---|")
    script = tmp / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    for q in ("none", "int8", "int4"):
        peaks = [subprocess.run([sys.executable, str(script), str(tmp / "transformer"), q, fixed], capture_output=True,
                                text=True, check=True).stdout.strip().splitlines()[-1] for fixed in ("0", "1")]
        print(f"| {q}: peak anonymous memory, GiB | {peaks[0]} | {peaks[1]} |", flush=True)


if __name__ == "__main__":
    main()
