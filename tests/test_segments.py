"""Issue 14, part 3: a prompt per segment. A long clip is windows of one generation's length; each
after the first starts from the previous window's last 17 frames (as --extend), so any length runs
within one window's memory plan."""

import json
import shlex

import numpy as np
import pytest
import torch

from conftest import gv, make_image, probe, run


def fast(models):
    return ["--model", models["cond"], "--upsampler", models["up"], "--width", "192", "--height", "128",
            "--seed", "5"]


def test_three_segments_make_the_frames_asked_and_each_window_gets_its_prompt(models, tmp_path, monkeypatch, capsys):
    from diffusers import LTXConditionPipeline

    encoded, windows = {}, []
    real_encode, real_call = gv.encode_prompts, LTXConditionPipeline.__call__

    def encode(*a, **k):
        cache = real_encode(*a, **k)
        encoded.update(cache)
        return cache

    def call(self, *a, **k):
        conditions = k.get("conditions")
        windows.append((k["prompt_embeds"], k["num_frames"],
                        [len(c.video) if c.video else 1 for c in conditions] if conditions else None))
        return real_call(self, *a, **k)

    monkeypatch.setattr(gv, "encode_prompts", encode)
    monkeypatch.setattr(LTXConditionPipeline, "__call__", call)
    image = make_image(tmp_path / "in.png")
    out = tmp_path / "long.mp4"
    parts = ["a boat leaves the harbour", "it sails past the lighthouse", "it reaches the open sea"]
    argv = ["--image", image, "--num-frames", "73", "-o", out] + fast(models)
    for part in parts:
        argv += ["--segment-prompt", part]
    rc, cap = run(argv, capsys)
    assert rc == 0, cap.err
    assert "3 windows of 41 frames" in cap.err  # 3 x 33 - 2 x 17 = 65 < 73; 3 x 41 - 34 = 89
    got = probe(out)["frames"]
    side = json.loads(out.with_suffix(".json").read_text())
    assert len(got) == side["output_frames"] == 3 * 41 - 2 * 17 == 89
    assert [w[1] for w in windows] == [41] * 6  # two stages per window, every window 41 frames
    assert [w[2] for w in windows] == [None, None, [17], [17], [17], [17]]  # later windows start from 17 frames
    by_prompt = {key[0]: value["prompt_embeds"] for key, value in encoded.items()}
    for window, part in enumerate(parts):
        for stage in (0, 1):
            assert torch.equal(windows[2 * window + stage][0], by_prompt[part])
    assert [s["prompt"] for s in side["segments"]] == parts
    assert [s["new_frames"] for s in side["segments"]] == [41, 24, 24]
    # the reproduce command plans the same windows: the same video
    args = shlex.split(side["command"])[2:]
    assert run(args + ["-o", str(tmp_path / "again.mp4"), "-q"])[0] == 0
    assert all(np.array_equal(a, b) for a, b in zip(got, probe(tmp_path / "again.mp4")["frames"]))


def test_a_long_clip_plans_memory_for_one_window(models, tmp_path, capsys):
    """20 s at 720p: 481 frames, far beyond one generation (257 at most), in windows that each fit."""
    image = make_image(tmp_path / "in.png", 1280, 720)
    job = gv.plan_job(gv.Request(image=image, prompt="", output=tmp_path / "x.mp4", resolution="720p", duration=20,
                                 segment_prompt=("a", "b", "c")), gv.Log(0))
    assert job.out_frames >= 481 and job.num_frames <= 257 and job.windows == 3
    one = gv.plan_job(gv.Request(image=image, prompt="a", output=tmp_path / "y.mp4", resolution="720p",
                                 num_frames=job.num_frames), gv.Log(0))
    import torch as t

    plans = [gv.settle_job(gv.Runtime("cpu", t.bfloat16, gv.Log(0)), j)[0] for j in (job, one)]
    assert plans[0].peak_gib == plans[1].peak_gib


@pytest.mark.parametrize("extra, message", [
    (["--segment-prompt", "only one"], "give two or more"),
    (["--segment-prompt", "a", "--segment-prompt", "b", "--end-image", "{img}"], "does not take --end-image"),
    (["--segment-prompt", "a", "--segment-prompt", "b", "--duration", "60"], "each window may have at most"),
])
def test_segment_refusals(models, tmp_path, capsys, extra, message):
    image = make_image(tmp_path / "in.png")
    extra = [e.format(img=image) for e in extra]
    rc, cap = run(["--image", image, "-o", tmp_path / "x.mp4"] + fast(models) + extra, capsys)
    assert rc == 2 and message in cap.err and "loading" not in cap.err, cap.err


def test_batch_jobs_take_segments(models, tmp_path, capsys):
    make_image(tmp_path / "a.png")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": "a.png", "segments": ["calm sea", "a storm"], "num_frames": 40,
                                "output": "s.mp4"}) + "\n")
    rc, cap = run(["--jobs", jobs, "--output-dir", tmp_path] + fast(models), capsys)
    assert rc == 0, cap.err
    side = json.loads((tmp_path / "s.json").read_text())
    assert [s["prompt"] for s in side["segments"]] == ["calm sea", "a storm"]
    assert len(probe(tmp_path / "s.mp4")["frames"]) == side["output_frames"] >= 40
