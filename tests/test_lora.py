"""Issue 13, part 2: LoRAs, in diffusers' and ComfyUI's key layouts, checked against the model
before it loads, applied to the passes they are for, recorded so the command makes the video again."""

import json
import shlex

import numpy as np
import pytest
import torch

from conftest import gv, make_image, probe, run
from hub_server import FakeHub

SMALL = ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2", "--seed", "3"]
FAST = ["--width", "192", "--height", "128", "--num-frames", "9", "--seed", "5"]


def tiny_lora(path, model, prefix="transformer.", width=None, rank=4, blocks=None, seed=0, extra=()):
    """A LoRA for the tiny transformer's attention projections, B non-zero so it changes the output."""
    from safetensors.torch import save_file

    cfg = json.loads((model / "transformer" / "config.json").read_text())
    hidden = width or cfg["num_attention_heads"] * cfg["attention_head_dim"]
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(blocks or cfg["num_layers"]):
        for layer in ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"):
            key = f"{prefix}transformer_blocks.{i}.{layer}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(rank, hidden, generator=g) * 0.5
            tensors[f"{key}.lora_B.weight"] = torch.randn(hidden, rank, generator=g) * 0.5
    for key in extra:
        tensors[key] = torch.zeros(rank, hidden)
    save_file(tensors, str(path))
    return path


def frames(path):
    return np.stack(probe(path)["frames"]).astype(int)


def test_a_lora_changes_the_video_scale_0_does_not_and_both_key_layouts_agree(models, image, tmp_path, capsys):
    lora = tiny_lora(tmp_path / "style.safetensors", models["i2v"])
    comfy = tiny_lora(tmp_path / "comfy.safetensors", models["i2v"], prefix="diffusion_model.")
    base = ["--image", image, "--prompt", "p", "--model", models["i2v"], "-q"] + SMALL
    assert run(base + ["-o", tmp_path / "plain.mp4"])[0] == 0
    assert run(base + ["-o", tmp_path / "zero.mp4", "--lora", f"{lora}:0"])[0] == 0
    rc, cap = run(base + ["-o", tmp_path / "on.mp4", "--lora", f"{lora}:1.5"], capsys)
    assert rc == 0, cap.err
    assert run(base + ["-o", tmp_path / "comfy.mp4", "--lora", f"{comfy}:1.5"])[0] == 0
    plain, zero, on, via_comfy = (frames(tmp_path / f"{n}.mp4") for n in ("plain", "zero", "on", "comfy"))
    assert np.array_equal(plain, zero)
    assert np.abs(plain - on).mean() > 1.0
    assert np.array_equal(on, via_comfy)
    side = json.loads((tmp_path / "on.json").read_text())
    assert side["loras"][0]["sha256"] == gv.file_sha256(lora) and side["loras"][0]["scale"] == 1.5
    assert side["lora_fused"] is True and side["memory_plan"]["estimate_gib"]["lora"] >= 0
    # the reproduce command carries the LoRA and makes the same video
    args = shlex.split(side["command"])[2:]
    assert f"--lora={lora}:1.5" in args
    assert run(args + ["-o", str(tmp_path / "again.mp4"), "-q"])[0] == 0
    assert np.array_equal(frames(tmp_path / "again.mp4"), on)


@pytest.mark.parametrize("kind, message", [
    ("wider", "made for a model with hidden size 32"),
    ("deeper", "and 3 blocks"),
    ("ltx2", "made for LTX-2"),
    ("pickle", "only .safetensors files are loaded"),
    ("kohya", "no LoRA weights in a layout diffusers loads"),
])
def test_a_lora_for_another_model_is_refused_before_anything_loads(models, image, tmp_path, capsys, kind, message):
    path = tmp_path / "other.safetensors"
    if kind == "wider":
        tiny_lora(path, models["i2v"], width=32)
    elif kind == "deeper":
        tiny_lora(path, models["i2v"], blocks=3)
    elif kind == "ltx2":
        tiny_lora(path, models["i2v"], prefix="diffusion_model.",
                  extra=["diffusion_model.transformer_blocks.0.audio_attn1.to_q.lora_A.weight"])
    elif kind == "pickle":
        path = tmp_path / "other.pt"
        torch.save({}, path)
    else:
        from safetensors.torch import save_file

        save_file({"lora_unet_blocks_0_attn_to_q.lora_down.weight": torch.zeros(4, 16)}, str(path))
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", tmp_path / "x.mp4",
                   "--lora", path] + SMALL, capsys)
    assert rc == 2 and message in cap.err and "loading" not in cap.err, cap.err
    if kind == "wider":
        assert "is a model with hidden size 16 and 1 blocks" in cap.err


