"""LTX-2: video with its sound. Tiny LTX-2 pipelines (Gemma 3 text encoder, transformer with its
audio branch, video and audio VAEs, vocoder, latent upscaler) in the real repos' layouts, fetched
from the local Hub server by the real huggingface_hub client and run through main(); the MP4 is
read back with ffmpeg, audio included."""

import json
from collections.abc import Callable
import subprocess

import numpy as np
import pytest

from conftest import gv, load_order, make_image, probe
from test_hub import ALIAS_ARGS, hub, hub_root  # noqa: F401 (fixtures)

AAC_FRAME = 1024  # samples: AAC's frame, the finest unit its stream length has


def audio_streams(path):
    """(stream lines ffmpeg reports, decoded stereo samples of the first audio stream or None)."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    info = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    streams = [line.strip() for line in info.splitlines() if line.strip().startswith("Stream #")]
    audio = [s for s in streams if "Audio:" in s]
    if not audio:
        return streams, None
    pcm = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "2", "-"],
                         capture_output=True, check=True).stdout
    return streams, np.frombuffer(pcm, "<i2").reshape(-1, 2)


def run(hub, tmp_path, capsys, alias="ltx2", extra=(), name="v.mp4"):
    out = tmp_path / name
    argv = ["--image", str(make_image(tmp_path / "in.png", 160, 96)), "--prompt", "waves crash on the rocks",
            "--model", alias, "-o", str(out), "--seed", "5", "--memory-budget", "200", *ALIAS_ARGS[alias], *extra]
    rc = gv.main(argv)
    return rc, capsys.readouterr(), out


def test_ltx2_writes_h264_with_an_aac_track_exactly_as_long_as_the_video(hub, tmp_path, capsys):
    rc, cap, out = run(hub, tmp_path, capsys)
    assert rc == 0, cap.err
    info = probe(out)
    side = json.loads(out.with_suffix(".json").read_text())
    frames = len(info["frames"])
    assert info["codec"].startswith("h264") and info["size"] == (192, 128) and frames == 17 == side["num_frames"]
    streams, pcm = audio_streams(out)
    assert any("Audio: aac" in s and "24000 Hz" in s and "stereo" in s for s in streams), streams
    video_samples = frames / 24 * 24000  # 17 frames at 24 fps = 17,000 samples at 24 kHz
    assert abs(len(pcm) - video_samples) <= AAC_FRAME, (len(pcm), video_samples)
    assert np.abs(pcm).max() > 0  # a real waveform, not silence
    assert side["audio"] == {"codec": "aac", "bitrate": gv.AUDIO_BITRATE, "sample_rate": 24000, "channels": 2,
                             "duration_s": round(17 / 24, 6)}
    assert "with Gemma" in cap.err and "(video and audio)" in cap.err
    assert "frames at 24 fps, AAC sound at 24 kHz; made in" in cap.out  # the last line says it has sound


def test_no_audio_writes_the_same_video_without_a_sound_track(hub, tmp_path, capsys):
    rc, cap, out = run(hub, tmp_path, capsys, extra=["--no-audio"])
    assert rc == 0, cap.err
    streams, pcm = audio_streams(out)
    assert pcm is None and len(streams) == 1 and "Video: h264" in streams[0]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["audio"] is None and "--no-audio" in side["command"]
    rc, cap, with_audio = run(hub, tmp_path, capsys, name="a.mp4")
    assert rc == 0 and np.array_equal(np.stack(probe(out)["frames"]), np.stack(probe(with_audio)["frames"]))


def test_no_audio_is_refused_for_a_silent_model(models, image, tmp_path, capsys):
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--no-audio",
                  "-o", str(tmp_path / "x.mp4")])
    assert rc == 2 and "makes no sound" in capsys.readouterr().err and not list(tmp_path.glob("x.*"))


def test_fast_path_is_8_half_size_then_3_full_size_passes_with_lightricks_sigmas(hub, tmp_path, capsys, monkeypatch):
    """diffusers' pipelines/ltx2/utils.py (Lightricks' distilled.py): 8 sigmas at half size, the
    upscaler, then 3 at full size; no guidance of any kind: one transformer pass per sigma."""
    from diffusers import LTX2VideoTransformer3DModel

    calls = []
    real_forward = LTX2VideoTransformer3DModel.forward

    def forward(self, hidden_states, *args, **kwargs):
        calls.append((hidden_states.shape[0], hidden_states.shape[1], round(float(kwargs["timestep"].max()), 2)))
        return real_forward(self, hidden_states, *args, **kwargs)

    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward", forward)
    rc, cap, out = run(hub, tmp_path, capsys)
    assert rc == 0, cap.err
    half, full = 3 * (64 // 32) * (96 // 32), 3 * (128 // 32) * (192 // 32)  # 17 frames -> 3 latent frames
    sigmas1 = [1000.0, 993.75, 987.5, 981.25, 975.0, 909.38, 725.0, 421.88]
    assert [c for c in calls if c[1] == half] == [(1, half, t) for t in sigmas1]
    assert [c for c in calls if c[1] == full] == [(1, full, t) for t in (909.38, 725.0, 421.88)]
    side = json.loads(out.with_suffix(".json").read_text())
    assert [s["steps"] for s in side["stages"]] == [8, 3] and side["stages"][1]["width"] == 192
    assert side["upsample_seconds"] is not None


# Lightricks' LTX2Scheduler (ltx-core components/schedulers.py) as TI2VidTwoStagesPipeline runs it (no
# latent: 4,096 tokens, shift 2.05, stretched to a terminal of 0.1), computed from its code with torch:
# 40 steps (LTX-2.0's num_inference_steps, ltx_pipelines/utils/constants.py) and 30 (LTX-2.3's).
LTX2_SIGMAS_40 = [1.000000, 0.996449, 0.992737, 0.988851, 0.984780, 0.980510, 0.976026, 0.971312, 0.966349, 0.961116,
                  0.955593, 0.949753, 0.943568, 0.937008, 0.930037, 0.922614, 0.914696, 0.906229, 0.897156, 0.887408,
                  0.876908, 0.865565, 0.853273, 0.839908, 0.825323, 0.809343, 0.791758, 0.772313, 0.750697, 0.726524,
                  0.699312, 0.668450, 0.633152, 0.592384, 0.544771, 0.488430, 0.420719, 0.337809, 0.233936, 0.100000]
LTX2_SIGMAS_30 = [1.000000, 0.994957, 0.989603, 0.983908, 0.977840, 0.971358, 0.964421, 0.956978, 0.948972, 0.940336,
                  0.930994, 0.920854, 0.909810, 0.897735, 0.884479, 0.869858, 0.853651, 0.835584, 0.815319, 0.792427,
                  0.766363, 0.736418, 0.701656, 0.660813, 0.612141, 0.553148, 0.480164, 0.387541, 0.266120, 0.100000]


def test_stage_1_sigmas_are_lightricks_ltx2scheduler_not_a_shift_from_the_token_count():
    for steps, sigmas in ((40, LTX2_SIGMAS_40), (30, LTX2_SIGMAS_30)):
        assert [t / 1000 for t in gv.LTX2.schedule(steps)] == pytest.approx(sigmas, abs=2e-6)  # theirs: float32
    job = gv.plan_job(gv.Request(image=make_image_once(), prompt="p", output=None, model="ltx2-dev",
                                 width=1920, height=1088, num_frames=121), gv.Log(0))
    above, below = sum(t > 900 for t in job.stages[0].timesteps), sum(t < 500 for t in job.stages[0].timesteps)
    assert (above, below) == (18, 5)  # diffusers' shift from 32,640 tokens: 33 above 0.9 and 1 below 0.5


def make_image_once():
    import tempfile
    from pathlib import Path

    return make_image(Path(tempfile.mkdtemp()) / "in.png", 160, 90)


@pytest.mark.parametrize("alias, version", [("ltx2-dev", "2.0"), ("ltx2.3-dev", "2.3")])
def test_ltx2_quality_is_lightricks_two_stages_guided_at_half_size_then_the_distilled_lora(
        hub, tmp_path, capsys, monkeypatch, alias, version):
    """ltx_pipelines/ti2vid_two_stages.py: stage 1 at half size with CFG, STG and modality guidance
    (4 forwards a step) on LTX2Scheduler's sigmas; the 2x upscaler; stage 2 at full size on
    STAGE_2_DISTILLED_SIGMA_VALUES (0.909375, 0.725, 0.421875) with the distilled LoRA at 1.0 and no
    guidance (SimpleDenoiser: one forward a step); frame 0 encoded from the image at full size."""
    from diffusers import LTX2ImageToVideoPipeline, LTX2VideoTransformer3DModel

    calls, adapters, encodes = [], [], []
    real_forward, real_adapters = LTX2VideoTransformer3DModel.forward, LTX2ImageToVideoPipeline.set_adapters

    def forward(self, hidden_states, *args, **kwargs):
        calls.append((hidden_states.shape[0], hidden_states.shape[1], round(float(kwargs["timestep"].max()), 2),
                      kwargs.get("use_cross_timestep")))
        return real_forward(self, hidden_states, *args, **kwargs)

    def set_adapters(self, names, weights=None):
        adapters.append(list(weights))
        return real_adapters(self, names, weights)

    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward", forward)
    monkeypatch.setattr(LTX2ImageToVideoPipeline, "set_adapters", set_adapters)
    real_encode = gv.LTX2.encode_image
    monkeypatch.setattr(gv.LTX2, "encode_image", staticmethod(
        lambda pipe, image, h, w: (encodes.append((image.size, w, h)), real_encode(pipe, image, h, w))[1]))
    rc, cap, out = run(hub, tmp_path, capsys, alias=alias)
    assert rc == 0, cap.err
    half, full = 2 * (32 // 32) * (64 // 32), 2 * (64 // 32) * (128 // 32)  # 96x64 -> 64x32 and 128x64; 9 frames
    sigmas1 = [round(t, 2) for t in gv.LTX2.schedule(2)]
    assert [c[:3] for c in calls if c[1] == half] == [(b, half, t) for t in sigmas1 for b in (2, 1, 1)]
    assert [c[:3] for c in calls if c[1] == full] == [(1, full, t) for t in (909.38, 725.0, 421.88)]
    assert {c[3] for c in calls} == {version == "2.3"}  # use_cross_timestep: 2.0's own timesteps, 2.3's crossed
    assert adapters[-2:] == [[0.0], [1.0]]  # the distilled LoRA off for stage 1, on at 1.0 for stage 2
    assert encodes == [((128, 64), 128, 64)]  # stage 2's frame 0: the image encoded at full size
    side = json.loads(out.with_suffix(".json").read_text())
    assert [(s["steps"], s["guided"], s["width"]) for s in side["stages"]] == [(2, True, 64), (3, False, 128)]
    lora, repo = gv.MODELS[alias].stage2_lora.split("@")
    assert side["stage2_lora"]["source"] == f"{repo}/{lora}" and side["stage2_lora"]["passes"] == "full"
    assert side["stage2_lora"]["scale"] == 1.0 and side["loras"] == []
    assert side["negative_prompt"] == gv.LTX2_NEGATIVE_PROMPT
    from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT

    assert gv.LTX2_NEGATIVE_PROMPT == DEFAULT_NEGATIVE_PROMPT  # diffusers' export of Lightricks' text


def test_the_quality_plan_costs_what_the_two_stages_cost(tmp_path):
    """5 s of 1080p: 40 guided steps at 960x544 (4 forwards each) and 3 unguided at 1920x1088,
    instead of 40 guided full-size steps (the tool's old one-stage plan: 304,764 TFLOP)."""
    job = gv.plan_job(gv.Request(image=make_image(tmp_path / "in.png", 160, 90), prompt="p", output=tmp_path / "y.mp4",
                                 model="ltx2", preset="quality", width=1920, height=1088, num_frames=121), gv.Log(0))
    assert job.spec.alias == "ltx2-dev" and [s.steps for s in job.stages] == [40, 3]

    def one(w, h):
        return sum(gv.transformer_flops(w, h, 121, job.spec, False, job.dims, guided=False))

    assert job.stages[0].tflop == pytest.approx(40 * 4 * one(960, 544))
    assert job.stages[1].tflop == pytest.approx(3 * one(1920, 1088))
    assert sum(s.tflop for s in job.stages) < 304_764 / 4


def test_the_distilled_fast_path_also_sees_the_image_at_full_size_in_stage_2(hub, tmp_path, capsys, monkeypatch):
    """Lightricks' distilled.py re-encodes the image at full size for stage 2 too; diffusers'
    image-to-video pipeline, given latents, would keep the upscaled stage-1 frame (measured before:
    the only encode of a 512x288 video's image was at 256x160)."""
    from diffusers import AutoencoderKLLTX2Video

    sizes = []
    real = AutoencoderKLLTX2Video.encode
    monkeypatch.setattr(AutoencoderKLLTX2Video, "encode",
                        lambda self, x, *a, **k: (sizes.append(tuple(x.shape[-2:])), real(self, x, *a, **k))[1])
    rc, cap, out = run(hub, tmp_path, capsys)
    assert rc == 0, cap.err
    assert sizes == [(64, 96), (128, 192)]  # stage 1 at half size, stage 2 at full size


def test_the_full_models_two_stages_keep_their_weights_unquantized_for_the_lora(tmp_path):
    assert plan_on_a_mac(tmp_path, 128, model="ltx2-dev").quantize == "none"
    with pytest.raises(gv.UsageError, match="whose second stage runs its distilled LoRA"):
        plan_on_a_mac(tmp_path, 128, model="ltx2-dev", quantize="int8")
    with pytest.raises(gv.UsageError, match="a Mac with 96 GB or more runs it"):
        plan_on_a_mac(tmp_path, 64, model="ltx2-dev")


def test_gemma_is_loaded_used_and_freed_before_the_transformer_loads(hub, tmp_path, capsys, monkeypatch):
    events = load_order(monkeypatch)
    rc, cap, _ = run(hub, tmp_path, capsys)
    assert rc == 0, cap.err
    assert events == ["load Gemma3ForConditionalGeneration (transformer: False)", "encoded, freed",
                      "load denoiser (text encoder: False)"]


def test_the_conditioning_image_gets_ltx2s_crf_33_round_trip_without_pyav(hub, tmp_path, capsys, monkeypatch):
    seen = []
    real = gv.h264_roundtrip

    def spy(pixels, crf):
        seen.append(crf)
        return real(pixels, crf)

    monkeypatch.setattr(gv, "h264_roundtrip", spy)
    rc, cap, out = run(hub, tmp_path, capsys)
    assert rc == 0, cap.err
    assert seen == [33]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["conditioning_image"]["h264_crf"] == 33 and side["conditioning_image"]["blur_sigma"] == 0.0


def spy_on_conditions(monkeypatch, seen: Callable) -> list:
    """seen(transformer, kwargs) at every LTX-2 transformer pass; returns the list each condition
    pipeline call appends its conditions to, as (index, frames)."""
    from diffusers import LTX2ConditionPipeline, LTX2VideoTransformer3DModel

    conditions = []
    real_forward, real_call = LTX2VideoTransformer3DModel.forward, LTX2ConditionPipeline.__call__

    def forward(self, hidden_states, *args, **kwargs):
        seen(self, kwargs)
        return real_forward(self, hidden_states, *args, **kwargs)

    def call(self, *args, **kwargs):
        conditions.append([(c.index, len(c.frames) if isinstance(c.frames, list) else 1) for c in kwargs["conditions"]])
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward", forward)
    monkeypatch.setattr(LTX2ConditionPipeline, "__call__", call)
    return conditions


def test_an_ltx2_long_clip_carries_its_picture_and_its_sound_from_window_to_window(hub, tmp_path, capsys,
                                                                                    monkeypatch):
    """--segment-prompt on LTX-2: window 2 runs the condition pipeline from window 1's last 17
    frames (a video condition at frame 0) with their sound held in every pass, as --extend holds
    an original's; the MP4 is window 1, then window 2's new frames, and one soundtrack as long."""
    prefixes = []
    conditions = spy_on_conditions(monkeypatch, lambda module, kwargs: prefixes.append(
        None if module.audio_prefix is None else module.audio_prefix.shape[1]))
    rc, cap, out = run(hub, tmp_path, capsys, extra=["--num-frames", "40", "--segment-prompt", "the tide comes in",
                                                      "--segment-prompt", "a gull lands"])
    assert rc == 0, cap.err
    side = json.loads(out.with_suffix(".json").read_text())
    assert [s["new_frames"] for s in side["segments"]] == [33, 16]  # windows of 33 frames: 2 x 33 - 17 = 49
    assert conditions == [[(0, 17)]] * 2  # window 2 only (window 1 starts from the image): both its stages
    held = round(17 / 24 * 25)  # audio latents (25 a second) under the 17 frames window 2 starts from
    assert prefixes[:11] == [None] * 11 and set(prefixes[11:]) == {held}  # window 1's 8 + 3 passes hold nothing
    assert len(probe(out)["frames"]) == 49
    _, pcm = audio_streams(out)
    assert abs(len(pcm) - 49 / 24 * 24000) <= AAC_FRAME and np.abs(pcm).max() > 0  # one track, the clip's length
    assert side["audio"]["duration_s"] == round(49 / 24, 6)


def test_audio_track_is_cut_or_padded_to_the_video_and_written_as_16_bit_pcm(tmp_path):
    import wave

    track = gv.AudioTrack(np.full((2, 1000), 0.5, np.float32), 24000)
    assert track.fitted(0.05).samples.shape == (2, 1200)  # padded with silence
    assert np.all(track.fitted(0.05).samples[:, 1000:] == 0)
    assert track.fitted(0.01).samples.shape == (2, 240)  # cut
    loud = gv.AudioTrack(np.array([[2.0, -2.0, np.nan]] * 2, np.float32), 16000)
    gv.write_wav(loud, tmp_path / "a.wav")
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, 16000, 3)
        assert np.frombuffer(w.readframes(3), "<i2").tolist() == [32767, 32767, -32767, -32767, 0, 0]


