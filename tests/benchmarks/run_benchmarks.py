"""Benchmarks for the README (issue #3). Not unit tests: run by hand, prints a Markdown table.

    python tests/benchmarks/run_benchmarks.py            # all, ~10 min on 2 CPU cores
    python tests/benchmarks/run_benchmarks.py attention  # one of: cli, run, rss, attention, draft, segments, ltx2

Each compares generate_video.py with the direct diffusers way of doing the same job, in one run,
as ratios. Peak memory is each child process's own ru_maxrss (os.wait4), so runs don't mix.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
PY = sys.executable


def child(argv, env=None):
    """(wall seconds, peak RSS GiB, returncode) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, **(env or {})))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 2):
        raise RuntimeError(f"{argv[:3]} failed ({code}): {err[-2000:]}")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 2**30
    return wall, rss, code


def bench_cli(rows):
    base = [child([PY, "-c", "import argparse"])[0] for _ in range(7)]
    helps = [child([PY, "generate_video.py", "--help"])[0] for _ in range(7)]
    errors = [child([PY, "generate_video.py", "--image", "x.png", "--prompt", "p", "--steps", "0"])[0] for _ in range(7)]
    b = statistics.median(base)
    rows.append(("`--help` vs `python -c 'import argparse'`", f"{statistics.median(helps):.3f} s vs {b:.3f} s",
                 f"{statistics.median(helps) / b:.2f}x", "<= 2x"))
    # huggingface_hub's own CLI, installed beside us: the issue-22 bar is half its time
    hf = [child([str(Path(PY).with_name("hf")), "--help"])[0] for _ in range(7)]
    rows.append(("`--help` vs `hf --help` (huggingface_hub's CLI)",
                 f"{statistics.median(helps):.3f} s vs {statistics.median(hf):.3f} s",
                 f"{statistics.median(helps) / statistics.median(hf):.2f}x", "< 0.5x"))
    rows.append(("argument error vs bare argparse", f"{statistics.median(errors):.3f} s vs {b:.3f} s",
                 f"{statistics.median(errors) / b:.2f}x", "<= 2x"))


def tiny_model(tmp):
    import generate_video as gv

    folder = Path(tmp) / "tiny_i2v"
    gv.tiny_ltx_pipeline("LTXImageToVideoPipeline").save_pretrained(folder)
    from conftest import make_image

    image = make_image(Path(tmp) / "in.png", 1920, 1080)
    return folder, image