def test_a_full_size_lora_leaves_the_draft_alone_and_shapes_the_final(models, tmp_path, capsys):
    image = make_image(tmp_path / "in.png")
    lora = tiny_lora(tmp_path / "detail.safetensors", models["cond"], seed=1)
    fast = ["--image", image, "--prompt", "a boat", "--model", models["cond"], "--upsampler", models["up"]] + FAST
    assert run(fast + ["--draft", "-o", tmp_path / "d.mp4", "-q"])[0] == 0
    rc, cap = run(fast + ["--draft", "-o", tmp_path / "dl.mp4", "--lora", f"{lora}@full"], capsys)
    assert rc == 0 and "does nothing for a draft" in cap.err
    assert np.array_equal(frames(tmp_path / "d.mp4"), frames(tmp_path / "dl.mp4"))
    # The draft made without it takes the full-size LoRA in its final: stage 1 is unchanged.
    rc, cap = run(["--from-draft", tmp_path / "d.json", "-o", tmp_path / "f.mp4", "--lora", f"{lora}@full"], capsys)
    assert rc == 0, cap.err
    assert "switched per pass" in cap.err and "LoRA: " in cap.err
    assert run(["--from-draft", tmp_path / "d.json", "-o", tmp_path / "plain.mp4", "-q"])[0] == 0
    assert np.abs(frames(tmp_path / "f.mp4") - frames(tmp_path / "plain.mp4")).mean() > 0.5
    assert json.loads((tmp_path / "f.json").read_text())["lora_fused"] is False
    # A LoRA on the half-size pass shapes stage 1: that final is refused for the plain draft.
    rc, cap = run(["--from-draft", tmp_path / "d.json", "-o", tmp_path / "h.mp4", "--lora", f"{lora}@half"], capsys)
    assert rc == 2 and "stage1 loras differs" in cap.err


def test_a_hub_lora_downloads_only_its_file_through_the_hub_client(models, image, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as constants

    root = tmp_path / "hub"
    (root / "someone" / "ltx-style").mkdir(parents=True)
    tiny_lora(root / "someone" / "ltx-style" / "style.safetensors", models["i2v"])
    (root / "someone" / "ltx-style" / "README.md").write_text("---\nbase_model: Lightricks/LTX-Video\n---\n")
    (root / "someone" / "ltx-style" / "samples").mkdir()
    (root / "someone" / "ltx-style" / "samples" / "big.mp4").write_bytes(b"\0" * 1000)
    server = FakeHub(root).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", tmp_path / "h.mp4",
                       "--lora", "someone/ltx-style:0.7"] + SMALL, capsys)
        assert rc == 0, cap.err
        assert {f for _, f in server.downloaded()} <= {"style.safetensors", "README.md"}
        assert ("someone/ltx-style", "style.safetensors") in server.downloaded()
    finally:
        server.stop()
    side = json.loads((tmp_path / "h.json").read_text())
    assert side["loras"][0]["source"] == "someone/ltx-style" and side["loras"][0]["scale"] == 0.7


def test_batch_jobs_take_a_list_of_loras(models, tmp_path, capsys):
    make_image(tmp_path / "a.png")
    lora = tiny_lora(tmp_path / "s.safetensors", models["i2v"])
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": "a.png", "prompt": "p", "lora": [f"{lora}:0.5"], "output": "x.mp4"}) + "\n"
                    + json.dumps({"image": "a.png", "prompt": "p", "output": "y.mp4"}) + "\n")
    rc, cap = run(["--jobs", jobs, "--output-dir", tmp_path, "--model", models["i2v"]] + SMALL, capsys)
    assert rc == 0, cap.err
    assert json.loads((tmp_path / "x.json").read_text())["loras"][0]["scale"] == 0.5
    assert json.loads((tmp_path / "y.json").read_text())["loras"] == []
    assert not np.array_equal(frames(tmp_path / "x.mp4"), frames(tmp_path / "y.mp4"))