def plan_on_a_mac(tmp_path, memory_gb, model="ltx2", **request):
    """The memory plan for 5 s of 1080p on a Mac of this size (bf16, its default budget)."""
    req = gv.Request(image=make_image(tmp_path / "in.png", 160, 90), prompt="p", output=tmp_path / "y.mp4",
                     model=model, **request)
    job = gv.plan_job(req, gv.Log(0))
    return gv.plan_memory(job, job.dims, "mps", 2, int(memory_gb * gv.MPS_WORKING_SET * 2**30), 2**30, req)


def test_the_plan_quantizes_only_as_far_as_the_mac_needs_and_names_the_mac_that_fits(tmp_path):
    assert plan_on_a_mac(tmp_path, 128).quantize == "none"  # ~49 GiB in bf16
    assert plan_on_a_mac(tmp_path, 64).quantize == "int8"
    assert plan_on_a_mac(tmp_path, 32).quantize == "int4"
    with pytest.raises(gv.UsageError, match=r"a Mac with (32|36) GB or more runs it"):
        plan_on_a_mac(tmp_path, 16)
    with pytest.raises(gv.UsageError, match=r"a Mac with 96 GB or more runs it"):
        plan_on_a_mac(tmp_path, 64, quantize="none")
    assert plan_on_a_mac(tmp_path, 128, quantize="int4").quantize == "int4"  # asked for: done
    plan = plan_on_a_mac(tmp_path, 32)
    # Gemma's linear layers (11.2B) at ~0.53 bytes a weight, its 1.0B token embeddings in bf16, plus
    # 1024-token prompts; the transformer (20.4B with its connectors) at ~0.53 bytes a weight
    assert 7.5 < plan.estimate["text_encoder"] < 8.5 and plan.estimate["transformer"] < 11