def compare(tmp, folder, image, width, height, frames, steps, guidance, repeats):
    script, direct = [], []
    for i in range(repeats):
        out = Path(tmp) / f"s{i}.mp4"
        script.append(child([PY, "generate_video.py", "--image", str(image), "--prompt", "a boat drifts at sunset",
                             "--model", str(folder), "--width", str(width), "--height", str(height), "--num-frames",
                             str(frames), "--steps", str(steps), "--guidance-scale", str(guidance), "--seed", "0",
                             "--overwrite", "-q", "-o", str(out)]))
        # diffusers needs multiples of 32: the direct way generates 1920x1088 for 1080p.
        direct.append(child([PY, "tests/benchmarks/direct_diffusers.py", str(folder), str(image),
                             str(Path(tmp) / f"d{i}.mp4"), str(-(-width // 32) * 32), str(-(-height // 32) * 32),
                             str(frames), str(steps), str(guidance)]))
    return script, direct


def bench_run(rows):
    with tempfile.TemporaryDirectory() as tmp:
        folder, image = tiny_model(tmp)
        script, direct = compare(tmp, folder, image, 768, 512, 49, 8, 3.0, 5)
    s, d = statistics.median(w for w, _, _ in script), statistics.median(w for w, _, _ in direct)
    rows.append(("whole run, 768x512 x 49 frames, 8 steps, CFG (median of 5)", f"{s:.2f} s vs {d:.2f} s",
                 f"{s / d:.2f}x", "<= 1.05x"))


def bench_rss(rows):
    with tempfile.TemporaryDirectory() as tmp:
        folder, image = tiny_model(tmp)
        script, direct = compare(tmp, folder, image, 1920, 1080, 121, 1, 1.0, 1)
    s, d = script[0][1], direct[0][1]
    rows.append(("peak RSS, 1920x1080 x 121 frames, 1 step", f"{s:.2f} GiB vs {d:.2f} GiB", f"{s / d:.2f}x", "<= 0.5x"))


ATTENTION_CHILD = """
import sys, time, torch
sys.path.insert(0, {root!r})
import generate_video as gv
tokens, mode = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
q, k, v = (torch.randn(1, 32, tokens, 64) for _ in range(3))
rows = gv.attention_chunk_rows(tokens, 32, 2**30)
def run():
    if mode == "math":
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return gv.chunked_attention(q, k, v, None, rows)
run()
t0 = time.perf_counter(); run(); print(time.perf_counter() - t0, rows)
"""


def bench_attention(rows):
    code = ATTENTION_CHILD.format(root=str(ROOT))
    for tokens in (8160,):
        results = {}
        for mode in ("math", "chunked"):
            out = subprocess.run([PY, "-c", code, str(tokens), mode], capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(out.stderr[-2000:])
            seconds, chunk = out.stdout.split()
            wall, rss, _ = child([PY, "-c", code, str(tokens), mode])
            results[mode] = (float(seconds), rss, chunk)
        (mt, mr, _), (ct, cr, chunk) = results["math"], results["chunked"]
        rows.append((f"attention 32 heads x 64, {tokens:,} tokens, fp32 CPU: peak RSS (chunk {chunk} rows)",
                     f"{cr:.2f} GiB vs {mr:.2f} GiB", f"{cr / mr:.3f}x", "<= 1/8 (0.125x)"))
        rows.append((f"attention {tokens:,} tokens: time per call", f"{ct:.2f} s vs {mt:.2f} s", f"{ct / mt:.2f}x",
                     "<= 1.15x"))


def tiny_fast_models(tmp: Path):
    """The tiny distilled LTXConditionPipeline and its latent upsampler, saved to tmp/cond and
    tmp/up; returns the pipeline."""
    import generate_video as gv
    from diffusers import LTXLatentUpsamplePipeline

    cond = gv.tiny_ltx_pipeline("LTXConditionPipeline")
    cond.save_pretrained(tmp / "cond")
    LTXLatentUpsamplePipeline(vae=cond.vae, latent_upsampler=gv.tiny_latent_upsampler()).save_pretrained(tmp / "up")
    return cond


def bench_draft(rows):
    """Draft, then its final, against the whole fast path: tiny models at the real 1080p x 121
    frames (wall time of each command, model load included), and the FLOP plan of the real one."""
    import generate_video as gv
    from conftest import make_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cond = tiny_fast_models(tmp)
        image = make_image(tmp / "in.png", 1920, 1080)
        base = [PY, "generate_video.py", "--image", str(image), "--prompt", "a boat", "--model", str(tmp / "cond"),
                "--upsampler", str(tmp / "up"), "--seed", "1", "-q", "--overwrite"]
        draft = statistics.median(child(base + ["--draft", "-o", str(tmp / "d.mp4")])[0] for _ in range(3))
        final = statistics.median(child([PY, "generate_video.py", "--from-draft", str(tmp / "d.json"), "-q",
                                         "--overwrite", "-o", str(tmp / "f.mp4")])[0] for _ in range(3))
        full = statistics.median(child(base + ["-o", str(tmp / "x.mp4")])[0] for _ in range(3))
        rows.append(("tiny model, 1920x1080 x 121: draft / final from it vs whole fast path (wall, 3 runs)",
                     f"{draft:.1f} s / {final:.1f} s vs {full:.1f} s", f"{draft / full:.2f}x / {final / full:.2f}x",
                     "draft << full; final < full"))
        real = make_image(tmp / "real.png", 1920, 1080)
        log = gv.Log(gv.LOG_QUIET)
        jobs = {kind: gv.plan_job(gv.Request(image=real, prompt="p", output=tmp / f"{kind}.mp4", draft=kind == "draft"),
                                  log) for kind in ("draft", "full")}
        d = sum(s.tflop for s in jobs["draft"].stages) + gv.decode_tflop(jobs["draft"])
        f = sum(s.tflop for s in jobs["full"].stages[1:]) + gv.decode_tflop(jobs["full"])
        t = sum(s.tflop for s in jobs["full"].stages) + gv.decode_tflop(jobs["full"])
        rows.append(("real default model, 5 s of 1080p: planned TFLOP of draft / final from it vs whole (upsample "
                     "not counted)", f"{d:,.0f} / {f:,.0f} vs {t:,.0f}", f"{d / t:.2f}x / {f / t:.2f}x", "—"))


def jumps(frames) -> tuple[float, float]:
    """(worst, median) mean absolute change between consecutive frames: a seam is a jump."""
    import numpy as np

    d = [float(np.abs(b.astype(float) - a.astype(float)).mean()) for a, b in zip(frames, frames[1:])]
    return max(d), statistics.median(d)


def bench_segments(rows):
    """Three prompts, one long clip, tiny models at 192x128: our chained condition windows vs
    diffusers' LTXI2VLongMultiPromptPipeline (sliding windows, 24-frame overlap) at the same size
    and frame count. Cost: transformer tokens processed; seams: worst frame-to-frame jump over the
    median one."""
    import numpy as np
    import torch
    import generate_video as gv
    from conftest import make_image, probe
    from diffusers import LTXVideoTransformer3DModel
    from diffusers.pipelines.ltx.pipeline_ltx_i2v_long_multi_prompt import LTXI2VLongMultiPromptPipeline

    tokens = []
    real = LTXVideoTransformer3DModel.forward

    def counting(self, hidden_states, *a, **k):
        tokens.append(hidden_states.shape[0] * hidden_states.shape[1])
        return real(self, hidden_states, *a, **k)

    LTXVideoTransformer3DModel.forward = counting
    prompts = ["a boat leaves the harbour", "it sails past the lighthouse", "it reaches the open sea"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cond = tiny_fast_models(tmp)
        image = make_image(tmp / "in.png", 192, 128)
        argv = ["--image", str(image), "--num-frames", "73", "--width", "192", "--height", "128", "--seed", "5",
                "--model", str(tmp / "cond"), "--upsampler", str(tmp / "up"), "-o", str(tmp / "ours.mp4"), "-q"]
        for p in prompts:
            argv += ["--segment-prompt", p]
        t0 = time.perf_counter()
        assert gv.main(argv) == 0
        ours_s, ours_tokens = time.perf_counter() - t0, sum(tokens)
        ours = probe(tmp / "ours.mp4")["frames"]
        tokens.clear()
        pipe = LTXI2VLongMultiPromptPipeline(scheduler=cond.scheduler, vae=cond.vae, text_encoder=cond.text_encoder,
                                             tokenizer=cond.tokenizer, transformer=cond.transformer)
        from PIL import Image

        t0 = time.perf_counter()
        video = pipe(prompt=" | ".join(prompts), height=128, width=192, num_frames=len(ours), seed=5,
                     cond_image=Image.open(image).convert("RGB"), temporal_tile_size=40, temporal_overlap=24,
                     num_inference_steps=8, output_type="np").frames[0]
        theirs_s, theirs_tokens = time.perf_counter() - t0, sum(tokens)
        theirs = [(np.clip(f, 0, 1) * 255).round().astype(np.uint8) for f in video]
    LTXVideoTransformer3DModel.forward = real
    (ow, om), (tw, tm) = jumps(ours), jumps(theirs)
    rows.append((f"3 prompts, {len(ours)} frames at 192x128, tiny models: transformer tokens, chained windows vs "
                 "LTXI2VLongMultiPromptPipeline", f"{ours_tokens:,} vs {theirs_tokens:,}",
                 f"{ours_tokens / theirs_tokens:.2f}x", "same cost or less"))
    rows.append(("same: worst frame-to-frame jump / median jump (a seam shows as a large ratio)",
                 f"{ow / om:.2f} vs {tw / tm:.2f}", f"{(ow / om) / (tw / tm):.2f}x", "<= 1x"))
    rows.append(("same: wall time on this CPU (model load included for ours)", f"{ours_s:.1f} s vs {theirs_s:.1f} s",
                 f"{ours_s / theirs_s:.2f}x", "—"))


M4_MAX_BF16_TFLOPS = 13.7  # measured elsewhere (utensils/mold); the README's projections use it


def bench_ltx2(rows):
    """LTX-2 beside LTX-Video: the planner's FLOPs and projected M4 Max minutes for 5 s at 720p and
    1080p; which quantization the plan picks per Mac size; on tiny LTX-2 models, int8/int4 weight
    bytes and PSNR against bf16 (3 seeds), and a run's wall time against a direct diffusers call."""
    import numpy as np
    import torch

    import generate_video as gv
    from conftest import make_image
    import fake_repos as fr

    tmp = Path(tempfile.mkdtemp())
    image = make_image(tmp / "in.png", 1920, 1080)
    for res in ("720p", "1080p"):
        for model, preset in (("ltx-distilled", "fast"), ("ltx2", "fast"), ("ltx2-dev", "quality"),
                              ("ltx2.5", "fast"), ("ltx2.5-dev", "quality")):
            job = gv.plan_job(gv.Request(image=image, prompt="p", output=tmp / "o.mp4", model=model, preset=preset,
                                         resolution=res, duration=5.0), gv.Log(0))
            total = sum(s.tflop for s in job.stages) + gv.decode_tflop(job)
            minutes = gv.estimate_seconds(job, M4_MAX_BF16_TFLOPS) / 60
            rows.append((f"projection: {model} ({preset}), 5 s of {res}: TFLOP and M4 Max minutes "
                         f"(at {M4_MAX_BF16_TFLOPS} TFLOPS x the plan's efficiencies)",
                         f"{total:,.0f} TFLOP", f"{minutes:.1f} min", "—"))
    for model, res, gb in [(m, r, gb) for m in ("ltx2", "ltx2.5") for r in ("720p", "1080p")
                           for gb in (16, 24, 32, 36, 48, 64, 96, 128)]:
        req = gv.Request(image=image, prompt="p", output=tmp / "o.mp4", model=model, duration=5.0, resolution=res)
        job = gv.plan_job(req, gv.Log(0))
        try:
            plan = gv.plan_memory(job, job.dims, "mps", 2, int(gb * gv.MPS_WORKING_SET * 2**30), 2**30, req)
            got = f"{plan.quantize}, {plan.peak_gib:.1f} GiB peak, offload {plan.offload}"
        except gv.UsageError as e:
            got = "refused: " + str(e)[:60]
        rows.append((f"plan: {model}, 5 s of {res} on a {gb} GB Mac (budget {gb * gv.MPS_WORKING_SET:.0f} GiB)", got,
                     "—", "fits or says which Mac does"))

    folder = tmp / "ltx2"
    fr.save_ltx2(fr.ltx2_pipeline(), folder, fr.ltx2_upsampler())

    def nbytes(t):
        """Storage bytes of a tensor, through quanto's wrapper tensors (packed int4 included)."""
        if hasattr(t, "__tensor_flatten__"):
            return sum(nbytes(getattr(t, k)) for k in t.__tensor_flatten__()[0])
        return t.untyped_storage().nbytes()

    psnr = {"int8": [], "int4": []}
    for seed in (1, 2, 3):
        frames = {}
        for q in ("none", "int8", "int4"):
            out = tmp / f"q{q}{seed}.mp4"
            argv = [PY, "generate_video.py", "--image", str(image), "--prompt", "waves crash on the rocks",
                    "--model", str(folder), "--width", "96", "--height", "64", "--num-frames", "17", "--steps", "4",
                    "--dtype", "bfloat16", "--quantize", q, "--seed", str(seed), "-o", str(out), "-q"]
            child(argv)
            import imageio_ffmpeg

            reader = imageio_ffmpeg.read_frames(str(out))
            meta = next(reader)
            frames[q] = np.stack([np.frombuffer(f, np.uint8) for f in reader]).astype(float)
        for q in ("int8", "int4"):
            psnr[q].append(10 * np.log10(255**2 / max(((frames[q] - frames["none"]) ** 2).mean(), 1e-9)))
    from optimum.quanto import freeze, qint4, qint8, quantize

    for q, qtype in (("int8", qint8), ("int4", qint4)):
        layer = torch.nn.Sequential(torch.nn.Linear(4096, 4096, bias=False)).to(torch.bfloat16)
        quantize(layer, weights=qtype)
        freeze(layer)
        per_weight = nbytes(layer[0].weight) / 4096**2
        rows.append((f"{q} vs bf16: bytes per weight of a real-size layer (4096 x 4096, the transformer's width)",
                     f"{per_weight:.4f} vs 2", f"{per_weight / 2:.3f}x", f"plan assumes {gv.QUANT_BYTES[q]:.4f}"))
        rows.append((f"tiny LTX-2, {q} vs bf16: PSNR of the frames (3 seeds, 17 frames, 4 steps)",
                     ", ".join(f"{v:.1f}" for v in psnr[q]) + " dB", f"{np.mean(psnr[q]):.1f} dB mean", "—"))


def main():
    which = sys.argv[1:] or ["cli", "run", "rss", "attention", "draft", "segments", "ltx2"]
    print("| benchmark | generate_video.py vs direct | ratio | goal |\n|---|---|---|---|", flush=True)
    for name in which:
        rows = []
        globals()[f"bench_{name}"](rows)
        for row in rows:
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
