"""Tier 2: main() end to end on tiny pipelines saved to disk, reading the MP4 back."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import gv, load_order, make_image, probe, run, script_frames

SMALL = ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2", "--seed", "7"]


def test_single_pass_writes_exact_h264_mp4_and_sidecar(models, image, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    rc, cap = run(["--image", image, "--prompt", "a boat drifts", "--model", models["i2v"], "-o", out,
                   "--fps", 12] + SMALL, capsys)
    assert rc == 0
    info = probe(out)
    assert (info["codec"].startswith("h264"), info["pix_fmt"].startswith("yuv420p")) == (True, True)
    assert info["size"] == (96, 64) and len(info["frames"]) == 9 and info["fps"] == 12 and info["moov_first"]
    assert cap.out.strip().splitlines()[-1].startswith(f"wrote {out} (0.8 s video, 96x64, 9 frames at 12 fps; made in ")
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["seed"] == 7 and side["prompt"] == "a boat drifts" and side["fps"] == 12
    assert side["negative_prompt"] == gv.DEFAULT_PROMPT_NEGATIVE and side["model_source"] == str(models["i2v"])
    assert side["stages"][0]["steps"] == 2 and side["num_frames"] == 9 and side["device"] == "cpu"
    assert side["memory_plan"]["attention"] == "stock"  # named even when it is PyTorch's own
    assert set(side["timings_s"]) >= {"load", "encode_prompt", "denoise", "decode", "write", "total"}
    assert side["seconds_per_step"] > 0 and side["peak_memory_gib"]["process_rss"] > 0
    assert {"python", "torch", "diffusers", "transformers", "os"} <= set(side["versions"])
    assert "--seed=7" in side["command"]
    assert not list(tmp_path.glob(".*partial*"))


def test_odd_target_is_cropped_from_the_covering_generation_size(models, image, tmp_path):
    out = tmp_path / "c.mp4"
    rc, _ = run(["--image", image, "--prompt", "a cat", "--model", models["i2v"], "-o", out, "--width", "90",
                 "--height", "50", "--num-frames", "9", "--steps", "1", "--seed", "1"])
    side = json.loads(out.with_suffix(".json").read_text())
    assert rc == 0 and probe(out)["size"] == (90, 50)
    assert (side["generation_width"], side["generation_height"]) == (96, 64)


@pytest.mark.parametrize("folder", ["i2v", "i2v_plain"])  # decode noise drawn from the generator, or none
def test_frames_equal_a_direct_diffusers_call_on_cpu(models, image, folder):
    import diffusers

    req = gv.Request(image=image, prompt="a boat drifts", output=Path("unused.mp4"), model=str(models[folder]),
                     width=96, height=64, num_frames=17, steps=3, seed=11, overwrite=True)
    job, ours = script_frames(req)
    direct = diffusers.LTXImageToVideoPipeline.from_pretrained(str(models[folder]))
    direct.set_progress_bar_config(disable=True)
    spec = job.spec
    frames = direct(image=gv.prepare_image(image, 96, 64, spec.image_blur_sigma, spec.image_crf), prompt="a boat drifts",
                    negative_prompt=job.negative_prompt, height=64, width=96, num_frames=17, frame_rate=24,
                    num_inference_steps=3, guidance_scale=spec.guidance, decode_timestep=spec.decode_timestep,
                    guidance_rescale=spec.guidance_extras["guidance_rescale"],  # 0.7: configs/ltxv-2b-0.9.1.yaml
                    decode_noise_scale=spec.decode_noise_scale,
                    generator=torch.Generator("cpu").manual_seed(11)).frames[0]
    assert ours.shape == (17, 64, 96, 3)
    assert np.array_equal(ours, np.stack([np.asarray(f) for f in frames]))


def test_same_seed_same_video_other_seed_other_video(models, image, tmp_path):
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.mp4"
        assert run(["--image", image, "--prompt", "waves", "--model", models["i2v"], "-o", out, "-q"]
                   + SMALL[:-1] + [seed])[0] == 0
        outs.append(np.stack(probe(out)["frames"]))
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


def test_fast_preset_1080p_runs_both_stages_at_their_sizes(models, tmp_path, capsys):
    """The bar's size end to end (2 s here: 5 s is 121 frames, planned below, and ~50 s more of
    x264 on 2 cores; the real 5 s is tests/benchmarks')."""
    image = make_image(tmp_path / "wide.png", 1920, 1080)
    out = tmp_path / "fast.mp4"
    five = gv.plan_job(gv.Request(image=image, prompt="p", output=out, model=str(models["cond"]),
                                  upsampler=str(models["up"]), resolution="1080p", duration=5.0), gv.Log(0))
    assert five.num_frames == 121 and [(s.width, s.height) for s in five.stages] == [(960, 544), (1920, 1088)]
    rc, cap = run(["--image", image, "--prompt", "a boat drifts at sunset", "--model", models["cond"],
                   "--upsampler", models["up"], "--resolution", "1080p", "--duration", 2, "--seed", 1, "-o", out],
                  capsys)
    assert rc == 0, cap.err
    info = probe(out)
    assert info["size"] == (1920, 1080) and len(info["frames"]) == 49 and info["fps"] == 24
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["preset"] == "fast"
    s1, s2 = side["stages"]
    assert (s1["width"], s1["height"], s2["width"], s2["height"]) == (960, 544, 1920, 1088)
    assert s1["latent_shape"][-3:] == [7, 17, 30] and s2["latent_shape"][-3:] == [7, 34, 60]
    assert side["upsample_seconds"] is not None and s1["seconds"] > 0 and s2["seconds"] > 0
    assert side["memory_plan"]["vae_spatial_tiling"] is True
    assert "stage1: 960x544" in cap.err and "TFLOP" in cap.err


