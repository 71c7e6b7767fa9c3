"""Tier 1: the command line and the pure planning functions (no model, no torch)."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, gv


@pytest.mark.parametrize("flag, dest, default", [
    ("--negative-prompt", "negative_prompt", None), ("--output", "output", None), ("--model", "model", None),
    ("--preset", "preset", "auto"), ("--resolution", "resolution", None), ("--fps", "fps", None),
    ("--device", "device", "auto"), ("--dtype", "dtype", "auto"), ("--attention-slicing", "attention_slicing", "auto"),
    ("--vae-tiling", "vae_tiling", "auto"), ("--offload", "offload", "auto"), ("--seed", "seed", None),
])
def test_parser_defaults(flag, dest, default):
    args = gv.build_parser().parse_args(["--image", "x.png", "--prompt", "p"])
    assert getattr(args, dest) == default


@pytest.mark.parametrize("argv, dest, value", [
    (["-o", "a.mp4"], "output", Path("a.mp4")), (["--num-frames", "49"], "num_frames", 49),
    (["--duration", "2.5"], "duration", 2.5), (["--guidance-scale", "0"], "guidance_scale", 0.0),
    (["--attention-slicing", "512"], "attention_slicing", "512"), (["--memory-budget", "24"], "memory_budget_gb", 24.0),
    (["-q"], "quiet", True), (["-v"], "verbose", True), (["--image", "b.png"], "image", ["x.png", "b.png"]),
])
def test_parser_types(argv, dest, value):
    args = gv.build_parser().parse_args(["--image", "x.png", "--prompt", "p"] + argv)
    assert getattr(args, dest) == value


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--fps", "-1"], ["--width", "abc"], ["--duration", "0"],
                                  ["--seed", "-3"], ["--device", "tpu"], ["--attention-slicing", "maybe"],
                                  ["--resolution", "4k"]])
def test_parser_rejects_bad_values_with_one_error_line(argv, capsys):
    assert gv.main(["--image", "x.png", "--prompt", "p"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_help_fits_a_screen_and_models_are_listed_apart(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert gv.main(["--help"]) == 0
    out = capsys.readouterr().out
    for text in ("default: auto", "--list-models", "--attention ", "--jobs", "--check"):
        assert text in out
    lines = out.splitlines()
    assert len(lines) <= 61 and max(len(line) for line in lines) <= 80
    examples = lines[lines.index("examples:") + 1:]
    assert len(examples) == 3 and all(e.startswith("  python generate_video.py ") for e in examples)
    assert gv.main(["--list-models"]) == 0
    listed = capsys.readouterr().out
    assert all(alias in listed and spec.repo in listed for alias, spec in gv.MODELS.items())


def test_help_and_usage_errors_do_not_import_torch():
    code = ("import runpy, sys; sys.argv=['generate_video.py','--help']\n"
            "try: runpy.run_path('generate_video.py', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print('MODULES:' + ','.join(m for m in ('torch','diffusers','transformers','imageio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "MODULES:"


@pytest.mark.parametrize("image_size, resolution, expected", [
    ((1920, 1080), "1080p", (1920, 1080)), ((1080, 1920), "1080p", (1080, 1920)),
    ((1600, 900), "720p", (1280, 720)), ((800, 600), "720p", (960, 720)), ((640, 640), "480p", (480, 480)),
    ((1000, 750), None, (960, 720)), ((1000, 750), "CV", (720, 480)),  # None: ltx (0.9.1) defaults to 720p
])
def test_plan_size_from_resolution_keeps_image_aspect(image_size, resolution, expected):
    spec = gv.MODELS["cogvideox" if resolution == "CV" else "ltx"]  # CV: CogVideoX 1.0's only size
    req = gv.Request(image=Path("x"), prompt="p", output=None, resolution=None if resolution == "CV" else resolution)
    assert gv.plan_size(image_size, req, spec) == expected


def test_plan_size_exact_width_and_height():
    req = gv.Request(image=Path("x"), prompt="p", output=None, width=1000, height=562)
    assert gv.plan_size((1920, 1080), req, gv.MODELS["ltx"]) == (1000, 562)
    req = gv.Request(image=Path("x"), prompt="p", output=None, width=1280)
    assert gv.plan_size((1920, 1080), req, gv.MODELS["ltx"]) == (1280, 720)


@pytest.mark.parametrize("size, gen", [((1920, 1080), (1920, 1088)), ((1280, 720), (1280, 736)),
                                       ((96, 64), (96, 64)), ((1080, 1920), (1088, 1920))])
def test_generation_size_is_smallest_multiple_of_32_covering(size, gen):
    assert gv.plan_generation_size(*size, gv.MODELS["ltx"]) == gen


@pytest.mark.parametrize("duration, num_frames, fps, alias, expected, noticed", [
    (5, None, 24, "ltx", 121, False), (None, 100, 24, "ltx", 105, True), (1, None, 24, "ltx", 25, False),
    (2, None, 30, "ltx", 65, True), (5, None, 8, "cogvideox", 41, False), (None, 45, 8, "cogvideox", 49, True),
])
def test_frame_counts_round_up_to_model_rule(duration, num_frames, fps, alias, expected, noticed):
    req = gv.Request(image=Path("x"), prompt="p", output=None, duration=duration, num_frames=num_frames)
    frames, notice = gv.plan_frames(req, fps, gv.MODELS[alias])
    assert frames == expected and (notice is not None) == noticed


def test_too_many_frames_is_refused_with_the_fix():
    req = gv.Request(image=Path("x"), prompt="p", output=None, num_frames=97)
    with pytest.raises(gv.UsageError, match="--num-frames 49"):
        gv.plan_frames(req, 8, gv.MODELS["cogvideox"])


def test_fast_preset_stages_for_1080p():
    spec = gv.MODELS["ltx-distilled"]
    s1, s2 = gv.plan_stages("fast", spec, 1920, 1088, 121, 7, 1.0)
    assert (s1.width, s1.height, s2.width, s2.height) == (960, 544, 1920, 1088)
    assert s1.timesteps == spec.stage1_timesteps and s2.denoise_strength < 1
    assert 0 < s1.tflop < s2.tflop  # stage 2 is where the time goes


def test_unique_output_name_never_clashes(tmp_path):
    (tmp_path / "cat.mp4").write_bytes(b"x")
    (tmp_path / "cat-2.json").write_text("{}")
    assert gv.unique_output_path(Path("pics/cat.png"), tmp_path) == tmp_path / "cat-3.mp4"


def test_a_mistyped_option_is_answered_with_the_one_meant(capsys):
    assert gv.main(["--image", "x.png", "--promt", "p"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unrecognized arguments: --promt p; did you mean --prompt?") and err.count("\n") == 1
    assert gv.main(["--image", "x.png", "--prompt", "p", "--zzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err  # nothing close: nothing guessed


def test_too_long_a_video_answers_in_seconds_and_names_segment_prompts(tmp_path):
    from conftest import make_image

    image = make_image(tmp_path / "in.png")
    with pytest.raises(gv.UsageError, match=r"1441 frames \(60\.0 s at 24 fps\).*257 at most, 10\.7 s.*--segment-prompt"):
        gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "x.mp4", duration=60), gv.Log(0))