def test_quantize_is_refused_for_models_that_never_need_it(models, image, tmp_path, capsys):
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--quantize", "int8",
                  "-o", str(tmp_path / "x.mp4")])
    assert rc == 2 and "runs unquantized" in capsys.readouterr().err


def frames_and_modules(hub, tmp_path, capsys, monkeypatch, quantize):
    loaded = {}
    real_te, real_load = gv.load_text_encoder, gv.load_pipeline

    def te(*a, **k):
        pipe = real_te(*a, **k)
        loaded["text_encoder"] = {type(m).__name__ for m in pipe.text_encoder.modules()}
        return pipe

    def load(*a, **k):
        pipe, up = real_load(*a, **k)
        loaded["transformer"] = {type(m).__name__ for m in pipe.transformer.modules()}
        return pipe, up

    monkeypatch.setattr(gv, "load_text_encoder", te)
    monkeypatch.setattr(gv, "load_pipeline", load)
    rc, cap, out = run(hub, tmp_path, capsys, alias="ltx2", name=f"{quantize}.mp4",
                       extra=["--quantize", quantize, "--dtype", "bfloat16"])
    assert rc == 0, cap.err
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["memory_plan"]["quantize"] == quantize
    return np.stack(probe(out)["frames"]).astype(float), loaded