def test_fast_is_the_default_at_every_size_and_plain_i2v_falls_back_with_a_notice(models, image, tmp_path, capsys):
    for resolution in ("480p", "720p", "1080p"):  # the guided 50-step model would cost ~7x more at any size
        job = gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "x.mp4", resolution=resolution),
                          gv.Log(1))
        assert (job.preset, job.spec.alias, [s.steps for s in job.stages]) == ("fast", gv.DEFAULT_MODEL_FAST, [7, 3])
    req = gv.Request(image=image, prompt="p", output=tmp_path / "x.mp4", resolution="1080p")
    req = gv.Request(image=image, prompt="p", output=tmp_path / "x.mp4", resolution="1080p", model=str(models["i2v"]))
    assert gv.plan_job(req, gv.Log(1)).preset == "quality"
    assert "runs as a single pass" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--image", "missing.png"], "no such file"),
    (["--model", "./nope"], "no such folder"),
    (["--output", "out.avi"], "must end in .mp4"),
    (["--output", "no/such/dir/x.mp4"], "does not exist"),
    (["--guidance-scale", "3", "--model", "ltx-distilled"], "guidance-distilled"),
    (["--steps", "4", "--preset", "fast", "--model", "COND"], "distilled timestep schedule"),
    (["--upsampler", "x/y", "--preset", "quality"], "only used by --preset fast"),
    (["--width", "97"], "must be even"),
    (["--num-frames", "300"], "at most"),
])
def test_bad_input_gives_one_error_line_and_exit_2(models, image, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    options = {"--image": image, "--prompt": "p", "--model": models["i2v"], "--num-frames": 9, "--width": 96,
               "--height": 64}
    options.update(dict(zip(extra[::2], extra[1::2])))
    options["--model"] = models["cond"] if options["--model"] == "COND" else options["--model"]
    argv = [x for pair in options.items() for x in pair]
    rc, cap = run(argv, capsys)
    lines = cap.err.strip().splitlines()
    assert rc == 2 and lines[-1].startswith("error:") and message in lines[-1], cap.err
    assert "Traceback" not in cap.err and not list(tmp_path.glob("*.mp4"))


def test_unreadable_image_and_pickle_weights_are_refused(models, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    rc, cap = run(["--image", bad, "--prompt", "p", "--model", models["i2v"]], capsys)
    assert rc == 2 and "not a readable image" in cap.err
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(models["i2v"], pickled)
    for f in (pickled / "transformer").glob("*.safetensors"):
        f.rename(f.with_name("diffusion_pytorch_model.bin"))
    rc, cap = run(["--image", make_image(tmp_path / "ok.png"), "--prompt", "p", "--model", pickled,
                   "-o", tmp_path / "o.mp4"] + SMALL, capsys)
    assert rc == 2 and "safetensors only" in cap.err


def test_an_existing_sidecar_is_never_replaced_without_overwrite(models, image, tmp_path, capsys):
    side = tmp_path / "mine.json"
    side.write_text('{"my": "notes"}')
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", tmp_path / "mine.mp4"]
                  + SMALL, capsys)
    assert rc == 2 and "mine.json already exists" in cap.err and side.read_text() == '{"my": "notes"}'


def test_existing_output_is_kept_without_overwrite_and_replaced_with_it(models, image, tmp_path, capsys):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"precious")
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    assert rc == 2 and "--overwrite" in cap.err and out.read_bytes() == b"precious"
    rc, _ = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out, "--overwrite"] + SMALL)
    assert rc == 0 and probe(out)["size"] == (96, 64)


