"""LTX-2.5: Lightricks' recommended model (Gemma 4 text encoder, one diffusers repo holding the
distilled and the full transformer). A tiny Lightricks/LTX-2.5-Diffusers in the real layout is
fetched from the local Hub; what the pipeline receives is asserted against Lightricks' constants
(Lightricks/LTX-2 packages/ltx-pipelines and ltx-core), each named beside it."""

import json
import shutil

import pytest

from conftest import gv
from test_hub import hub, hub_root  # noqa: F401 (fixtures)
from test_ltx2 import AAC_FRAME, LTX2_SIGMAS_30, audio_streams, run

# ltx-pipelines utils/constants.py: DISTILLED_SIGMA_VALUES (without the final 0) and
# STAGE_2_DISTILLED_SIGMA_VALUES, x 1000 as the transformer's timestep
STAGE1 = [1000.0, 993.75, 987.5, 981.25, 975.0, 909.38, 725.0, 421.88]
STAGE2 = [909.38, 725.0, 421.88]
LTX_2_4_IMAGE_CRF = 18  # ltx-pipelines utils/constants.py (LTX-2.5 runs the 2.4 parameters)
ANCESTRAL_ETA, ANCESTRAL_NOISE_SEED_OFFSET = 1.0, 10000  # ltx-pipelines distilled.py
STG_BLOCKS = [28]  # ltx-pipelines utils/constants.py LTX_2_3_PARAMS, which 2.4 keeps
SEED = 5  # test_ltx2.run's


def spy(monkeypatch):
    """Records each transformer forward (batch, tokens, timestep, the keyframe mask's first-frame
    share), the scheduler each stage ran with, each image CRF and Gemma's input ids."""
    import torch
    from diffusers import LTX2ImageToVideoPipeline, LTX2VideoTransformer3DModel
    from transformers import Gemma4UnifiedForConditionalGeneration

    seen = {"forward": [], "stage": [], "crf": [], "ids": [], "weight": []}
    real_forward, real_call = LTX2VideoTransformer3DModel.forward, LTX2ImageToVideoPipeline.__call__
    real_gemma, real_h264 = Gemma4UnifiedForConditionalGeneration.forward, gv.h264_roundtrip

    def forward(self, hidden_states, *args, **kwargs):
        mask = kwargs.get("video_keyframes_mask")
        frame = kwargs["height"] * kwargs["width"]
        marked = None if mask is None else (int(mask[0, :frame].sum()), int(mask[0, frame:].sum()))
        seen["forward"].append((hidden_states.shape[1], round(float(kwargs["timestep"].max()), 2), marked))
        seen["weight"].append(float(self.proj_in.weight.double().sum()))
        return real_forward(self, hidden_states, *args, **kwargs)

    def call(self, *args, **kwargs):
        seen["stage"].append((type(self.scheduler).__mro__[1].__name__ if type(self.scheduler).__name__ == "Seeded"
                              else type(self.scheduler).__name__, getattr(self.scheduler.config, "eta", None)))
        out = real_call(self, *args, **kwargs)
        noise = getattr(self.scheduler, "noise", None)
        seen["stage"][-1] += (noise.initial_seed() if isinstance(noise, torch.Generator) else None,)
        return out

    def gemma(self, input_ids=None, **kwargs):
        seen["ids"].append(input_ids.tolist())
        return real_gemma(self, input_ids=input_ids, **kwargs)

    def h264(pixels, crf):
        seen["crf"].append(crf)
        return real_h264(pixels, crf)

    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward", forward)
    monkeypatch.setattr(LTX2ImageToVideoPipeline, "__call__", call)
    monkeypatch.setattr(Gemma4UnifiedForConditionalGeneration, "forward", gemma)
    monkeypatch.setattr(gv, "h264_roundtrip", h264)
    return seen


