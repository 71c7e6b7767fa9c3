"""Shared fixtures: tiny random pipelines built in code, saved with save_pretrained, and loaded
back by generate_video through the same code a real checkpoint goes through. No network."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the tests may reach the Hub

import generate_video as gv  # noqa: E402


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    """Each test its own verdict and timing cache (outside its tmp_path, which tests list): what
    one run learns (a kernel verdict, a pace) never reaches another test, nor the user's ~/.cache."""
    monkeypatch.setenv("GENERATE_VIDEO_CACHE", str(tmp_path_factory.mktemp("generate_video_cache")))


def pytest_configure(config):
    config.addinivalue_line("markers", "mps: needs an Apple Silicon GPU (skipped elsewhere)")
    config.addinivalue_line("markers", "real_weights: needs downloaded checkpoints (skipped here)")


def pytest_collection_modifyitems(config, items):
    import torch

    for item in items:
        if "mps" in item.keywords and not torch.backends.mps.is_available():
            item.add_marker(pytest.mark.skip(reason="MPS not available"))
        if "real_weights" in item.keywords and not os.environ.get("GENERATE_VIDEO_REAL_WEIGHTS"):
            item.add_marker(pytest.mark.skip(reason="set GENERATE_VIDEO_REAL_WEIGHTS=1 with cached models"))


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Folders: i2v (timestep-conditioned VAE), i2v_plain (0.9.0-style VAE), cond, upsampler."""
    from diffusers import LTXLatentUpsamplePipeline

    root = tmp_path_factory.mktemp("models")
    out = {}
    gv.tiny_ltx_pipeline("LTXImageToVideoPipeline", timestep_conditioning=True).save_pretrained(root / "i2v")
    gv.tiny_ltx_pipeline("LTXImageToVideoPipeline", timestep_conditioning=False).save_pretrained(root / "i2v_plain")
    cond = gv.tiny_ltx_pipeline("LTXConditionPipeline")
    cond.save_pretrained(root / "cond")
    LTXLatentUpsamplePipeline(vae=cond.vae, latent_upsampler=gv.tiny_latent_upsampler()).save_pretrained(root / "up")
    gv.tiny_cogvideox_pipeline("1.0").save_pretrained(root / "cog")
    gv.tiny_cogvideox_pipeline("1.5").save_pretrained(root / "cog15")
    for name in ("i2v", "i2v_plain", "cond", "up", "cog", "cog15"):
        out[name] = root / name
    return out


def run(argv, capsys=None):
    """main() on these arguments: (exit code, captured output if capsys is given)."""
    rc = gv.main([str(a) for a in argv])
    return rc, (capsys.readouterr() if capsys else None)


def load_order(monkeypatch) -> list[str]:
    """Spies on run_group's two loading phases; returns the list their events are appended to:
    which text encoder loaded (and whether the transformer came with it), whether encoding freed
    it, and whether the denoiser loaded with a text encoder still held."""
    events = []
    real_te, real_encode, real_load = gv.load_text_encoder, gv.encode_prompts, gv.load_pipeline

    def te(*a, **k):
        pipe = real_te(*a, **k)
        events.append(f"load {type(pipe.text_encoder).__name__} (transformer: {pipe.transformer is not None})")
        return pipe

    def encode(rt, pipe, *a, **k):
        out = real_encode(rt, pipe, *a, **k)
        events.append("encoded, freed" if pipe.text_encoder is None else "encoded, kept")
        return out

    def load(*a, **k):
        pipe, up = real_load(*a, **k)
        events.append(f"load denoiser (text encoder: {pipe.text_encoder is not None})")
        return pipe, up

    monkeypatch.setattr(gv, "load_text_encoder", te)
    monkeypatch.setattr(gv, "encode_prompts", encode)
    monkeypatch.setattr(gv, "load_pipeline", load)
    return events


def make_image(path: Path, width: int = 160, height: int = 90) -> Path:
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.randint(-20, 20, img.shape), 0, 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def image(tmp_path):
    return make_image(tmp_path / "in.png")


def script_frames(request) -> tuple:
    """(job, uint8 frames) from generate_video's own path, as run_group does it: T5 loaded alone,
    prompts encoded, T5 freed, then the rest of the model; stock attention, no tiling."""
    import torch

    job = gv.plan_job(request, gv.Log(0))
    weights = gv.fetch_weights(job, gv.Log(0))
    rt = gv.Runtime("cpu", torch.float32, gv.Log(0))
    embeds = gv.encode_prompts(rt, gv.load_text_encoder(weights, torch.float32, gv.Log(0)), [job])
    pipe, _ = gv.load_pipeline(weights, torch.float32, gv.Log(0), text_encoder=False)
    gv.apply_savings(pipe, gv.MemoryPlan(2**34, None, False, False, "none", {}, 0.0, 0), job.family)
    key = (request.prompt, job.negative_prompt, job.cfg)
    frames = gv.generate(rt, gv.Loaded(pipe, None, weights), job, embeds[key])
    return job, np.concatenate(list(frames))


def probe(path: Path) -> dict:
    """Codec, pixel format, size, fps and frame count of an MP4, read back with ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for f in reader]
    data = path.read_bytes()
    return {"codec": meta["codec"], "pix_fmt": meta["pix_fmt"], "size": tuple(meta["size"]),
            "fps": meta["fps"], "frames": frames, "moov_first": 0 <= data.find(b"moov") < data.find(b"mdat")}