def test_ctrl_c_exits_130_and_leaves_no_file(models, image, tmp_path, monkeypatch, capsys):
    def interrupted(self, frames):
        raise KeyboardInterrupt

    monkeypatch.setattr(gv.VideoWriter, "write", interrupted)
    out = tmp_path / "int.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    assert rc == 130 and not out.exists() and not out.with_suffix(".json").exists()
    # nothing half-made; what was denoised is kept, and the line says how to get it back
    assert sorted(p.name for p in tmp_path.iterdir()) == [".int.mp4.resume.safetensors", "in.png"]
    assert "; the same command resumes int.mp4 from the decode" in cap.err


def test_nan_latents_stop_with_a_fix_and_write_nothing(models, image, tmp_path, monkeypatch, capsys):
    from diffusers import LTXVideoTransformer3DModel

    real = LTXVideoTransformer3DModel.forward

    def nan_forward(self, *a, **k):
        out = real(self, *a, **k)
        out[0].fill_(float("nan"))
        return out

    monkeypatch.setattr(LTXVideoTransformer3DModel, "forward", nan_forward)
    out = tmp_path / "nan.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    assert rc == 1 and "NaN/inf latents" in cap.err and not out.exists()


def test_flat_colour_video_is_detected_and_not_written(models, image, tmp_path, monkeypatch, capsys):
    def black(cls, pipe, latents, job, generator, rt, progress):  # the family's decode hook, a broken VAE's
        yield np.zeros((job.num_frames, job.gen_height, job.gen_width, 3), np.uint8)

    monkeypatch.setattr(gv.LTX, "decode", classmethod(black))
    out = tmp_path / "black.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    assert rc == 1 and "flat colour" in cap.err and not out.exists()


def test_quiet_prints_only_the_final_line(models, image, tmp_path, capsys):
    out = tmp_path / "q.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out, "-q"] + SMALL, capsys)
    assert rc == 0 and cap.err == "" and cap.out.count("\n") == 1 and cap.out.startswith("wrote ")


def test_random_seed_is_recorded_and_reproduces(models, image, tmp_path):
    out = tmp_path / "r.mp4"
    assert run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out, "-q"] + SMALL[:-2])[0] == 0
    seed = json.loads(out.with_suffix(".json").read_text())["seed"]
    again = tmp_path / "r2.mp4"
    assert run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", again, "-q", "--seed", seed]
               + SMALL[:-2])[0] == 0
    assert np.array_equal(np.stack(probe(out)["frames"]), np.stack(probe(again)["frames"]))


