"""Issue 14, part 1: an end image and keyframes pinned at frames of the video, through LTX's
condition pipeline; what the pipeline receives is inspected, the MP4s read back."""

import json
import shlex

import numpy as np
import pytest

from conftest import gv, make_image, probe, run

FAST = ["--width", "192", "--height", "128", "--num-frames", "17", "--seed", "5", "--fps", "24"]


@pytest.fixture
def calls(monkeypatch):
    """What each LTXConditionPipeline call receives: (size, frame indices, strengths, images)."""
    from diffusers import LTXConditionPipeline

    seen = []
    real = LTXConditionPipeline.__call__

    def spy(self, *a, **k):
        conditions = k.get("conditions") or []
        seen.append(((k["width"], k["height"]), [c.frame_index for c in conditions] or 0,
                     [c.strength for c in conditions] or 1.0, len(conditions) or 1))
        return real(self, *a, **k)

    monkeypatch.setattr(LTXConditionPipeline, "__call__", spy)
    return seen


def fast(models):
    return ["--model", models["cond"], "--upsampler", models["up"]]


def test_end_image_and_keyframes_reach_both_stages_at_their_frames(models, tmp_path, calls, capsys):
    image, end, mid = (make_image(tmp_path / f"{n}.png", 160 + 10 * i, 90) for i, n in enumerate(("in", "end", "mid")))
    out = tmp_path / "k.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--end-image", end, "--keyframe", f"{mid}@0.25",
                   "--keyframe", f"{mid}@#12", "-o", out] + fast(models) + FAST, capsys)
    assert rc == 0, cap.err
    assert [c[0] for c in calls] == [(96, 64), (192, 128)]  # stage 1 and stage 2
    for _, frames, strengths, n_images in calls:
        assert frames == [0, 6, 12, 16] and strengths == [1.0] * 4 and n_images == 4  # 0.25 s at 24 fps = 6
    assert "keyframes: mid.png at frame 6 (0.25 s), mid.png at frame 12 (0.50 s), end.png at frame 16" in cap.err
    assert len(probe(out)["frames"]) == 17
    side = json.loads(out.with_suffix(".json").read_text())
    assert [(c["frame_index"], c["sha256"]) for c in side["conditions"]] == \
        [(6, gv.file_sha256(mid)), (12, gv.file_sha256(mid)), (16, gv.file_sha256(end))]
    # the reproduce command pins the same images at the same frames: the same video
    args = shlex.split(side["command"])[2:]
    assert run(args + ["-o", str(tmp_path / "again.mp4"), "-q"])[0] == 0
    assert all(np.array_equal(a, b) for a, b in zip(probe(out)["frames"], probe(tmp_path / "again.mp4")["frames"]))


def test_keyframes_change_the_video(models, tmp_path):
    image, end = make_image(tmp_path / "in.png"), make_image(tmp_path / "end.png", 90, 160)
    base = ["--image", image, "--prompt", "p", "-q"] + fast(models) + FAST
    assert run(base + ["-o", tmp_path / "a.mp4"])[0] == 0
    assert run(base + ["-o", tmp_path / "b.mp4", "--end-image", end])[0] == 0
    a, b = (np.stack(probe(tmp_path / f"{n}.mp4")["frames"]).astype(int) for n in "ab")
    assert np.abs(a - b).mean() > 0.5


@pytest.mark.parametrize("extra, message", [
    (["--keyframe", "{img}@1.0"], "frame 24 is outside this video (frames 1 to 16"),
    (["--keyframe", "{img}@#0"], "frame 0 is outside"),
    (["--keyframe", "{img}@#8", "--keyframe", "{img}@#8"], "frame 8 already holds --keyframe"),
    (["--keyframe", "{img}@#16", "--end-image", "{img}"], "frame 16 already holds"),
    (["--keyframe", "{img}"], "use PATH@SECONDS or PATH@#FRAME"),
    (["--keyframe", "{img}@soon"], "'soon' is neither seconds nor #frame"),
    (["--end-image", "{missing}"], "--end-image"),
])
def test_bad_keyframes_are_refused_before_loading(models, tmp_path, capsys, extra, message):
    image = make_image(tmp_path / "in.png")
    extra = [e.format(img=image, missing=tmp_path / "nope.png") for e in extra]
    rc, cap = run(["--image", image, "--prompt", "p", "-o", tmp_path / "x.mp4"] + fast(models) + FAST + extra, capsys)
    assert rc == 2 and message in cap.err and "loading" not in cap.err, cap.err


def test_models_without_the_condition_pipeline_refuse_keyframes(models, tmp_path, capsys):
    image = make_image(tmp_path / "in.png")
    for model in ("i2v", "cog"):
        rc, cap = run(["--image", image, "--prompt", "p", "--model", models[model], "--end-image", image,
                       "--num-frames", "9", "-o", tmp_path / "x.mp4"], capsys)
        assert rc == 2 and "need a condition pipeline" in cap.err, cap.err


def test_batch_jobs_take_end_image_and_keyframes(models, tmp_path, calls, capsys):
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "z.png", 120, 90)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": "a.png", "prompt": "p", "end_image": "z.png", "keyframes": ["z.png@#4"],
                                "output": "k.mp4"}) + "\n")
    rc, cap = run(["--jobs", jobs, "--output-dir", tmp_path] + fast(models) + FAST, capsys)
    assert rc == 0, cap.err
    assert calls[0][1] == [0, 4, 16]
    assert [c["image"] for c in json.loads((tmp_path / "k.json").read_text())["conditions"]] == \
        [str(tmp_path / "z.png")] * 2
