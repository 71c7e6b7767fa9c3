"""The memory plan checked at real sizes (issue 10). A benchmark, not a unit test.

    python tests/benchmarks/real_size.py              # everything, ~10 min on 2 CPU cores
    python tests/benchmarks/real_size.py forward      # only items whose name contains "forward"

Builds the real architectures (configs copied from the real repos, tests/fake_repos.py) with
random weights straight into bfloat16 — meta-device init, then materialised; never an fp32 copy —
and measures, each in a fresh process, the peak-RSS increase of: each component's weights, T5
encoding a prompt, one transformer forward (stock and chunked attention), and the VAE decoding
one 512x512 tile. Next to each figure: what generate_video's planner estimates for the same thing,
and the ratio. Then the plan's verdict for the default job (5 s of 1080p) on Macs of 16-128 GB.

Transformer forwards run a few of the real blocks at the real width (a forward's activations are
freed block by block, so the peak does not grow with depth: measured at two depths below), at
token counts this CPU affords; the tile decode runs 2 and 3 latent frames and extrapolates
linearly to the 17 frames of a temporal tile.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
GIB = 2**30


# ---------------------------------------------------------------------------------------------
# Child side: build, run, report the peak-RSS increase.

def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def materialize(factory):
    """A module built on the meta device, cast to bf16 there, then given real (random) storage."""
    import torch

    with torch.device("meta"):
        module = factory()
    module = module.to(torch.bfloat16).to_empty(device="cpu").eval()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.02)
        for name, b in module.named_buffers():
            if b.is_floating_point():
                b.fill_(1.0 if "std" in name else 0.0)
    return module


def t5():
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=32128, d_model=4096, d_ff=10240, d_kv=64, num_layers=24, num_heads=64,
                   feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True)
    return materialize(lambda: T5EncoderModel(cfg))


def transformer(layers=None):
    from diffusers import LTXVideoTransformer3DModel
    from fake_repos import REAL_TRANSFORMER_2B

    cfg = dict(REAL_TRANSFORMER_2B, **({"num_layers": layers} if layers else {}))
    return materialize(lambda: LTXVideoTransformer3DModel(**cfg))


def vae():
    from diffusers import AutoencoderKLLTXVideo
    from fake_repos import REAL_VAE_095

    return materialize(lambda: AutoencoderKLLTXVideo(**REAL_VAE_095))


def upsampler():
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    return materialize(lambda: LTXLatentUpsamplerModel(in_channels=128, mid_channels=512, num_blocks_per_stage=4))


def forward(tokens_per_frame: tuple[int, int, int], layers: int, chunk: int | None):
    """One forward of the fast path's stage-2 kind: batch 1 (guidance 1), per-token timesteps
    (LTXConditionPipeline), 256 text tokens."""
    import torch

    import generate_video as gv

    frames, h, w = tokens_per_frame
    model = transformer(layers)
    if chunk:
        model.set_attn_processor(gv.ltx_chunked_processor(chunk)())
    tokens = frames * h * w
    x = torch.randn(1, tokens, 128, dtype=torch.bfloat16)
    text = torch.randn(1, 256, 4096, dtype=torch.bfloat16)
    t = torch.full((1, tokens), 500.0)
    base = rss_now()
    t0 = time.perf_counter()
    with torch.inference_mode():
        model(hidden_states=x, encoder_hidden_states=text, timestep=t, encoder_attention_mask=torch.ones(1, 256),
              num_frames=frames, height=h, width=w, return_dict=False)
    return base, time.perf_counter() - t0


def decode_tile(latent_frames: int):
    import torch

    model = vae()
    z = torch.randn(1, 128, latent_frames, 16, 16, dtype=torch.bfloat16)  # one 512x512 px tile
    base = rss_now()
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.decoder(z, torch.tensor([0.05], dtype=torch.bfloat16))
    return base, time.perf_counter() - t0


def t5_encode(length: int):
    """The whole T5 phase: weights, then encoding a prompt and its negative (the activations
    alone are ~0.1-0.2 GiB, within the allocator's noise of a few hundredths of a GiB)."""
    import torch

    base = rss_now()
    model = t5()
    ids = torch.randint(0, 32000, (2, length))  # prompt and negative prompt
    t0 = time.perf_counter()
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return base, time.perf_counter() - t0


def child(item: str) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    import diffusers  # noqa: F401  (import cost out of the measurement)
    import transformers  # noqa: F401

    base = rss_now()
    seconds = 0.0
    kind, _, arg = item.partition(":")
    if kind == "weights":
        {"t5": t5, "transformer": transformer, "vae": vae, "upsampler": upsampler}[arg]()
    elif kind == "t5_encode":
        base, seconds = t5_encode(int(arg))
    elif kind == "forward":
        shape, layers, chunk = arg.split("/")
        base, seconds = forward(tuple(int(v) for v in shape.split("x")), int(layers), int(chunk) or None)
    elif kind == "decode":
        base, seconds = decode_tile(int(arg))
    return {"gib": (peak_rss() - base) / GIB, "seconds": seconds}


# ---------------------------------------------------------------------------------------------
# Parent side: run each item in a fresh process, compare with the planner.

def measure(item: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", item], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{item}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def planner_dims():
    """ModelDims for the default fast model as the plan sees it once the model is cached: real
    configs (the 0.9.5+ VAE with its declared 32x/8x) and the table's parameter counts."""
    import tempfile

    import generate_video as gv
    from fake_repos import REAL_TRANSFORMER_2B, REAL_VAE_095

    folder = Path(tempfile.mkdtemp())
    for name, cfg in (("vae", REAL_VAE_095), ("transformer", REAL_TRANSFORMER_2B)):
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(json.dumps(cfg))
    return gv.model_dims(folder, gv.MODELS["ltx-distilled"])


def default_job(width=1920, height=1080, frames=121):
    import generate_video as gv

    job = gv.reference_job(width, height, frames)
    return job, job.request


def estimate(item: str) -> float:
    """The planner's figure (GiB) for what `item` measures."""
    import generate_video as gv

    dims = planner_dims()
    kind, _, arg = item.partition(":")
    if kind == "weights":
        key = {"t5": "text_encoder", "upsampler": "upsampler"}.get(arg, arg)
        return dims.params[key] * 2 / GIB
    if kind == "t5_encode":  # two prompts (CFG) padded to `arg` tokens
        job, _ = default_job()
        spec = gv.dataclasses.replace(job.spec, pipeline=f"t5-{arg}", guidance=3.0)
        gv.register(spec.pipeline)(type(f"T5x{arg}", (job.spec.family,), {"max_sequence_length": int(arg)}))
        job = gv.dataclasses.replace(job, spec=spec, guidance_scale=3.0)
        parts, _, _ = gv.estimate_memory(job, dims, 2, gv.Savings(64, True), True)
        return parts["text_encoder"]
    if kind == "forward":
        shape, layers, chunk = arg.split("/")
        frames, h, w = (int(v) for v in shape.split("x"))
        job, _ = default_job(w * 32, h * 32, (frames - 1) * 8 + 1)
        job = gv.dataclasses.replace(job, stages=(gv.dataclasses.replace(job.stages[0], width=w * 32, height=h * 32),))
        parts, _, _ = gv.estimate_memory(job, dims, 2, gv.Savings(int(chunk) or None), True)
        return parts["attention"] + parts["activations"]
    if kind == "decode":
        job, _ = default_job(512, 512, (int(arg) - 1) * 8 + 1)
        parts, _, _ = gv.estimate_memory(job, dims, 2, gv.Savings(None, True), True)
        return parts["decode"]
    raise ValueError(item)


ITEMS = [
    "weights:t5", "weights:transformer", "weights:vae", "weights:upsampler",
    "t5_encode:128", "t5_encode:256",
    # 960x544 x 121 frames (stage 1 of the default job: 8,160 tokens) at 2 and 4 blocks, stock and chunked
    "forward:16x17x30/2/0", "forward:16x17x30/4/0", "forward:16x17x30/2/384", "forward:16x17x30/4/384",
    "forward:16x17x30/2/48", "forward:8x15x32/2/96",
    # a longer sequence, chunked as the plan would chunk 1080p
    "forward:16x24x42/2/192", "forward:16x24x42/2/24",
    "decode:3", "decode:16",  # a temporal tile (17 frames); a whole 121-frame tile column
]


def mac_table() -> list[str]:
    import generate_video as gv

    dims = planner_dims()
    job, req = default_job()
    rows = ["| Mac memory | budget (75%) | verdict for 5 s of 1080p (default) | savings chosen | planned peak |",
            "|---|---|---|---|---|"]
    for gb in (16, 24, 32, 64, 128):
        budget = int(gb * 2**30 * gv.MPS_WORKING_SET)
        try:
            plan = gv.plan_memory(job, dims, "mps", 2, budget, 2**30, req)
            savings = (f"attention chunks of {plan.attention_chunk} rows, VAE tiles "
                       f"{'spatial' if plan.vae_spatial_tiling else 'none'}"
                       f"{' + temporal' if plan.vae_temporal_tiling else ''}, offload {plan.offload}")
            rows.append(f"| {gb} GB | {gib(budget):.1f} GiB | fits | {savings} | {plan.peak_gib:.1f} GiB |")
        except gv.UsageError as e:
            rows.append(f"| {gb} GB | {gib(budget):.1f} GiB | refused: {str(e).split(';')[0]} | - | - |")
    return rows


def gib(n: float) -> float:
    return n / GIB


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
        return 0
    wanted = sys.argv[1:]
    items = [i for i in ITEMS if not wanted or any(w in i for w in wanted)]
    print("| item | planner (GiB) | measured (GiB) | measured / planner | seconds |")
    print("|---|---|---|---|---|")
    for item in items:
        m = measure(item)
        est = estimate(item)
        ratio = f"{m['gib'] / est:.2f}" if est else "-"
        print(f"| {item} | {est:.3f} | {m['gib']:.3f} | {ratio} | {m['seconds']:.1f} |", flush=True)
    print()
    print("\n".join(mac_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