def test_int8_and_int4_weights_load_quantized_and_stay_close_to_bf16(hub, tmp_path, capsys, monkeypatch):
    ref, loaded = frames_and_modules(hub, tmp_path, capsys, monkeypatch, "none")
    assert "QLinear" not in loaded["text_encoder"] | loaded["transformer"]
    psnr = {}
    for q in ("int8", "int4"):
        frames, loaded = frames_and_modules(hub, tmp_path, capsys, monkeypatch, q)
        assert "QLinear" in loaded["text_encoder"] and "QLinear" in loaded["transformer"]
        psnr[q] = 10 * np.log10(255**2 / max(((frames - ref) ** 2).mean(), 1e-9))
    # Tiny random weights, one seed (tests/benchmarks/run_benchmarks.py ltx2 measures more).
    assert psnr["int8"] > 28 and psnr["int4"] > 20 and psnr["int8"] > psnr["int4"], psnr  # measured 32.6, 31.0


def test_a_gated_repo_says_how_to_get_access_in_one_line_and_works_with_a_token(hub, tmp_path, capsys,
                                                                               monkeypatch):
    hub.gated.add("Lightricks/LTX-2")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))  # no stored login
    rc, cap, out = run(hub, tmp_path, capsys, alias="ltx2-dev")
    last = cap.err.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("error: Lightricks/LTX-2 is gated: accept its licence at "), cap.err
    assert "hf auth login" in last and "Traceback" not in cap.err and not out.exists()
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    rc, cap, out = run(hub, tmp_path, capsys, alias="ltx2-dev")
    assert rc == 0, cap.err