def test_ltx25_distilled_is_lightricks_distilled_pipeline_for_2_5(hub, tmp_path, capsys, monkeypatch):
    """distilled.py for 2.5: stage 1 at half size on the 8 distilled sigmas with the ancestral
    Euler step (eta 1, its noise seeded seed + 10000), one forward per sigma (none at sigma 0); the
    upscaler; stage 2 at full size on 3 sigmas with the plain Euler step; the image at CRF 18; the
    first latent frame marked as a single-frame latent in every forward; Gemma 4's prompt read
    from <bos>; sound at 48 kHz."""
    seen = spy(monkeypatch)
    rc, cap, out = run(hub, tmp_path, capsys, alias="ltx2.5")
    assert rc == 0, cap.err
    half, full = 3 * 2 * 3, 3 * 4 * 6  # 17 frames: 3 latent frames; 96x64 and 192x128 in 32 px tokens
    assert [(t, c) for t, c, _ in seen["forward"] if t == half] == [(half, s) for s in STAGE1]
    assert [(t, c) for t, c, _ in seen["forward"] if t == full] == [(full, s) for s in STAGE2]
    assert {m for t, _, m in seen["forward"]} == {(half // 3, 0), (full // 3, 0)}  # frame 0's tokens, only they
    assert seen["stage"] == [("LTXEulerAncestralRFScheduler", ANCESTRAL_ETA, SEED + ANCESTRAL_NOISE_SEED_OFFSET),
                             ("FlowMatchEulerDiscreteScheduler", None, None)]
    assert seen["crf"] == [LTX_2_4_IMAGE_CRF]
    bos = 2  # Gemma's <bos> (the tiny tokenizer keeps Gemma's ids 0-4)
    assert seen["ids"] and all([i for i in row if i != 0][0] == bos for ids in seen["ids"] for row in ids)
    streams, pcm = audio_streams(out)
    assert any("Audio: aac" in s and "48000 Hz" in s for s in streams) and abs(len(pcm) - 17 / 24 * 48000) <= AAC_FRAME
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["conditioning_image"]["h264_crf"] == LTX_2_4_IMAGE_CRF and side["model"] == "ltx2.5"
    fetched = {path for _, path in hub.downloaded()}
    assert not any(p.startswith(("transformer_full/", "duration_head/", "diffusion_decoder/")) for p in fetched)


def test_the_ancestral_steps_are_seeded_so_a_run_repeats_and_another_seed_differs(hub, tmp_path, capsys):
    from conftest import probe  # noqa: F401  (the frames are compared as written)
    import numpy as np

    frames = []
    written = gv.write_video

    def keep(chunks, job, *a, **k):
        frames.append([])
        return written((frames[-1].append(c.copy()) or c for c in chunks), job, *a, **k)

    import _pytest.monkeypatch

    with _pytest.monkeypatch.MonkeyPatch.context() as m:
        m.setattr(gv, "write_video", keep)
        for seed in ("5", "5", "6"):
            rc, cap, _ = run(hub, tmp_path, capsys, alias="ltx2.5", extra=["--seed", seed, "--overwrite"])
            assert rc == 0, cap.err
    a, b, c = (np.concatenate(f) for f in frames)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_ltx25_dev_runs_the_full_transformer_two_stages_and_its_lora(hub, hub_root, tmp_path, capsys, monkeypatch):
    """ti2vid_two_stages.py with the 2.4 parameters: the full model (transformer_full/, which the
    index does not name) guided at half size on LTX2Scheduler's sigmas (CFG, STG in block 28,
    modality: 3 forwards a step), stage 2 on 3 sigmas with the rank-450 distilled LoRA, CRF 18."""
    import torch
    from safetensors.torch import load_file

    seen = spy(monkeypatch)
    rc, cap, out = run(hub, tmp_path, capsys, alias="ltx2.5-dev")
    assert rc == 0, cap.err
    full, distilled = ({k: v for f in (hub_root / gv.LTX25_REPO / sub).glob("*.safetensors")
                        for k, v in load_file(str(f)).items()} for sub in ("transformer_full", "transformer"))
    want = float(full["proj_in.weight"].double().sum())
    assert want != float(distilled["proj_in.weight"].double().sum())
    assert seen["weight"][0] == pytest.approx(want)  # stage 1 ran the full model's weights
    half = 2 * 1 * 2
    sigmas = [round(t, 2) for t in gv.LTX2.schedule(2)]
    assert [c for t, c, _ in seen["forward"] if t == half] == [s for s in sigmas for _ in range(3)]
    assert seen["crf"] == [LTX_2_4_IMAGE_CRF]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["guidance_extras"]["spatio_temporal_guidance_blocks"] == STG_BLOCKS
    assert side["stage2_lora"]["source"] == f"{gv.LTX25_REPO}/ltx-2.5-22b-distilled-lora-450-bf16.safetensors"
    assert [s["guided"] for s in side["stages"]] == [True, False]
    fetched = {path for _, path in hub.downloaded()}
    assert any(p.startswith("transformer_full/") for p in fetched)
    assert not any(p.startswith("transformer/") for p in fetched)  # the distilled one is not this model
    assert torch.tensor(LTX2_SIGMAS_30[-1]) == 0.1  # 30 steps at the default (utils/constants.py): as 2.3


def test_the_plan_counts_the_full_transformer_from_its_own_folder(hub_root, tmp_path):
    folder = tmp_path / "ltx25"
    shutil.copytree(hub_root / gv.LTX25_REPO, folder)
    shutil.rmtree(folder / "transformer")  # only transformer_full/ is there: the plan must count it
    dims = gv.model_dims(folder, gv.MODELS["ltx2.5-dev"])
    from safetensors.torch import load_file

    count = sum(sum(t.numel() for t in load_file(str(f)).values())
                for sub in ("transformer_full", "connectors") for f in (folder / sub).glob("*.safetensors"))
    assert dims.params["transformer"] == count


def test_enhance_prompt_is_refused_for_ltx25_naming_its_separate_enhancer(image, tmp_path, capsys):
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", "ltx2.5", "--enhance-prompt",
                  "-o", str(tmp_path / "v.mp4")])
    err = capsys.readouterr().err
    assert rc == 2 and "not trained to rewrite prompts" in err and "google/gemma-4-E2B-it" in err


def test_ltx25_is_listed_with_its_note(capsys):
    assert gv.main(["--list-models"]) == 0
    out = capsys.readouterr().out
    assert "ltx2.5 " in out and "ltx2.5-dev" in out and "Gemma 4" in out
