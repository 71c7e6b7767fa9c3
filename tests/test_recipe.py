"""Lightricks' recipe, per model: the conditioning image's preprocessing (ltx_video/inference.py)
and what reaches the pipeline."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from conftest import gv, make_image


def reference_blur(im, sigma):
    """torchvision.transforms.functional.gaussian_blur(kernel_size=3, sigma), written with conv2d."""
    x = torch.from_numpy(np.asarray(im, np.float32) / 255.0).permute(2, 0, 1)[None]
    k1 = torch.exp(-0.5 * (torch.tensor([-1.0, 0.0, 1.0]) / sigma) ** 2)
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :]).expand(3, 1, 3, 3)
    x = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    return torch.nn.functional.conv2d(x, kernel, groups=3)[0].permute(1, 2, 0).numpy()


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / mse)


def test_blur_is_torchvisions_3x3_gaussian(tmp_path):
    im = Image.open(make_image(tmp_path / "a.png", 41, 23)).convert("RGB")
    ours = gv.gaussian_blur_3x3(im, 1.0)
    assert ours.shape == (23, 41, 3) and np.abs(ours - reference_blur(im, 1.0)).max() < 1e-6
    assert np.abs(ours - np.asarray(im, np.float32) / 255).max() > 0.05  # it does blur


def test_h264_roundtrip_compresses_and_crops_odd_sizes_to_even(tmp_path):
    a = np.asarray(Image.open(make_image(tmp_path / "a.png", 161, 91)).convert("RGB"))
    out = gv.h264_roundtrip(a, 29)
    assert out.shape == (90, 160, 3) and out.dtype == np.uint8
    assert not np.array_equal(out, a[:90, :160]) and psnr(out, a[:90, :160]) > 25
    lossless = gv.h264_roundtrip(a, 0)
    assert psnr(lossless, a[:90, :160]) > psnr(out, a[:90, :160])  # the CRF is what sets the loss


def test_prepare_image_is_crop_blur_h264_then_resize(tmp_path):
    path = make_image(tmp_path / "wide.png", 400, 150)
    im = Image.open(path).convert("RGB")
    ours = np.asarray(gv.prepare_image(path, 96, 64, 1.0, 29))
    cropped = im.crop((87, 0, 87 + 225, 150))  # 400x150 -> 3:2 at the source size: int(150 * 1.5) = 225 wide
    expected = gv.h264_roundtrip(reference_blur(cropped, 1.0), 29)
    expected = np.asarray(Image.fromarray(expected).resize((96, 64), Image.Resampling.LANCZOS))
    assert np.array_equal(ours, expected)
    raw = np.asarray(ImageOps.fit(im, (96, 64), method=Image.Resampling.LANCZOS))
    assert not np.array_equal(ours, raw)


@pytest.mark.parametrize("alias", ["ltx", "ltx-0.9.0", "ltx-distilled", "ltx-13b-distilled"])
def test_every_ltx_model_uses_lightricks_image_recipe_and_cogvideox_does_not(alias):
    spec = gv.MODELS[alias]
    assert (spec.image_blur_sigma, spec.image_crf, spec.image_cond_noise_scale) == (1.0, 29, 0.15)
    assert spec.tone_map == (0.6 if alias == "ltx-13b-distilled" else 0.0)
    assert all(gv.MODELS[a].image_crf == 0 for a in ("cogvideox", "cogvideox1.5"))


def test_what_reaches_the_pipeline_is_the_documented_transform_and_the_sidecar_says_so(
        models, tmp_path, monkeypatch):
    from diffusers import LTXImageToVideoPipeline

    seen = []
    real_call = LTXImageToVideoPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append(np.asarray(kwargs["image"]))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(LTXImageToVideoPipeline, "__call__", spy)
    image = make_image(tmp_path / "in.png", 160, 90)
    out = tmp_path / "o.mp4"
    rc = gv.main(["--image", str(image), "--prompt", "a boat", "--model", str(models["i2v"]), "-o", str(out),
                  "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "1", "--seed", "2", "-q"])
    assert rc == 0 and len(seen) == 1
    assert np.array_equal(seen[0], np.asarray(gv.prepare_image(image, 96, 64, 1.0, 29)))
    assert not np.array_equal(seen[0], np.asarray(gv.prepare_image(image, 96, 64)))
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["conditioning_image"] == {"crop": "center", "blur_sigma": 1.0, "h264_crf": 29, "resize": "lanczos",
                                          "noise_scale": None}


def test_decode_noise_goes_on_the_normalized_latents_before_the_tone_map_as_lightricks_does(monkeypatch):
    """ltx_video/pipelines/pipeline_ltx_video.py: decode noise on the normalized latents
    (decode_noise_scale 0.025 at decode_timestep 0.05, configs/ltxv-13b-0.9.8-distilled.yaml), then
    tone_map_latents (0.6, 13B distilled only), then un-normalized inside the VAE decode. With a VAE
    whose per-channel statistics are not 0 and 1, diffusers' order (noise after) differs."""
    pipe = gv.tiny_ltx_pipeline("LTXConditionPipeline")
    vae = pipe.vae
    vae.latents_mean.copy_(torch.linspace(-0.5, 0.5, vae.latents_mean.numel()))
    vae.latents_std.copy_(torch.linspace(0.5, 2.0, vae.latents_std.numel()))
    vae.use_tiling = False
    vae.use_framewise_decoding = False
    seen = []
    monkeypatch.setattr(vae.decoder, "forward",
                        lambda z, temb: (seen.append((z.clone(), temb)), torch.zeros(1, 3, 9, 64, 96))[1])
    spec = gv.MODELS["ltx-13b-distilled"]
    job = type("J", (), {"spec": spec, "num_frames": 9, "family": gv.LTXCondition})()
    latents = torch.randn(1, 8, 2, 2, 3, generator=torch.Generator().manual_seed(1))
    rt = gv.Runtime("cpu", torch.float32, gv.Log(0))
    list(gv.decode_frames(rt, pipe, latents, job, torch.Generator().manual_seed(7)))
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(7))
    from diffusers import LTXLatentUpsamplePipeline

    mapped = LTXLatentUpsamplePipeline.tone_map_latents(None, 0.975 * latents + 0.025 * noise, 0.6)
    mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
    expected = mapped * std / vae.config.scaling_factor + mean
    z, temb = seen[0]
    assert (spec.decode_timestep, spec.decode_noise_scale, spec.tone_map) == (0.05, 0.025, 0.6)
    assert torch.allclose(z, expected, atol=1e-6) and float(temb[0]) == pytest.approx(0.05)
    diffusers_order = LTXLatentUpsamplePipeline.tone_map_latents(None, latents, 0.6) * std + mean
    diffusers_order = 0.975 * diffusers_order + 0.025 * noise
    assert not torch.allclose(z, diffusers_order, atol=1e-3)