def test_the_plan_counts_every_ltx2_part_from_its_safetensors_headers(hub_root):
    """Transformer with its text connectors (they run together), video VAE with the audio VAE and
    vocoder (they decode together), Gemma alone, and the upscaler the index does not list."""
    import torch
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3ForConditionalGeneration

    folder = hub_root / "Lightricks/LTX-2"

    def count(cls, sub):
        tensors = cls.from_pretrained(str(folder / sub)).state_dict().values()
        return sum({t.data_ptr(): t.numel() for t in tensors}.values())  # tied weights are stored once

    dims = gv.model_dims(folder, gv.MODELS["ltx2-dev"])
    assert dims.params["transformer"] == count(LTX2VideoTransformer3DModel, "transformer") + count(
        LTX2TextConnectors, "connectors")
    assert dims.params["vae"] == count(AutoencoderKLLTX2Video, "vae") + count(AutoencoderKLLTX2Audio, "audio_vae") + \
        count(LTX2Vocoder, "vocoder")
    assert dims.params["text_encoder"] == count(Gemma3ForConditionalGeneration, "text_encoder")
    assert "latent_upsampler" in dims.params and dims.head_dims == (16,)  # the tiny model's 2 x 16 heads
    assert (dims.spatial, dims.temporal) == (32, 8) and torch.tensor(dims.video_share) == 0.5  # 32 wide both


