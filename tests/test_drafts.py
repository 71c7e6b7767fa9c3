"""Issue 13, part 1: a draft is the fast path's stage 1 alone; its final reuses the draft's latents
and makes zero half-size transformer passes; variations share one model load."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from conftest import gv, make_image, probe, run

FAST = ["--width", "192", "--height", "128", "--num-frames", "9", "--seed", "5"]


@pytest.fixture
def passes(monkeypatch):
    """Transformer forward passes, by the number of video tokens each saw."""
    from diffusers import LTXVideoTransformer3DModel

    seen = []
    real = LTXVideoTransformer3DModel.forward

    def forward(self, hidden_states, *a, **k):
        seen.append(hidden_states.shape[1])
        return real(self, hidden_states, *a, **k)

    monkeypatch.setattr(LTXVideoTransformer3DModel, "forward", forward)
    return seen


def fast(models):
    return ["--model", models["cond"], "--upsampler", models["up"]]


def test_a_draft_is_stage_one_and_its_final_makes_no_half_size_pass(models, image, tmp_path, passes, capsys):
    draft = tmp_path / "d.mp4"
    rc, cap = run(["--image", image, "--prompt", "a boat", "-o", draft, "--draft"] + fast(models) + FAST, capsys)
    assert rc == 0, cap.err
    half_tokens = set(passes)
    assert len(passes) == 7 and len(half_tokens) == 1  # the 7 distilled stage-1 timesteps, nothing else
    assert probe(draft)["size"] == (96, 64) and len(probe(draft)["frames"]) == 9
    side = json.loads(draft.with_suffix(".json").read_text())
    assert side["draft"]["latents"] == "d.latents.safetensors" and side["draft"]["final_size"] == [192, 128]
    assert (tmp_path / "d.latents.safetensors").is_file() and "--from-draft=" in side["final_command"]
    assert "--draft" in side["command"] and "--width=192" in side["command"]
    assert "the full video of this draft: python generate_video.py --from-draft=" in cap.err

    passes.clear()
    final = tmp_path / "f.mp4"
    rc, cap = run(["--from-draft", draft.with_suffix(".json"), "-o", final], capsys)
    assert rc == 0, cap.err
    assert len(passes) == 3 and not half_tokens & set(passes)  # stage 2 only, at full size
    assert "reused from the draft" in cap.err and probe(final)["size"] == (192, 128)
    fside = json.loads(final.with_suffix(".json").read_text())
    assert fside["from_draft"]["latents"] == str(tmp_path / "d.latents.safetensors")

    # Its composition is the draft's: the same video as the whole fast path from scratch.
    passes.clear()
    scratch = tmp_path / "s.mp4"
    args = shlex.split(fside["command"])[2:]
    assert run(args + ["-o", str(scratch), "-q"])[0] == 0 and len(passes) == 10
    a, b = probe(final)["frames"], probe(scratch)["frames"]
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b) == 9


def test_a_final_refuses_anything_that_shaped_its_draft(models, tmp_path, capsys):
    image = make_image(tmp_path / "in.png")
    draft = tmp_path / "d.mp4"
    assert run(["--image", image, "--prompt", "a boat", "-o", draft, "--draft", "-q"] + fast(models) + FAST)[0] == 0
    sidecar = draft.with_suffix(".json")
    for extra, message in [(["--prompt", "a cat"], "prompt differs from the draft's"),
                           (["--seed", "6"], "seed differs from the draft's"),
                           (["--num-frames", "17"], "num frames differs"),
                           (["--draft"], "takes neither --draft nor --variations")]:
        rc, cap = run(["--from-draft", sidecar, "-o", tmp_path / "x.mp4"] + extra, capsys)
        assert rc == 2 and message in cap.err and "loading" not in cap.err, (extra, cap.err)
    make_image(image, 170, 90)  # the image itself changed
    rc, cap = run(["--from-draft", sidecar, "-o", tmp_path / "x.mp4"], capsys)
    assert rc == 2 and "image sha256 differs" in cap.err
    (tmp_path / "d.latents.safetensors").unlink()
    rc, cap = run(["--from-draft", sidecar, "-o", tmp_path / "x.mp4"], capsys)
    assert rc == 2 and "d.latents.safetensors is missing" in cap.err
    assert not (tmp_path / "x.mp4").exists()


def test_a_sidecar_that_is_not_a_drafts_and_a_model_without_stages_are_refused(models, image, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    assert run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out, "-q", "--width", "96",
                "--height", "64", "--num-frames", "9", "--steps", "2"])[0] == 0
    rc, cap = run(["--from-draft", out.with_suffix(".json")], capsys)
    assert rc == 2 and "not the sidecar of a draft" in cap.err
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "--draft", "-o", tmp_path / "d.mp4"],
                  capsys)
    assert rc == 2 and "--draft is the fast preset's first stage" in cap.err


def test_variations_make_consecutive_seeds_in_one_model_load(models, image, tmp_path, monkeypatch, capsys):
    loads = []
    real = gv.load_pipeline
    monkeypatch.setattr(gv, "load_pipeline", lambda *a, **k: loads.append(1) or real(*a, **k))
    rc, cap = run(["--image", image, "--prompt", "p", "-o", tmp_path / "try.mp4", "--draft", "--variations", "3"]
                  + fast(models) + FAST, capsys)
    assert rc == 0 and len(loads) == 1, cap.err
    names = sorted(p.name for p in tmp_path.glob("try-s*.mp4"))
    assert names == ["try-s5.mp4", "try-s6.mp4", "try-s7.mp4"]
    seeds = [json.loads((tmp_path / n).with_suffix(".json").read_text())["seed"] for n in names]
    assert seeds == [5, 6, 7]
    frames = [probe(tmp_path / n)["frames"][4] for n in names]
    assert not np.array_equal(frames[0], frames[1])  # different seeds, different videos
    # the plan once, then one line for each further seed
    assert cap.err.count("  stage1: ") == 1 and cap.err.count("  time: ") == 1
    assert "plan: as above, seed 6 (try-s6.mp4)" in cap.err and "plan: as above, seed 7 (try-s7.mp4)" in cap.err


def test_a_final_made_without_a_name_keeps_its_drafts_seed_in_it(models, image, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["--image", image, "--prompt", "p", "--draft"] + fast(models) + FAST)[0] == 0
    drafts = sorted(tmp_path.glob("*-draft.json"))
    assert [d.name for d in drafts] == ["in-draft.json"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the suggested command works from any folder
    side = json.loads(drafts[0].read_text())
    rc, cap = run(shlex.split(side["final_command"])[2:], capsys)
    assert rc == 0, cap.err
    assert (elsewhere / "in-s5.mp4").is_file()


def test_batch_jobs_take_draft_variations_and_from_draft(models, tmp_path, capsys):
    make_image(tmp_path / "a.png")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": "a.png", "prompt": "p", "draft": True, "variations": 2, "output": "a.mp4"})
                    + "\n")
    out = tmp_path / "out"
    base = ["--output-dir", out] + fast(models) + FAST
    rc, cap = run(["--jobs", jobs] + base, capsys)
    assert rc == 0 and "2 done" in cap.err, cap.err
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a-s5.mp4", "a-s6.mp4"]
    finals = tmp_path / "finals.jsonl"
    finals.write_text(json.dumps({"from_draft": "out/a-s6.json", "output": "final.mp4"}) + "\n")
    rc, cap = run(["--jobs", finals, "--output-dir", out], capsys)
    assert rc == 0, cap.err
    assert json.loads((out / "final.json").read_text())["seed"] == 6 and probe(out / "final.mp4")["size"] == (192, 128)
