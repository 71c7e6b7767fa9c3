"""CogVideoX image-to-video, the fallback: same guarantees as LTX, rules read from the checkpoint."""

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from conftest import gv, probe, script_frames


def test_cogvideox_1_0_runs_at_its_native_size_with_4k_plus_1_frames(models, image, tmp_path, capsys):
    out = tmp_path / "cog.mp4"
    rc = gv.main(["--image", str(image), "--prompt", "a cat", "--model", str(models["cog"]), "-o", str(out),
                  "--duration", "1", "--steps", "2", "--seed", "3"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    info = probe(out)
    side = json.loads(out.with_suffix(".json").read_text())
    # 1 s at its native 8 fps = 9 frames (4k+1); size from the checkpoint's learned positions.
    assert info["size"] == (96, 64) and len(info["frames"]) == 9 and info["fps"] == 8
    assert side["guidance_scale"] == 6.0 and side["stages"][0]["steps"] == 2


def test_cogvideox_1_5_pads_latent_frames_and_crops_to_exact_size(models, image, tmp_path):
    out = tmp_path / "cog15.mp4"
    rc = gv.main(["--image", str(image), "--prompt", "a cat", "--model", str(models["cog15"]), "-o", str(out),
                  "--width", "120", "--height", "64", "--num-frames", "13", "--steps", "2", "--seed", "3", "-q"])
    info = probe(out)
    side = json.loads(out.with_suffix(".json").read_text())
    assert rc == 0 and info["size"] == (120, 64) and len(info["frames"]) == 17 and info["fps"] == 16  # 13 -> 16N+1
    assert (side["generation_width"], side["generation_height"]) == (128, 64)  # multiples of 16 x patch 2


def test_cogvideox_frames_equal_a_direct_diffusers_call_on_cpu(models, image):
    import diffusers

    req = gv.Request(image=image, prompt="a cat", output=Path("unused.mp4"), model=str(models["cog"]),
                     num_frames=9, steps=2, seed=5, overwrite=True)
    job, ours = script_frames(req)
    direct = diffusers.CogVideoXImageToVideoPipeline.from_pretrained(str(models["cog"]))
    direct.set_progress_bar_config(disable=True)
    # THUDM's cli_demo.py: the DPM scheduler with trailing spacing, and dynamic CFG.
    direct.scheduler = diffusers.CogVideoXDPMScheduler.from_config(direct.scheduler.config, timestep_spacing="trailing")
    frames = direct(image=gv.prepare_image(image, 96, 64), prompt="a cat", negative_prompt=job.negative_prompt,
                    height=64, width=96, num_frames=9, num_inference_steps=2, guidance_scale=6.0, use_dynamic_cfg=True,
                    generator=torch.Generator("cpu").manual_seed(5)).frames[0]
    assert np.array_equal(ours, np.stack([np.asarray(f) for f in frames]))


def test_chunked_attention_applies_to_cogvideox(models, image, tmp_path):
    out = tmp_path / "chunked.mp4"
    ref = tmp_path / "ref.mp4"
    base = ["--image", str(image), "--prompt", "a cat", "--model", str(models["cog"]), "--num-frames", "9",
            "--steps", "2", "--seed", "3", "-q"]
    assert gv.main(base + ["-o", str(ref), "--attention-slicing", "off"]) == 0
    assert gv.main(base + ["-o", str(out), "--attention-slicing", "16"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["memory_plan"]["attention_chunk_rows"] == 16
    a, b = np.stack(probe(ref)["frames"]).astype(int), np.stack(probe(out)["frames"]).astype(int)
    assert np.abs(a - b).mean() < 1.0  # same video up to float rounding and H.264


def test_family_comes_from_model_index_not_the_name(models, tmp_path):
    disguised = tmp_path / "ltx-video-looking-name"
    shutil.copytree(models["cog"], disguised)
    source, spec = gv.resolve_model_name(str(disguised))
    assert spec.family is gv.CogVideoX and spec.pipeline == "CogVideoXImageToVideoPipeline"


def test_text_to_video_checkpoint_is_refused(models, image, tmp_path, capsys):
    t2v = tmp_path / "t2v"
    shutil.copytree(models["cog"], t2v)
    index = json.loads((t2v / "model_index.json").read_text())
    index["_class_name"] = "CogVideoXPipeline"
    (t2v / "model_index.json").write_text(json.dumps(index))
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(t2v)])
    err = capsys.readouterr().err
    assert rc == 2 and "image-to-video" in err and "CogVideoXPipeline" in err


def test_too_many_frames_for_cogvideox_1_0_is_refused_up_front(models, image, capsys):
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["cog"]), "--num-frames", "49"])
    assert rc == 2 and "9 at most" in capsys.readouterr().err