def test_ltx23_makes_48_khz_stereo_and_never_fetches_its_prompt_enhancer_processor(hub, tmp_path, capsys):
    rc, cap, out = run(hub, tmp_path, capsys, alias="ltx2.3")
    assert rc == 0, cap.err
    streams, pcm = audio_streams(out)
    assert any("Audio: aac" in s and "48000 Hz" in s and "stereo" in s for s in streams), streams
    assert abs(len(pcm) - 17 / 24 * 48000) <= AAC_FRAME
    fetched = {path for repo, path in hub.downloaded() if repo == "diffusers/LTX-2.3-Distilled-Diffusers"}
    assert fetched and not any(p.startswith("processor/") for p in fetched)
    assert ("rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers", "latent_upsampler/config.json") in \
        hub.downloaded()


@pytest.mark.parametrize("alias", ["ltx2-dev", "ltx2.3-dev"])  # plain processors; 2.3's perturbed (STG) ones
def test_chunked_attention_runs_ltx2s_own_processors_and_matches_stock(hub, tmp_path, capsys, monkeypatch, alias):
    """What each stage hands on (video and audio latents, through the family's stage_result hook)
    is the same with stock and chunked attention, up to float rounding. (The decoded frames are not
    compared: the tiny 2.3 VAE's random weights turn 1e-6 in its input into visible differences.)"""
    import torch

    seen = {}
    real = gv.LTX2.stage_result.__func__

    def record(cls, pipe, out, job, stage):
        seen.setdefault(job.output.stem, []).extend(out)
        return real(cls, pipe, out, job, stage)

    monkeypatch.setattr(gv.LTX2, "stage_result", classmethod(record))
    for mode in ("stock", "5"):  # 5 query rows a chunk: many chunks even at this size
        rc, cap, out = run(hub, tmp_path, capsys, alias=alias, name=f"{mode}.mp4", extra=["--attention", mode])
        assert rc == 0, cap.err
        assert ("chunked 5 rows" in cap.err) == (mode == "5")
    assert len(seen["stock"]) == len(seen["5"]) == 4  # two stages, video and audio each
    for a, b in zip(seen["stock"], seen["5"]):
        assert torch.allclose(a, b, atol=1e-4) and not torch.equal(a, torch.zeros_like(a))


def test_a_failed_mux_leaves_nothing_behind(hub, tmp_path, capsys, monkeypatch):
    import subprocess as sp

    real = sp.run

    def failing(cmd, *a, **k):
        if "-c:a" in cmd:  # the mux: ffmpeg says no
            return sp.CompletedProcess(cmd, 1, "", "Invalid data found when processing input\n")
        return real(cmd, *a, **k)

    monkeypatch.setattr(sp, "run", failing)
    rc, cap, out = run(hub, tmp_path, capsys)
    assert rc == 1 and "Invalid data found when processing input" in cap.err.strip().splitlines()[-1], cap.err
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "cache")  # cache: the hub fixture's
    assert left == [".v.mp4.resume.safetensors", "in.png"]  # no video, sidecar, WAV or partial: the state only
    assert "the same command resumes v.mp4 from the decode" in cap.err


def test_the_sidecar_command_pins_the_quantization_the_plan_chose(hub, tmp_path, capsys):
    rc, cap, out = run(hub, tmp_path, capsys, extra=["--quantize", "int8"])
    assert rc == 0, cap.err
    side = json.loads(out.with_suffix(".json").read_text())
    assert "--quantize=int8" in side["command"]
    rc, cap, out = run(hub, tmp_path, capsys, name="n.mp4")
    assert "--quantize=none" in json.loads(out.with_suffix(".json").read_text())["command"]


def test_without_optimum_quanto_the_plan_stays_unquantized_and_an_explicit_ask_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(gv, "_dist_version", lambda name: None if name == "optimum-quanto" else "1.0")
    assert plan_on_a_mac(tmp_path, 128).quantize == "none"
    with pytest.raises(gv.UsageError, match="a Mac with 96 GB or more runs it"):
        plan_on_a_mac(tmp_path, 64)  # would have been int8
    with pytest.raises(gv.UsageError, match="--quantize int8 needs optimum-quanto"):
        plan_on_a_mac(tmp_path, 128, quantize="int8")


