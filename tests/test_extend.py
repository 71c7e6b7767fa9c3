"""Issue 14, part 2: --extend continues any MP4: its last frames condition the start of the new
part; the output is the original, untouched, followed by exactly the new frames."""

import json
import shlex

import numpy as np
import pytest

from conftest import gv, probe, run

FAST = ["--seed", "5"]


def psnr(a, b) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def original(path, frames=25, size=(192, 128), fps=24):
    """Any MP4 (not one of ours): a gradient sliding right, written by ffmpeg directly."""
    import imageio_ffmpeg

    w, h = size
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(frames):
        writer.send(np.ascontiguousarray(np.stack([(xx * 2 + t * 6) % 256, yy * 2 % 256, (xx + yy + t) % 256], -1)
                                         .astype(np.uint8)))
    writer.close()
    return path


def fast(models):
    return ["--model", models["cond"], "--upsampler", models["up"]]


@pytest.fixture
def video_conditions(monkeypatch):
    from diffusers import LTXConditionPipeline

    seen = []
    real = LTXConditionPipeline.__call__

    def spy(self, *a, **k):
        seen.append([(c.frame_index, len(c.video) if c.video else None) for c in k.get("conditions") or []])
        return real(self, *a, **k)

    monkeypatch.setattr(LTXConditionPipeline, "__call__", spy)
    return seen


def test_an_extension_keeps_the_original_and_adds_exactly_the_new_frames(models, tmp_path, video_conditions, capsys):
    src = original(tmp_path / "orig.mp4")
    out = tmp_path / "longer.mp4"
    rc, cap = run(["--extend", src, "--prompt", "the camera keeps moving", "--num-frames", "16", "-o", out]
                  + fast(models) + FAST, capsys)
    assert rc == 0, cap.err
    assert video_conditions == [[(0, 17)], [(0, 17)]]  # the last 17 frames, at frame 0, in both stages
    got, before = probe(out), probe(src)
    assert got["size"] == (192, 128) and got["fps"] == 24
    assert len(got["frames"]) == 25 + 16
    seam = [psnr(a, b) for a, b in zip(got["frames"][:25], before["frames"])]
    assert min(seam) > 35, seam  # the original's frames, re-encoded, nothing else
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["extend"]["original_frames"] == 25 and side["extend"]["new_frames"] == 16
    assert side["output_frames"] == 41 and side["extend"]["sha256"] == gv.file_sha256(src)
    args = shlex.split(side["command"])[2:]  # the same video again
    assert run(args + ["-o", str(tmp_path / "again.mp4"), "-q"])[0] == 0
    assert all(np.array_equal(a, b) for a, b in zip(got["frames"], probe(tmp_path / "again.mp4")["frames"]))

    # chained: extend the extension
    rc, cap = run(["--extend", out, "--prompt", "p", "--num-frames", "16", "-o", tmp_path / "longest.mp4"]
                  + fast(models) + FAST, capsys)
    assert rc == 0 and len(probe(tmp_path / "longest.mp4")["frames"]) == 41 + 16


def test_extend_only_writes_the_new_part(models, tmp_path, capsys):
    src = original(tmp_path / "orig.mp4")
    rc, cap = run(["--extend", src, "--extend-only", "--prompt", "p", "--num-frames", "10", "-o", tmp_path / "new.mp4"]
                  + fast(models) + FAST, capsys)
    assert rc == 0, cap.err
    assert "16 new frames" in cap.err  # 17 + 10 rounded up to 33 = 8k+1
    assert len(probe(tmp_path / "new.mp4")["frames"]) == 16


@pytest.mark.parametrize("extra, message", [
    (["--width", "96"], "--extend keeps the original's size"),
    (["--fps", "30"], "--extend keeps the original's 24 fps"),
    (["--draft"], "neither --draft nor --from-draft"),
])
def test_extend_refusals(models, tmp_path, capsys, extra, message):
    src = original(tmp_path / "orig.mp4", frames=9)
    rc, cap = run(["--extend", src, "--prompt", "p", "-o", tmp_path / "x.mp4"] + fast(models) + extra, capsys)
    assert rc == 2 and message in cap.err and "loading" not in cap.err, cap.err


def test_extend_needs_a_video_and_the_condition_pipeline(models, tmp_path, capsys):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    rc, cap = run(["--extend", not_video, "--prompt", "p", "-o", tmp_path / "x.mp4"] + fast(models), capsys)
    assert rc == 2 and "not a readable video" in cap.err
    src = original(tmp_path / "orig.mp4", frames=9)
    rc, cap = run(["--extend", src, "--prompt", "p", "--model", models["i2v"], "-o", tmp_path / "x.mp4"], capsys)
    assert rc == 2 and "--extend needs a condition pipeline" in cap.err
    # the default model follows the preset: --preset quality's (the 13B distilled) has a condition pipeline too
    job = gv.plan_job(gv.Request(image=src, prompt="p", output=tmp_path / "x.mp4", extend=src, preset="quality",
                                 memory_budget_gb=96), gv.Log(0))
    assert job.spec.alias == gv.DEFAULT_MODEL_QUALITY == "ltx-13b-distilled" and job.extend.context == 9
    rc, cap = run(["--image", src, "--prompt", "p", "--extend-only", "-o", tmp_path / "x.mp4"], capsys)
    assert rc == 2 and "--extend-only goes with --extend" in cap.err


def test_the_context_frames_are_prepared_as_lightricks_prepares_every_conditioning_frame(models, tmp_path,
                                                                                          monkeypatch, capsys):
    """ltx_video/inference.py's load_media_file runs every frame of a conditioning video through
    load_image_to_tensor_with_resize_and_crop: crop, 3x3 blur (sigma 1), H.264 at CRF 29, resize."""
    from diffusers import LTXConditionPipeline
    from PIL import Image

    seen = []
    real = LTXConditionPipeline.__call__

    def spy(self, *a, **k):
        seen.append([np.asarray(f) for f in k["conditions"][0].video])
        return real(self, *a, **k)

    monkeypatch.setattr(LTXConditionPipeline, "__call__", spy)
    src = original(tmp_path / "orig.mp4")
    rc, cap = run(["--extend", src, "--prompt", "p", "--num-frames", "8", "-o", tmp_path / "x.mp4", "-q"]
                  + fast(models) + FAST, capsys)
    assert rc == 0, cap.err
    tail = probe(src)["frames"][-17:]
    expected = [np.asarray(gv.condition_frame(Image.fromarray(f), 192, 128, 1.0, 29)) for f in tail]
    plain = [np.asarray(Image.fromarray(f)) for f in tail]
    assert len(seen[0]) == 17 and all(np.array_equal(a, b) for a, b in zip(seen[0], expected))
    assert not any(np.array_equal(a, b) for a, b in zip(seen[0], plain))  # blurred and compressed, each


def test_the_plan_of_an_extension_states_the_length_of_the_result(models, tmp_path):
    src = original(tmp_path / "clip.mp4")  # 25 frames
    job = gv.plan_job(gv.Request(image=src, prompt="p", output=tmp_path / "o.mp4", extend=src, num_frames=16,
                                 model=str(models["cond"])), gv.Log(0))
    plan = gv.MemoryPlan(2**34, None, False, False, "none", {}, 0.0, 0)
    first = gv.describe_plan(job, plan, "cpu", "float32")[0]
    assert "41 frames at 24 fps (1.71 s) (33 generated, 17 of them the original's last)" in first, first