def test_batch_runs_good_jobs_skips_bad_ones_loads_once_and_resumes(models, tmp_path, monkeypatch, capsys):
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.png", 120, 90)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join([
        json.dumps({"image": "a.png", "prompt": "waves", "seed": 1}),
        json.dumps({"image": "missing.png", "prompt": "x"}),
        json.dumps({"image": "b.png", "prompt": "a cat", "seed": 2, "num_frames": 17}),
        json.dumps({"image": "a.png", "colour": "red", "sed": 3}),
        "not json",
        json.dumps({"image": "b.png", "prompt": "x", "preset": "turbo", "output": "t.mp4"}),
    ]) + "\n")
    loads = []
    real_load = gv.load_pipeline
    monkeypatch.setattr(gv, "load_pipeline", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    out_dir = tmp_path / "videos"  # does not exist yet: created
    argv = ["--jobs", jobs, "--output-dir", out_dir, "--model", models["i2v"], "--width", 96, "--height", 64,
            "--num-frames", 9, "--steps", 2]
    rc, cap = run(argv, capsys)
    assert rc == 2 and len(loads) == 1  # bad jobs reported (exit 2), good ones done, one model load
    assert "2 done, 0 resumed, 4 skipped, 0 failed" in cap.err
    assert "missing.png: no such file" in cap.err and "unknown key(s) colour, sed (did you mean seed?)" in cap.err
    assert f"created {out_dir}" in cap.err and "line 4: line 4" not in cap.err
    assert "--preset: invalid choice: 'turbo' (choose from" in cap.err  # the command line's own check
    assert len(probe(out_dir / "a.mp4")["frames"]) == 9 and len(probe(out_dir / "b.mp4")["frames"]) == 17
    mtime = (out_dir / "a.mp4").stat().st_mtime_ns
    rc, cap = run(argv, capsys)  # re-run: everything already done, nothing loaded or rewritten
    assert "0 done, 2 resumed, 4 skipped" in cap.err and len(loads) == 1
    assert (out_dir / "a.mp4").stat().st_mtime_ns == mtime


def test_batch_interrupted_then_resumed_runs_each_job_once(models, tmp_path, monkeypatch, capsys):
    for name in ("x", "y"):
        make_image(tmp_path / f"{name}.png")
    calls = []
    real_write = gv.write_video

    def write_then_maybe_stop(frames, job, **kwargs):
        calls.append(job.output.name)
        if job.output.name == "y.mp4" and calls.count("y.mp4") == 1:
            raise KeyboardInterrupt
        return real_write(frames, job, **kwargs)

    monkeypatch.setattr(gv, "write_video", write_then_maybe_stop)
    argv = ["--image", tmp_path / "x.png", "--image", tmp_path / "y.png", "--prompt", "waves", "--output-dir",
            tmp_path, "--model", models["i2v"], "--seed", 1] + SMALL[:6]
    rc, _ = run(argv, capsys)
    assert rc == 130 and (tmp_path / "x.mp4").exists() and not (tmp_path / "y.mp4").exists()
    assert not list(tmp_path.glob(".*partial*"))
    rc, cap = run(argv, capsys)
    assert rc == 0 and "1 done, 1 resumed" in cap.err
    assert calls == ["x.mp4", "y.mp4", "y.mp4"]


def test_check_reports_and_runs_the_tiny_pipeline(capsys):
    rc, cap = run(["--check", "--device", "cpu"], capsys)
    assert "tiny LTX pipeline ran end to end on cpu" in cap.out
    assert "ffmpeg (imageio-ffmpeg) encodes H.264 yuv420p" in cap.out
    assert rc == (0 if "FAIL" not in cap.out else 1)


def test_operators_that_fell_back_to_the_cpu_are_reported(models, image, tmp_path, monkeypatch, capsys):
    import warnings

    real = gv.LTX.decode.__func__

    def warn_like_mps(cls, *args):  # the family's decode hook, as MPS runs an operator it lacks
        warnings.warn("The operator 'aten::upsample_trilinear3d' is not currently supported on the MPS backend "
                      "and will fall back to run on the CPU. This may have performance implications.", UserWarning)
        yield from real(cls, *args)

    monkeypatch.setattr(gv.LTX, "decode", classmethod(warn_like_mps))
    out = tmp_path / "fb.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    assert rc == 0 and "ran on the CPU (no MPS kernel, slower): aten::upsample_trilinear3d" in cap.err
    assert json.loads(out.with_suffix(".json").read_text())["cpu_fallback_ops"] == ["aten::upsample_trilinear3d"]


def test_mps_fallback_env_is_set_before_torch_is_imported():
    import os
    import subprocess
    import sys

    code = "import generate_video, os, sys; print(os.environ.get('PYTORCH_ENABLE_MPS_FALLBACK'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_ENABLE_MPS_FALLBACK"}
    out = subprocess.run([sys.executable, "-c", code], cwd=gv.__file__.rsplit("/", 1)[0], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["1", "False"]


def test_offload_on_cpu_is_warned_not_silently_dropped(models, image, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out, "--device", "cpu",
                   "--offload", "model"] + SMALL, capsys)
    assert rc == 0 and "--offload model has no effect on the CPU" in cap.err