def ltx2_lora(path, hub_root, width=32, audio=True, seed=0):
    """A LoRA in ComfyUI's layout (as Lightricks' LTX-2 LoRAs ship) for the tiny LTX-2 transformer:
    its video self-attention and, if `audio`, its audio self-attention."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in ("attn1.to_q", "attn1.to_v") + (("audio_attn1.to_q", "audio_attn1.to_v") if audio else ()):
        key = f"diffusion_model.transformer_blocks.0.{layer}"
        tensors[f"{key}.lora_A.weight"] = torch.randn(4, width, generator=g) * 0.5
        tensors[f"{key}.lora_B.weight"] = torch.randn(width, 4, generator=g) * 0.5
    save_file(tensors, str(path))
    return path


def test_an_ltx2_lora_changes_picture_and_sound_and_is_recorded(hub, hub_root, tmp_path, capsys):
    lora = ltx2_lora(tmp_path / "style.safetensors", hub_root)
    rc, cap, plain = run(hub, tmp_path, capsys, name="plain.mp4")
    assert rc == 0, cap.err
    rc, cap, styled = run(hub, tmp_path, capsys, name="styled.mp4", extra=["--lora", f"{lora}:0.9"])
    assert rc == 0, cap.err
    a, b = (np.stack(probe(p)["frames"]).astype(int) for p in (plain, styled))
    assert np.abs(a - b).max() > 2  # the picture changed
    assert not np.array_equal(audio_streams(plain)[1], audio_streams(styled)[1])  # and the sound
    side = json.loads(styled.with_suffix(".json").read_text())
    assert side["loras"][0]["scale"] == 0.9 and f"--lora={lora}:0.9" in side["command"]


def test_a_lora_for_another_width_is_refused_and_one_without_audio_layers_is_doubted(hub, hub_root, tmp_path,
                                                                                    capsys):
    assert run(hub, tmp_path, capsys, name="first.mp4")[0] == 0  # downloaded: the plan reads the tiny configs
    narrow = ltx2_lora(tmp_path / "narrow.safetensors", hub_root, width=16)
    rc, cap, out = run(hub, tmp_path, capsys, extra=["--lora", str(narrow)])
    assert rc == 2 and "made for a model with hidden size 16" in cap.err and not out.exists()
    silent = ltx2_lora(tmp_path / "video-only.safetensors", hub_root, audio=False)
    rc, cap, out = run(hub, tmp_path, capsys, extra=["--lora", str(silent)])
    assert rc == 0 and "adapts no audio layer" in cap.err, cap.err


def test_a_lora_keeps_the_weights_unquantized_because_on_quantized_layers_it_does_nothing(tmp_path):
    lora = ltx2_lora(tmp_path / "l.safetensors", None, width=4096)  # the real model's width
    with pytest.raises(gv.UsageError, match="a LoRA needs the unquantized transformer"):
        plan_on_a_mac(tmp_path, 128, quantize="int8", lora=(str(lora),))
    with pytest.raises(gv.UsageError, match="a Mac with 96 GB or more runs it"):
        plan_on_a_mac(tmp_path, 64, lora=(str(lora),))  # int8 without the LoRA
    assert plan_on_a_mac(tmp_path, 128, lora=(str(lora),)).quantize == "none"


def test_an_end_image_and_a_keyframe_run_through_ltx2s_condition_pipeline_at_their_exact_frames(
        hub, tmp_path, capsys, monkeypatch):
    """Lightricks' distilled.py / ti2vid_two_stages.py: frame 0 replaces the first latent frame, every
    other image is an appended keyframe condition at its pixel frame (keyframe_cond.py), in both
    stages, encoded again at each stage's size; CRF ours (0 to the pipeline)."""
    from diffusers import LTX2ConditionPipeline

    calls, placed = [], []
    real_call, real_place = LTX2ConditionPipeline.__call__, LTX2ConditionPipeline._prepare_keyframe_coords

    def call(self, *args, **kwargs):
        calls.append([(c.index, c.strength, c.crf, c.frames.size) for c in kwargs["conditions"]])
        return real_call(self, *args, **kwargs)

    def place(self, **kwargs):
        placed.append(kwargs["pixel_frame_idx"])
        return real_place(self, **kwargs)

    monkeypatch.setattr(LTX2ConditionPipeline, "__call__", call)
    monkeypatch.setattr(LTX2ConditionPipeline, "_prepare_keyframe_coords", place)
    middle = make_image(tmp_path / "mid.png", 160, 96)
    rc, cap, out = run(hub, tmp_path, capsys, extra=["--end-image", str(make_image(tmp_path / "end.png", 96, 160)),
                                                      "--keyframe", f"{middle}@#8"])
    assert rc == 0, cap.err
    assert [[c[:3] for c in stage] for stage in calls] == [[(0, 1.0, 0), (1, 1.0, 0), (1, 1.0, 0)]] * 2
    assert placed == [8, 16, 8, 16]  # the keyframe at frame 8 and the end image at the last (16), both stages
    assert {c[3] for stage in calls for c in stage} == {(192, 128)}  # prepared at full size; the pipeline resizes
    info = probe(out)
    side = json.loads(out.with_suffix(".json").read_text())
    assert len(info["frames"]) == 17 and [c["frame_index"] for c in side["conditions"]] == [8, 16]
    assert "--keyframe" in side["command"] and side["audio"] is not None
    assert "Traceback" not in cap.err and "warn" not in cap.err.lower()


