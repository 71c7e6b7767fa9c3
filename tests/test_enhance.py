"""--enhance-prompt: LTX-2's Gemma 3 rewrites the prompt from the image before encoding it, as
Lightricks' pipelines do when asked. Tiny LTX-2 repos and Gemma 3's processor folder in the real
layouts, fetched from the local Hub; what the enhancer receives is asserted against constants
copied from Lightricks' code."""

import json

import pytest
import torch

from conftest import gv, make_image
from test_hub import ALIAS_ARGS, hub, hub_root  # noqa: F401 (fixtures)

# Lightricks/LTX-2 packages/ltx-core/src/ltx_core/text_encoders/gemma/encoders/base_encoder.py
GEMMA3_ENHANCE_GENERATION_KWARGS = {"do_sample": True, "temperature": 0.7, "max_new_tokens": 512}
# ltx-core base_encoder.py enhance_i2v: the user turn is the image, then this text
I2V_USER_TEXT = "User Raw Input Prompt: {prompt}."
# ltx-pipelines utils/helpers.py generate_enhanced_prompt(image_long_side=896)
IMAGE_LONG_SIDE = 896
# the first lines of ltx-core .../gemma/encoders/prompts/gemma_i2v_system_prompt.txt
I2V_SYSTEM_PROMPT_START = ("You are a Creative Assistant writing concise, action-focused image-to-video prompts. "
                           "Given an image (first frame) and\nuser Raw Input Prompt")
PROMPT = "waves crash on the rocks"


def spy(monkeypatch):
    """Records what the enhancer (Gemma's generate), its processor and the encoder receive."""
    from transformers import Gemma3ForConditionalGeneration, Gemma3Processor

    seen = {"generate": [], "processor": [], "encoded": []}
    real_generate, real_call = Gemma3ForConditionalGeneration.generate, Gemma3Processor.__call__

    def generate(self, *a, **k):
        seen["generate"].append({key: v for key, v in k.items() if not torch.is_tensor(v)})
        return real_generate(self, *a, **k)

    def call(self, *a, **k):
        seen["processor"].append(k)
        return real_call(self, *a, **k)

    pipeline = gv.FAMILIES["LTX2ImageToVideoPipeline"].pipeline_class()
    real_encode = pipeline.encode_prompt

    def encode(self, *a, **k):
        if k.get("prompt") is not None:  # not the stages' own calls with the embeddings given
            seen["encoded"].append(k["prompt"])
        return real_encode(self, *a, **k)

    monkeypatch.setattr(Gemma3ForConditionalGeneration, "generate", generate)
    monkeypatch.setattr(Gemma3Processor, "__call__", call)
    monkeypatch.setattr(pipeline, "encode_prompt", encode)
    return seen


def run(tmp_path, capsys, alias="ltx2", extra=(), name="v.mp4", seed="5"):
    out = tmp_path / name
    image = make_image(tmp_path / "in.png", 1600, 1200)  # 4:3, larger than the enhancer's 896 px
    argv = ["--image", str(image), "--prompt", PROMPT, "--model", alias, "-o", str(out), "--seed", seed,
            "--memory-budget", "200", "--enhance-prompt", *ALIAS_ARGS[alias], *extra]
    rc = gv.main(argv)
    return rc, capsys.readouterr(), out


def test_the_enhancer_gets_lightricks_recipe_and_the_model_reads_its_rewrite(hub, tmp_path, capsys, monkeypatch):
    seen = spy(monkeypatch)
    rc, cap, out = run(tmp_path, capsys)
    assert rc == 0, cap.err
    side = json.loads(out.with_suffix(".json").read_text())
    rewrite = side["enhanced_prompt"]
    assert side["prompt"] == PROMPT and isinstance(rewrite, str) and rewrite and rewrite != PROMPT
    assert "enhanced prompt" in cap.err and rewrite in cap.err  # printed
    assert "--enhance-prompt" in side["command"]
    assert "prompt: first rewritten by Gemma from the image" in cap.err  # in the plan
    # one rewrite, sampled as ltx-core samples (the video's seed is the enhancer's: asserted below)
    assert len(seen["generate"]) == 1
    assert {k: seen["generate"][0][k] for k in GEMMA3_ENHANCE_GENERATION_KWARGS} == GEMMA3_ENHANCE_GENERATION_KWARGS
    call = seen["processor"][0]
    text, image = call["text"], call["images"]
    assert I2V_SYSTEM_PROMPT_START in text and I2V_USER_TEXT.format(prompt=PROMPT) in text
    assert text.index("<start_of_image>") < text.index("User Raw Input Prompt")  # image first, then the words
    assert max(image.size) == IMAGE_LONG_SIDE and image.size == (896, 672)  # the whole photo, aspect kept
    # the model encodes the rewrite (and the negative prompt as it is), never the original
    assert seen["encoded"] == [rewrite]


def test_the_rewrite_follows_the_seed(hub, tmp_path, capsys):
    rewrites = []
    for seed in ("5", "5", "6"):
        rc, cap, out = run(tmp_path, capsys, seed=seed, extra=["--overwrite", "--draft"])  # stage 1 is enough
        assert rc == 0, cap.err
        rewrites.append(json.loads(out.with_suffix(".json").read_text())["enhanced_prompt"])
    assert rewrites[0] == rewrites[1] != rewrites[2]


def test_enhancing_is_planned_in_memory_and_time(hub, tmp_path):
    image = make_image(tmp_path / "in.png")
    request = gv.Request(image=image, prompt="p", output=tmp_path / "v.mp4", model="ltx2", width=192, height=128,
                         num_frames=17)
    plain = gv.plan_job(request, gv.Log(0))
    enhanced = gv.plan_job(gv.dataclasses.replace(request, enhance_prompt=True), gv.Log(0))
    dims = gv.Family.dims(plain.spec)
    kv = gv.ENHANCE_CONTEXT_TOKENS * gv.GEMMA_KV_PER_TOKEN * 2  # bf16 bytes
    savings = gv.Savings()
    parts = [gv.estimate_memory(job, dims, 2, savings, True)[0]["text_encoder"] for job in (plain, enhanced)]
    assert parts[1] - parts[0] == pytest.approx(kv / 2**30, abs=0.01)
    assert gv.estimate_seconds(enhanced, 1.0) > gv.estimate_seconds(plain, 1.0)


@pytest.mark.parametrize("alias", ["ltx-distilled", "cogvideox"])
def test_a_model_without_its_own_enhancer_is_refused_before_loading(alias, image, tmp_path, capsys):
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", alias, "--enhance-prompt",
                  "-o", str(tmp_path / "v.mp4")])
    err = capsys.readouterr().err
    assert rc == 2 and "--enhance-prompt runs a model's own prompt enhancer" in err and "remote code" in err
    assert "Traceback" not in err and not (tmp_path / "v.mp4").exists()