def test_fps_warning_for_cogvideox(models, image, tmp_path, capsys):
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["cog"]), "--num-frames", "9",
                  "--steps", "1", "--fps", "24", "-o", str(tmp_path / "f.mp4")])
    assert rc == 0 and "no frame-rate input" in capsys.readouterr().err
    assert probe(tmp_path / "f.mp4")["fps"] == 24


def test_cogvideox_1_5_defaults_to_its_model_card_sizes_and_16n_plus_1_frames(models, tmp_path, capsys):
    from conftest import make_image

    for (w, h), size in (((1600, 900), (1360, 768)), ((900, 1200), (768, 1024)), ((1000, 1000), (768, 768))):
        req = gv.Request(image=make_image(tmp_path / f"i{w}.png", w, h), prompt="p", output=tmp_path / "x.mp4",
                         model="cogvideox1.5")
        job = gv.plan_job(req, gv.Log(1))
        assert (job.width, job.height) == size and job.num_frames == 81 and job.fps == 16  # 5 s at 16 fps
    job = gv.plan_job(gv.Request(image=tmp_path / "i1600.png", prompt="p", output=tmp_path / "x.mp4",
                                 model="cogvideox1.5", duration=5.5), gv.Log(1))
    assert job.num_frames == 97  # 89 -> the next 16N+1
    capsys.readouterr()
    gv.plan_job(gv.Request(image=tmp_path / "i1600.png", prompt="p", output=tmp_path / "x.mp4",
                           model="cogvideox1.5", resolution="480p"), gv.Log(1))
    assert "short side of 768 px" in capsys.readouterr().err
    assert gv.CogVideoX.refine(gv.MODELS["cogvideox1.5"], models["cog15"]).frame_step == 16
    assert gv.MODELS["cogvideox"].scheduler == gv.MODELS["cogvideox1.5"].scheduler == "CogVideoXDPMScheduler"


def test_cogvideox_1_0_defaults_to_the_frame_count_its_positions_were_learned_for(models, image, tmp_path, capsys):
    """CogVideoX-5b-I2V's transformer learned positions for 49 frames at 720x480
    (use_learned_positional_embeddings, sample_frames 49); for any other count diffusers'
    CogVideoXPatchEmbed builds a sin-cos table instead. The tiny one learned them for 9."""
    assert gv.MODELS["cogvideox"].native_frames == 49 and gv.MODELS["cogvideox1.5"].native_frames is None
    req = gv.Request(image=image, prompt="p", output=tmp_path / "x.mp4", model=str(models["cog"]))
    job = gv.plan_job(req, gv.Log(1))
    assert job.num_frames == 9 and job.fps == 8 and "learned its positions" not in capsys.readouterr().err
    spec = gv.MODELS["cogvideox"]  # the real one: 49 frames (6.1 s at 8 fps), not 5 s's 41
    assert gv.plan_frames(gv.Request(image=image, prompt="p", output=None), spec.fps, spec)[0] == 49
    job = gv.plan_job(gv.dataclasses.replace(req, num_frames=1), gv.Log(1))  # another count: said, then made
    assert job.num_frames == 1 and "learned its positions for 9 frames; at 1" in capsys.readouterr().err


def test_cogvideox_gets_no_negative_prompt_as_in_thudms_demo(models, image, tmp_path):
    """THUDM's inference/cli_demo.py calls the pipeline without negative_prompt (encoded as "")."""
    req = gv.Request(image=image, prompt="p", output=tmp_path / "x.mp4", model=str(models["cog"]))
    assert gv.plan_job(req, gv.Log(0)).negative_prompt == ""
    assert gv.plan_job(gv.dataclasses.replace(req, negative_prompt="blur"), gv.Log(0)).negative_prompt == "blur"