def test_mps_failure_advice_names_the_exact_cogvideox_command(image, tmp_path):
    req = gv.Request(image=image, prompt='waves "crash"', output=tmp_path / "x.mp4", resolution="480p")
    job = gv.plan_job(req, gv.Log(0))
    advice = gv.mps_failure_advice(job, "mps", "bfloat16")
    assert "--dtype float32" in advice
    assert f'python generate_video.py --image {image} --prompt "waves \\"crash\\"" --model cogvideox' in advice


def test_the_sidecar_command_makes_the_same_video_again(models, image, tmp_path, monkeypatch):
    import shlex

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "first.mp4"
    assert run(["--image", image, "--prompt", "a boat, slowly", "--model", models["i2v"], "-o", out, "-q",
                "--width", 96, "--height", 64, "--num-frames", 9, "--steps", 2])[0] == 0
    command = json.loads(out.with_suffix(".json").read_text())["command"]
    again = tmp_path / "again.mp4"
    assert gv.main(shlex.split(command)[2:] + ["-o", str(again), "-q"]) == 0
    assert np.array_equal(np.stack(probe(out)["frames"]), np.stack(probe(again)["frames"]))


def test_real_ctrl_c_to_the_process_group_leaves_nothing(models, tmp_path):
    """A terminal's Ctrl-C reaches the whole foreground group: Python and its ffmpeg child."""
    import os
    import signal
    import subprocess
    import sys
    import time

    image = make_image(tmp_path / "wide.png", 1280, 720)
    out = tmp_path / "sig.mp4"
    proc = subprocess.Popen([sys.executable, str(Path(gv.__file__)), "--image", str(image), "--prompt", "p",
                             "--model", str(models["i2v"]), "--resolution", "720p", "--duration", "5",
                             "--steps", "2", "--guidance-scale", "1", "-o", str(out)],
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            # as from a terminal, even if pytest itself was started with SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    deadline = time.time() + 120
    while "decode:" not in seen and time.time() < deadline:  # interrupt while frames are being written
        seen += proc.stderr.readline()
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, seen + rest
    assert "Traceback" not in rest and "interrupted" in rest and "the same command resumes sig.mp4 from" in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sig.mp4.resume.safetensors", "wide.png"]


def test_t5_is_never_float16_and_is_released_after_encoding(models, image):
    req = gv.Request(image=image, prompt="p", output=Path("x.mp4"), model=str(models["i2v"]), width=96, height=64,
                     num_frames=9, overwrite=True)
    job = gv.plan_job(req, gv.Log(0))
    pipe, _ = gv.load_pipeline(gv.fetch_weights(job, gv.Log(0)), torch.float16, gv.Log(0))
    assert pipe.transformer.dtype == torch.float16 and pipe.text_encoder.dtype == torch.bfloat16
    embeds = gv.encode_prompts(gv.Runtime("cpu", torch.float16, gv.Log(0)), pipe, [job])
    assert pipe.text_encoder is None  # freed before the denoiser runs
    assert embeds[("p", job.negative_prompt, True)]["prompt_embeds"].dtype == torch.float16
    assert gv.pick_dtype("auto", "cpu") == torch.float32


def test_a_folder_of_images_crossed_with_one_prompt(models, tmp_path, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    for name in ("one", "two"):
        make_image(folder / f"{name}.jpg")
    (folder / "notes.txt").write_text("not an image")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, cap = run(["--image", folder, "--prompt", "waves", "--output-dir", out_dir, "--model", models["i2v"]]
                  + SMALL, capsys)
    assert rc == 0 and sorted(p.name for p in out_dir.glob("*.mp4")) == ["one.mp4", "two.mp4"]
    assert "job 2 of 2, ETA" in cap.err and "2 done, 0 resumed, 0 skipped, 0 failed" in cap.err


def test_a_failing_batch_job_is_recorded_and_the_others_still_run(models, tmp_path, monkeypatch, capsys):
    for name in ("good", "bad", "fine"):
        make_image(tmp_path / f"{name}.png")
    real = gv.LTX.stage_call.__func__

    def nan_for_bad(cls, pipe, job, *a):  # the family's hook, patched for one job
        if job.output.name == "bad.mp4":
            raise gv.NonFiniteError("denoise", 0)
        return real(cls, pipe, job, *a)

    monkeypatch.setattr(gv.LTX, "stage_call", classmethod(nan_for_bad))
    rc, cap = run(["--image", tmp_path / "good.png", "--image", tmp_path / "bad.png", "--image", tmp_path / "fine.png",
                   "--prompt", "waves", "--output-dir", tmp_path, "--model", models["i2v"]] + SMALL, capsys)
    assert rc == 1 and "2 done, 0 resumed, 0 skipped, 1 failed" in cap.err and "NaN/inf latents" in cap.err
    assert (tmp_path / "good.mp4").exists() and (tmp_path / "fine.mp4").exists() and not (tmp_path / "bad.mp4").exists()


def test_sidecar_is_in_place_before_the_video(models, image, tmp_path, monkeypatch):
    seen = []
    real = gv._claim

    def spy(tmp, final):
        seen.append(Path(final).suffix)
        return real(tmp, final)

    monkeypatch.setattr(gv, "_claim", spy)
    assert run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", tmp_path / "s.mp4", "-q"] + SMALL)[0] == 0
    assert seen == [".json", ".mp4"]


def test_t5_is_loaded_used_and_freed_before_the_denoiser_loads(models, image, tmp_path, monkeypatch):
    events = load_order(monkeypatch)
    assert run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", tmp_path / "o.mp4", "-q"]
               + SMALL)[0] == 0
    assert events == ["load T5EncoderModel (transformer: False)", "encoded, freed", "load denoiser (text encoder: False)"]


def test_a_small_image_enlarged_more_than_2x_is_warned_about(tmp_path, capsys):
    small = make_image(tmp_path / "small.png", 64, 48)
    gv.plan_job(gv.Request(image=small, prompt="p", output=tmp_path / "x.mp4"), gv.Log(1))
    assert "the 64x48 image is enlarged 22.5x to fill 1440x1080" in capsys.readouterr().err
    gv.plan_job(gv.Request(image=small, prompt="p", output=tmp_path / "x.mp4", width=96, height=72), gv.Log(1))
    assert "enlarged" not in capsys.readouterr().err  # 1.5x: fine


def test_the_plan_prints_a_time_estimate_and_the_sidecar_keeps_it_beside_the_actual(models, image, tmp_path, capsys):
    out = tmp_path / "t.mp4"
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    line = next(x for x in cap.err.splitlines() if x.startswith("  time: "))
    assert rc == 0 and "on this CPU" in line and "an estimate" in line and "measured" in line
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["estimated_seconds"] > 0 and side["timings_s"]["total"] > 0


def test_estimates_in_words_and_the_cpu_advice():
    job = gv.reference_job()
    assert gv.describe_duration(45) == "about 50 s" and gv.describe_duration(240) == "about 4 min"
    assert gv.describe_duration(9 * 3600) == "about 9 hours"
    slow = gv.describe_estimate(job, "cpu", 0.2)  # 0.2 TFLOPS: hours
    assert "hours on this CPU: use a Mac with Apple Silicon or a CUDA GPU" in slow
    fast = gv.describe_estimate(job, "mps", 14.0)  # an M4 Max's measured bf16 matmul rate
    assert "min on this MPS" in fast and "use a Mac" not in fast
    # denoise at half the matmul rate, decode at a quarter: the 1,435 + 404 TFLOP of 5 s of 1080p
    assert abs(gv.estimate_seconds(job, 14.0) - (1435 / 7.0 + 404 / 3.5)) < 5


def test_progress_lines_cover_every_stage_when_stderr_is_not_a_terminal(models, tmp_path, capsys):
    image = make_image(tmp_path / "wide.png", 640, 360)
    rc, cap = run(["--image", image, "--prompt", "a boat", "--model", models["cond"], "--upsampler", models["up"],
                   "--width", "1280", "--height", "720", "--num-frames", "9", "--seed", "1", "--vae-tiling", "on",
                   "-o", tmp_path / "p.mp4"], capsys)
    assert rc == 0, cap.err
    lines = cap.err.splitlines()
    for stage, last in (("stage1", "step 7/7"), ("stage2", "step 3/3"), ("decode", "tile 6/6")):
        mine = [x for x in lines if x.startswith(f"  {stage} [")]
        assert mine and mine[-1].split("] ")[1].startswith(f"100% {last}"), (stage, mine)
        assert all("(job " in x for x in mine) and any("ETA" in x for x in mine[:-1])
    assert any(x.startswith("  loaded in ") for x in lines) and "\r" not in cap.err  # plain lines off a terminal
    decode = [x for x in lines if x.startswith("  decode [")]
    assert len(decode) <= 11  # a line per 10%, not per tile


def test_tflop_of_a_local_folder_comes_from_its_own_configs(models, image, tmp_path):
    req = gv.Request(image=image, prompt="p", output=tmp_path / "x.mp4", model=str(models["i2v"]), width=96,
                     height=64, num_frames=9, steps=2)
    tiny = gv.plan_job(req, gv.Log(0)).stages[0].tflop
    table = gv.plan_stages("quality", gv.MODELS["ltx"], 96, 64, 9, 2, 3.0)[0].tflop  # the real 2B's size
    assert 0 < tiny < table / 1000


def test_a_model_missing_offline_exits_1_with_or_without_hf_hub_offline(models, image, tmp_path, monkeypatch, capsys):
    """Same missing model, same exit code, whether HF_HUB_OFFLINE is set or the Hub is unreachable."""
    import huggingface_hub.constants as constants

    argv = ["--image", image, "--prompt", "p", "--model", "org/not-cached", "-o", tmp_path / "x.mp4"] + SMALL
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    rc, cap = run(argv, capsys)
    assert rc == 1 and "HF_HUB_OFFLINE=1 is set" in cap.err and not (tmp_path / "x.mp4").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    rc, cap = run(argv, capsys)
    last = cap.err.strip().splitlines()[-1]
    assert rc == 1 and "cannot be reached" in last and "HF_HUB_OFFLINE" not in last


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(models, tmp_path, name):
    """kill, timeout, a closed terminal: the signal goes to Python alone; nothing half-made is left
    behind, only the state the same command resumes from."""
    import os
    import signal
    import subprocess
    import sys
    import time

    image = make_image(tmp_path / "wide.png", 1280, 720)
    out = tmp_path / "sig.mp4"
    proc = subprocess.Popen([sys.executable, str(Path(gv.__file__)), "--image", str(image), "--prompt", "p",
                             "--model", str(models["i2v"]), "--resolution", "720p", "--duration", "5",
                             "--steps", "2", "--guidance-scale", "1", "-o", str(out)],
                            stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.time() + 120
    while "decode:" not in seen and time.time() < deadline:  # while frames are being written
        seen += proc.stderr.readline()
    time.sleep(0.3)
    sig = getattr(signal, name)
    os.kill(proc.pid, sig)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + sig, seen + rest
    assert "Traceback" not in rest and f"interrupted by {name}: no partial file was left behind" in rest
    assert "; the same command resumes sig.mp4 from the decode" in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sig.mp4.resume.safetensors", "wide.png"]


def test_a_batch_never_replaces_a_json_file_of_the_users_without_overwrite(models, tmp_path, capsys):
    """out/config.json is the user's; a batch making out/config.mp4 must not turn it into a sidecar."""
    pics = tmp_path / "pics"
    pics.mkdir()
    make_image(pics / "config.png")
    make_image(pics / "other.png")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "config.json").write_text('{"mine": true}')
    rc, cap = run(["--image", pics, "--prompt", "p", "--output-dir", out_dir, "--model", models["i2v"]] + SMALL,
                  capsys)
    assert rc == 2 and "config.json already exists" in cap.err  # that job skipped, the other made
    assert (out_dir / "config.json").read_text() == '{"mine": true}' and not (out_dir / "config.mp4").exists()
    assert probe(out_dir / "other.mp4")["size"] == (96, 64)


def test_a_dangling_symlink_as_output_is_refused_before_any_work(models, image, tmp_path, capsys):
    out = tmp_path / "link.mp4"
    out.symlink_to(tmp_path / "nowhere" / "x.mp4")
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    assert rc == 2 and "broken symbolic link" in cap.err and "loading" not in cap.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.mp4"] and out.is_symlink()


def test_the_estimate_learns_a_second_identical_run_is_estimated_at_the_firsts_actual_time(models, image, tmp_path,
                                                                                           capsys):
    """Issue 25: a finished run records each part's pace for this machine and model; the same job
    again is estimated from it (within 25% of the first's actual time: here to the rounding), and
    says so; the matmul probe is measured once and kept."""
    import json

    argv = ["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--width", "96", "--height", "64",
            "--num-frames", "9", "--steps", "2", "--seed", "1"]
    assert gv.main(argv + ["-o", str(tmp_path / "a.mp4")]) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    err = capsys.readouterr().err
    assert "matmul rate" in err and "earlier run" not in err  # the probe, without history
    assert gv.main(argv + ["-o", str(tmp_path / "b.mp4")]) == 0
    second = json.loads((tmp_path / "b.json").read_text())
    err = capsys.readouterr().err
    assert "(from 1 earlier run(s) of" in err and second["estimate_basis"]["earlier_runs"] == 1
    actual = first["timings_s"]["total"]
    assert abs(second["estimated_seconds"] - actual) <= 0.25 * actual, (second["estimated_seconds"], actual)
    assert second["estimate_basis"]["matmul_tflops"] == first["estimate_basis"]["matmul_tflops"]  # measured once
    history = json.loads((gv.timings_path()).read_text())
    (entry,) = history.values()
    assert len(next(iter(entry["runs"].values()))) == 2 and entry["matmul_tflops"] > 0


def test_steps_that_slow_down_are_said_once_and_kept_in_the_sidecar(models, image, tmp_path, capsys, monkeypatch):
    """Issue 26: a stage's steps slowing by more than THROTTLE_RATIO (a hot Mac's GPU clock
    dropping) get one notice with the numbers and a sidecar record; steady steps get none."""
    import json
    import time as time_

    from diffusers import LTXVideoTransformer3DModel

    calls, pace = [], {"first": 0.02, "later": 0.15}
    real = LTXVideoTransformer3DModel.forward
    monkeypatch.setattr(gv, "THROTTLE_MIN_STEP", 0.05)  # tiny steps here; real ones take seconds

    def hotter(self, *args, **kwargs):
        calls.append(1)
        time_.sleep(pace["first"] if len(calls) <= 8 else pace["later"])  # 2 forwards a step (CFG)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LTXVideoTransformer3DModel, "forward", hotter)
    argv = ["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--width", "96", "--height", "64",
            "--num-frames", "9", "--steps", "10"]
    assert gv.main(argv + ["-o", str(tmp_path / "hot.mp4")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: steps are getting slower") == 1 and "the Mac may be throttling" in err
    record = json.loads((tmp_path / "hot.json").read_text())["throttling"]
    assert record["stage"] == "denoise" and record["latest_steps_s"] > 1.5 * record["first_steps_s"]
    calls.clear()
    pace.update(first=0.05, later=0.05)  # steady steps
    assert gv.main(argv + ["-o", str(tmp_path / "cool.mp4")]) == 0
    assert "getting slower" not in capsys.readouterr().err
    assert json.loads((tmp_path / "cool.json").read_text())["throttling"] is None


@pytest.mark.parametrize("change", ["image content", "lora scale", "empty mp4", "cut mp4"])
def test_a_batch_resumes_only_a_video_made_exactly_so(models, tmp_path, capsys, change):
    """Issue 26: "already done" needs the video made with everything that shapes it (the reproduce
    command's settings and each input's content) and a complete MP4; a changed image behind the
    same path, another LoRA scale, a 0-byte or cut-off MP4 are made again."""
    from test_lora import tiny_lora

    (tmp_path / "in").mkdir()
    image = make_image(tmp_path / "in" / "x.png")
    lora = tiny_lora(tmp_path / "style.safetensors", models["i2v"])
    argv = ["--image", tmp_path / "in", "--prompt", "waves", "--output-dir", tmp_path / "out", "--model", models["i2v"],
            "--seed", 1, "--lora", f"{lora}:0.5"] + SMALL[:6]
    rc, cap = run(argv, capsys)
    assert rc == 0, cap.err
    video = tmp_path / "out" / "x.mp4"
    rc, cap = run(argv, capsys)
    assert rc == 0 and "0 done, 1 resumed" in cap.err, cap.err  # the same job: resumed
    if change == "image content":
        make_image(image, 170, 90)
    elif change == "lora scale":
        argv[argv.index(f"{lora}:0.5")] = f"{lora}:0.8"
    elif change == "empty mp4":
        video.write_bytes(b"")
    else:
        video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    rc, cap = run(argv + ["--overwrite"], capsys)
    assert rc == 0 and "1 done, 0 resumed" in cap.err, cap.err