def test_quality_is_the_13b_distilled_at_lightricks_own_multi_scale_geometry(tmp_path):
    """configs/ltxv-13b-0.9.8-distilled.yaml: downscale_factor 0.6666666 (the first pass at 2/3 of
    the target, floored to 32: 1248x704 for 1080p, inference.py), the 2x upscale, the second pass at
    twice that, then the video resized to the target; the distilled timesteps in both passes."""
    image = make_image(tmp_path / "in.png", 1600, 900)
    job = gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "o.mp4", preset="quality",
                                 memory_budget_gb=48), gv.Log(0))  # a 64 GB Mac's working set
    assert job.spec.alias == "ltx-13b-distilled" and job.downscale and (job.width, job.height) == (1920, 1080)
    assert [(s.width, s.height, s.timesteps) for s in job.stages] == [
        (1248, 704, gv.LTX_DISTILLED_STAGE1), (2496, 1408, gv.LTX_DISTILLED_STAGE2)]
    assert gv.LTX_DISTILLED_STAGE1 == (1000.0, 993.7, 987.5, 981.2, 975.0, 909.4, 725.0)  # first_pass timesteps
    fast = gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "o.mp4"), gv.Log(0))
    assert [(s.width, s.height) for s in fast.stages] == [(960, 544), (1920, 1088)] and not fast.downscale
    small = gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "o.mp4", preset="quality",
                                   memory_budget_gb=24), gv.Log(0))  # a 32 GB Mac: the 2B, at the same geometry
    assert small.spec.alias == "ltx-distilled" and [(s.width, s.height) for s in small.stages] == [
        (1248, 704), (2496, 1408)]
    with pytest.raises(gv.UsageError, match="runs the distilled timestep schedule"):
        gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "o.mp4", preset="quality", steps=20),
                    gv.Log(0))


def test_the_maker_geometry_generates_larger_and_the_video_is_resized_to_the_target(models, tmp_path, capsys):
    out = tmp_path / "q.mp4"
    rc = gv.main(["--image", str(make_image(tmp_path / "in.png", 320, 180)), "--prompt", "a boat", "--model",
                  str(models["cond"]), "--upsampler", str(models["up"]), "--preset", "quality", "--width", "288",
                  "--height", "160", "--num-frames", "9", "--seed", "1", "-o", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    from conftest import probe

    side = json.loads(out.with_suffix(".json").read_text())
    assert [(s["width"], s["height"]) for s in side["stages"]] == [(160, 96), (320, 192)]  # 2/3 of 288x160, then 2x
    assert (side["generation_width"], side["generation_height"]) == (320, 192)
    assert probe(out)["size"] == (288, 160) and "--steps" not in side["command"]


def test_ltx_0_9_1_runs_its_config_40_steps_rescaled_guidance_at_720p(models, image, tmp_path, monkeypatch, capsys):
    """configs/ltxv-2b-0.9.1.yaml: num_inference_steps 40, guidance_scale 3, rescaling_scale 0.7; its
    README: "works best on resolutions under 720 x 1280"."""
    from diffusers import LTXImageToVideoPipeline

    spec = gv.MODELS["ltx"]
    assert (spec.steps, spec.guidance, spec.guidance_extras, spec.default_resolution) == (
        40, 3.0, {"guidance_rescale": 0.7}, "720p")
    job = gv.plan_job(gv.Request(image=make_image(tmp_path / "w.png", 1600, 900), prompt="p",
                                 output=tmp_path / "x.mp4", model="ltx"), gv.Log(1))
    assert (job.width, job.height, job.stages[0].steps) == (1280, 720, 40)
    assert "works best" not in capsys.readouterr().err
    gv.plan_job(gv.Request(image=tmp_path / "w.png", prompt="p", output=tmp_path / "x.mp4", model="ltx",
                           resolution="1080p"), gv.Log(1))
    assert "works best at sizes up to 1280x720" in capsys.readouterr().err
    seen = []
    real = LTXImageToVideoPipeline.__call__
    monkeypatch.setattr(LTXImageToVideoPipeline, "__call__",
                        lambda self, *a, **k: (seen.append(k.get("guidance_rescale")), real(self, *a, **k))[1])
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--width", "96", "--height",
                  "64", "--num-frames", "9", "--steps", "1", "-o", str(tmp_path / "g.mp4"), "-q"])
    assert rc == 0 and seen == [0.7]
