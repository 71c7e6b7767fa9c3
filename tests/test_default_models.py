"""The default (Hub) path, offline: a fake Hugging Face cache laid out like the real repos, holding
tiny weights. Exercises snapshot resolution, the single-file transformer (original key names,
converted by diffusers' from_single_file), the companion VAE/T5 repo and the upscaler repo."""

import json
import shutil

import pytest

from conftest import gv, make_image, probe
from fake_repos import original_single_file, tiny_vae


def add_snapshot(cache, repo, files_from=None, commit="0" * 39):
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    commit = (commit + "1")[-40:]
    snap = repo_dir / "snapshots" / commit
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snap.mkdir(parents=True, exist_ok=True)
    return snap


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    from diffusers import LTXLatentUpsamplePipeline

    cache = tmp_path / "hub"
    spec = gv.MODELS["ltx-distilled"]
    pipe = gv.tiny_ltx_pipeline("LTXConditionPipeline")
    pipe.register_modules(vae=tiny_vae())  # the 0.9.5+ VAE layout every single file in the table has
    components = add_snapshot(cache, spec.repo)
    pipe.save_pretrained(components)
    # the real repo's 13B transformer is never fetched, nor its VAE: the single file holds one
    shutil.rmtree(components / "transformer")
    shutil.rmtree(components / "vae")
    file_name, file_repo = spec.single_file.split("@")
    original_single_file(pipe.transformer, pipe.vae, add_snapshot(cache, file_repo) / file_name)
    config_repo = add_snapshot(cache, spec.config_repo)
    for part in ("transformer", "vae"):
        (config_repo / part).mkdir()
        (config_repo / part / "config.json").write_text(json.dumps(dict(getattr(pipe, part).config)))
    LTXLatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=gv.tiny_latent_upsampler()).save_pretrained(
        add_snapshot(cache, spec.upsampler))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache, pipe


def test_default_1080p_run_uses_the_fast_single_file_path(fake_hub, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    make_image(tmp_path / "sunset.png", 1600, 900)
    proc = subprocess.run([sys.executable, gv.__file__, "--image", "sunset.png", "--prompt", "a boat drifts at sunset",
                           "--duration", "1", "--seed", "4"], cwd=tmp_path, env=dict(os.environ), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # diffusers' warning on casting a single-file model ("modules ... should be kept in float32: []") is not ours
    assert "should be kept in float32" not in proc.stderr and "Traceback" not in proc.stderr
    info = probe(tmp_path / "sunset.mp4")
    assert info["size"] == (1920, 1080) and len(info["frames"]) == 25 and info["fps"] == 24
    side = json.loads((tmp_path / "sunset.json").read_text())
    assert side["model"] == "ltx-distilled" and side["preset"] == "fast"
    assert side["upsampler"] == gv.MODELS["ltx-distilled"].upsampler
    assert "Lightricks/LTX-Video@" in side["model_revision"]


def test_single_file_transformer_loads_to_the_same_weights(fake_hub, tmp_path):
    import torch

    cache, pipe = fake_hub
    req = gv.Request(image=make_image(tmp_path / "a.png"), prompt="p", output=tmp_path / "a.mp4", resolution="1080p")
    job = gv.plan_job(req, gv.Log(0))
    loaded, upsampler = gv.load_pipeline(gv.fetch_weights(job, gv.Log(0)), torch.float32, gv.Log(0))
    assert upsampler is not None and type(loaded).__name__ == "LTXConditionPipeline"
    for part in ("transformer", "vae"):  # both from the one original-format file
        ours, theirs = getattr(loaded, part).state_dict(), getattr(pipe, part).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), part


def test_offline_without_the_upscaler_in_cache_is_one_error_line_exit_1(fake_hub, tmp_path, capsys):
    cache, _ = fake_hub
    shutil.rmtree(cache / ("models--" + gv.MODELS["ltx-distilled"].upsampler.replace("/", "--")))
    rc = gv.main(["--image", str(make_image(tmp_path / "a.png")), "--prompt", "p", "-o", str(tmp_path / "a.mp4")])
    err = capsys.readouterr().err
    assert rc == 1 and "ltxv-spatial-upscaler-0.9.7 is not in the Hugging Face cache" in err
    assert "use --upsampler with a local folder" in err


def test_check_lists_the_cached_models(fake_hub, capsys):
    rc = gv.main(["--check", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "cached: ltx-distilled (Lightricks/LTX-Video-0.9.7-distilled)" in out
    assert "the default video (5 s of 1080p) fits: planned peak" in out and "MPS built" not in out
    # A CPU never reads plain "ready": a default video takes hours there, and --check says so.
    assert "the default video would take about" in out and "hours on this CPU: use a Mac" in out
    assert out.strip().splitlines()[-1].startswith(("ready (but slow: a default video takes about", "not ready"))
    assert "tiny LTX pipeline ran end to end on cpu" in out and out.strip().splitlines()[-1].startswith(
        "ready" if rc == 0 else "not ready")