def test_an_ltx2_draft_has_its_sound_and_its_final_is_the_run_from_scratch(hub, tmp_path, capsys, monkeypatch):
    """A draft is stage 1 alone (half size, with the sound stage 1 made); it keeps what stage 2
    starts from, the sound's latents included; its final runs stage 2 only and equals the whole
    run made from scratch with the same settings."""
    import shlex

    from diffusers import LTX2VideoTransformer3DModel
    from safetensors.torch import load_file

    passes, written = [], {}
    real_forward, real_write = LTX2VideoTransformer3DModel.forward, gv.write_video

    def forward(self, hidden_states, *args, **kwargs):
        passes.append(hidden_states.shape[1])
        return real_forward(self, hidden_states, *args, **kwargs)

    def keep(frames, job, *a, **k):
        written[job.output.stem] = chunks = []
        return real_write((chunks.append(c.copy()) or c for c in frames), job, *a, **k)

    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward", forward)
    monkeypatch.setattr(gv, "write_video", keep)
    rc, cap, draft = run(hub, tmp_path, capsys, extra=["--draft"], name="d.mp4")
    assert rc == 0, cap.err
    assert len(passes) == 8 and probe(draft)["size"] == (96, 64)
    streams, pcm = audio_streams(draft)
    assert any("Audio: aac" in s for s in streams) and np.abs(pcm).max() > 0  # the draft has its sound
    kept = load_file(str(tmp_path / "d.latents.safetensors"))
    assert set(kept) == {"latents", "audio"}  # stage 2 of the final starts from both
    passes.clear()
    final = tmp_path / "f.mp4"
    assert gv.main(["--from-draft", str(draft.with_suffix(".json")), "-o", str(final)]) == 0, capsys.readouterr().err
    assert len(passes) == 3  # stage 2 only
    fside = json.loads(final.with_suffix(".json").read_text())
    scratch = tmp_path / "s.mp4"
    assert gv.main(shlex.split(fside["command"])[2:] + ["-o", str(scratch)]) == 0, capsys.readouterr().err
    a, b = (np.concatenate(written[n]) for n in ("f", "s"))
    assert a.shape == (17, 128, 192, 3) and np.array_equal(a, b)
    assert abs(len(audio_streams(final)[1]) - len(audio_streams(scratch)[1])) == 0


def test_an_ltx2_extension_continues_the_picture_and_the_sound(hub, tmp_path, capsys, monkeypatch):
    """--extend on LTX-2: the original's last 17 frames are a video condition at frame 0 of the
    condition pipeline; their sound is held in every pass, clean and at timestep 0 (Lightricks'
    retake.py keeps audio with a denoise mask of 0); the MP4 is the original (frames and sound)
    followed by exactly the new frames and the new sound."""
    rc, cap, first = run(hub, tmp_path, capsys, name="first.mp4")  # 17 frames with sound: the original
    assert rc == 0, cap.err
    held = []

    def seen(module, kwargs):
        t = kwargs["audio_timestep"]
        held.append((t.dim(), int((t == 0).sum(1).min()) if t.dim() == 2 else None, float(t.max()),
                     kwargs["audio_hidden_states"][:, :module.audio_prefix.shape[1]].clone()))

    conditions = spy_on_conditions(monkeypatch, seen)
    out = tmp_path / "longer.mp4"
    rc = gv.main(["--extend", str(first), "--prompt", "the waves keep coming", "--model", "ltx2", "--preset", "fast",
                  "--num-frames", "8", "-o", str(out), "--seed", "6", "--memory-budget", "200"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert conditions == [[(0, 17)]] * 2  # the original's last 17 frames, in both stages
    prefix = round(17 / 24 * 25)  # audio latents (25 a second) under the context frames
    assert all(dim == 2 and zeros == prefix and top > 0 for dim, zeros, top, _ in held)
    assert all(bool((h[3] == held[0][3]).all()) for h in held[:8])  # the same clean sound in every stage-1 pass
    frames_in, frames_out = probe(first)["frames"], probe(out)["frames"]
    from test_extend import psnr

    # the original's frames re-encoded (a random model's noise-like frames lose more to H.264 than a photo)
    assert len(frames_out) == 17 + 8 and min(psnr(a, b) for a, b in zip(frames_in, frames_out[:17])) > 30
    _, pcm_in = audio_streams(first)
    _, pcm_out = audio_streams(out)
    assert abs(len(pcm_out) - 25 / 24 * 24000) <= AAC_FRAME  # the sound as long as the video
    n = len(pcm_in) - 2 * AAC_FRAME
    assert np.corrcoef(pcm_in[AAC_FRAME:n, 0], pcm_out[AAC_FRAME:n, 0])[0, 1] > 0.95  # the original's own sound first
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["extend"]["new_frames"] == 8 and side["audio"]["duration_s"] == round(25 / 24, 6)
