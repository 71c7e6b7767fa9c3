"""Real checkpoints' layouts through the real `huggingface_hub` client, against a local server that
speaks the Hub's protocol (tests/hub_server.py) serving tiny weights in the real repos' file
layouts (tests/fake_repos.py). What each alias downloads is asserted file by file."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, gv, make_image, probe
from fake_repos import LTX_VIDEO_ROOT_JUNK, build_repos
from hub_server import FakeHub


@pytest.fixture(scope="session")
def hub_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    build_repos(root)
    return root


@pytest.fixture
def hub(hub_root, tmp_path, monkeypatch):
    """The fake Hub on 127.0.0.1, an empty cache, online (HF_HUB_OFFLINE unset)."""
    import huggingface_hub.constants as constants

    server = FakeHub(hub_root).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)  # read at import by huggingface_hub
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    yield server
    server.stop()


def under(hub, repo, *folders):
    """(repo, path) of every file of `repo` in these folders ('' = the root file model_index.json)."""
    files = hub.files(repo)
    return {(repo, f) for f in files if any(f.startswith(d + "/") for d in folders)} | \
        {(repo, "model_index.json")}


def expected_files(hub, alias):
    spec = gv.MODELS[alias]
    if alias == "ltx-distilled":  # the 2B single file (its transformer and VAE) + the 13B repo's T5, tokenizer,
        name, repo = spec.single_file.split("@")  # scheduler; their configs from the 0.9.5 repo
        return (under(hub, spec.repo, "scheduler", "text_encoder", "tokenizer")
                | {(repo, name), (spec.config_repo, "transformer/config.json"), (spec.config_repo, "vae/config.json")}
                | under(hub, spec.upsampler, "latent_upsampler"))
    parts = ["scheduler", "text_encoder", "tokenizer", spec.transformer_folder or "transformer", "vae"]
    if spec.family.audio:  # LTX-2's sound: its audio VAE, vocoder and text connectors
        parts += ["audio_vae", "connectors", "vocoder"]
    files = under(hub, spec.repo, *parts)
    if spec.upsampler:
        files |= under(hub, spec.upsampler, "latent_upsampler")
    if spec.stage2_lora:  # a full LTX-2's two stages: its distilled LoRA, one root file of the maker's repo
        name, repo = spec.stage2_lora.split("@")
        files.add((repo, name))
    return files


ALIAS_ARGS = {
    "ltx": ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx-0.9.0": ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx-distilled": ["--preset", "fast", "--width", "192", "--height", "128", "--num-frames", "9"],
    "ltx-13b-distilled": ["--preset", "fast", "--width", "192", "--height", "128", "--num-frames", "9"],
    "cogvideox": ["--num-frames", "9", "--steps", "2"],
    "cogvideox1.5": ["--width", "96", "--height", "64", "--num-frames", "17", "--steps", "2"],
    "ltx2": ["--preset", "fast", "--width", "192", "--height", "128", "--num-frames", "17"],
    "ltx2-dev": ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx2.3": ["--preset", "fast", "--width", "192", "--height", "128", "--num-frames", "17"],
    "ltx2.3-dev": ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx2.5": ["--preset", "fast", "--width", "192", "--height", "128", "--num-frames", "17"],
    "ltx2.5-dev": ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
}


def test_every_alias_is_in_the_table_of_this_test():
    assert set(ALIAS_ARGS) == set(gv.MODELS)


@pytest.mark.parametrize("alias", sorted(ALIAS_ARGS))
def test_each_alias_downloads_exactly_its_files_and_runs_end_to_end(hub, alias, tmp_path, capsys):
    image = make_image(tmp_path / "in.png", 160, 96)
    out = tmp_path / "out" / f"{alias}.mp4"
    out.parent.mkdir()
    # Before the first download the plan counts the real model's size (fp32 here): a budget that admits it.
    argv = ["--image", str(image), "--prompt", "a boat drifts at sunset", "--model", alias, "-o", str(out),
            "--seed", "3", "--memory-budget", "200"] + ALIAS_ARGS[alias]
    rc = gv.main(argv)
    err = capsys.readouterr().err
    assert rc == 0, err
    fetched = hub.downloaded()
    assert fetched == expected_files(hub, alias), sorted(fetched ^ expected_files(hub, alias))
    # No junk: nothing from the root of Lightricks/LTX-Video but the one single file.
    assert not {("Lightricks/LTX-Video", j) for j in LTX_VIDEO_ROOT_JUNK} & fetched
    info = probe(out)
    side = json.loads(out.with_suffix(".json").read_text())
    assert len(info["frames"]) == side["num_frames"] and info["size"] == (side["width"], side["height"])
    assert side["model"] == alias and side["model_revision"]

    # A second run finds everything in the cache: not one file body is fetched again.
    hub.log.clear()
    assert gv.main(argv + ["--overwrite"]) == 0, capsys.readouterr().err
    assert hub.downloaded() == set()


def test_the_real_tokenizer_layout_needs_protobuf_which_requirements_list(hub_root):
    """The repos ship spiece.model without tokenizer.json: transformers converts it with protobuf."""
    from transformers import AutoTokenizer

    folder = hub_root / "Lightricks/LTX-Video-0.9.1/tokenizer"
    assert sorted(p.name for p in folder.iterdir()) == ["added_tokens.json", "special_tokens_map.json",
                                                       "spiece.model", "tokenizer_config.json"]
    ids = AutoTokenizer.from_pretrained(str(folder))("a boat drifts").input_ids
    assert ids[-1] == 1 and len(ids) > 2  # </s> appended, words tokenized
    names = [line.split(">=")[0].split("==")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert "protobuf" in names and "sentencepiece" in names


def run_cli(args, env_extra, timeout=120):
    env = dict(os.environ, **env_extra)  # no progress-bar variable: what users see is what is tested
    env.pop("HF_HUB_OFFLINE", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "generate_video.py")] + args, capture_output=True, text=True,
                          env=env, timeout=timeout)
    return proc, time.perf_counter() - t0


def test_no_server_is_one_error_line_within_seconds_and_nothing_written(tmp_path):
    image = make_image(tmp_path / "in.png", 160, 96)
    out = tmp_path / "out"
    out.mkdir()
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, seconds = run_cli(["--image", str(image), "--prompt", "p", "--model", "ltx", "-o", str(out / "a.mp4")]
                            + ALIAS_ARGS["ltx"], {"HF_ENDPOINT": f"http://127.0.0.1:{port}",
                                                  "HF_HUB_CACHE": str(tmp_path / "cache")})
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("error: ") and "cannot be reached" in last, proc.stderr
    assert "Traceback" not in proc.stderr and list(out.iterdir()) == []
    assert seconds < 20  # measured ~2 s, process start (torch, diffusers) included


def test_a_server_that_dies_mid_download_fails_cleanly_and_the_next_run_resumes(hub_root, tmp_path):
    image = make_image(tmp_path / "in.png", 160, 96)
    out = tmp_path / "out"
    out.mkdir()
    args = ["--image", str(image), "--prompt", "p", "--model", "ltx", "-o", str(out / "a.mp4")] + ALIAS_ARGS["ltx"]
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_DOWNLOAD_TIMEOUT": "3", "HF_HUB_ETAG_TIMEOUT": "3"}
    dying = FakeHub(hub_root).start()
    dying.cut_after = 20_000  # the first .safetensors larger than this is cut off, then the server is gone
    proc, seconds = run_cli(args, dict(env, HF_ENDPOINT=dying.url))
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("error: ") and "run again" in last, proc.stderr
    assert "Traceback" not in proc.stderr and list(out.iterdir()) == [] and seconds < 30  # measured ~6 s
    kept = {p.relative_to(p.parents[2]).as_posix() for p in (tmp_path / "cache").rglob("snapshots/*/*/*")}
    assert kept and not list((tmp_path / "cache").rglob("*.incomplete"))  # finished files only, no partial

    again = FakeHub(hub_root).start()
    try:
        proc, _ = run_cli(args, dict(env, HF_ENDPOINT=again.url))
        assert proc.returncode == 0, proc.stderr
        fetched = {p for _, p in again.downloaded()}
        # The next run resumes: what the first run finished is not fetched again (huggingface_hub
        # restarts the one file that was cut off; it keeps no partial files between processes).
        assert fetched and not {k.split("/", 1)[1] for k in kept} & fetched
        assert probe(out / "a.mp4")["size"] == (96, 64)
    finally:
        again.stop()


@pytest.mark.parametrize("alias", ["ltx-distilled", "ltx-13b-distilled"])
def test_fast_path_makes_7_half_size_and_3_full_size_passes_with_the_official_timesteps(
        hub, alias, tmp_path, monkeypatch, capsys):
    """configs/ltxv-*-0.9.8-distilled.yaml: first pass 7 sigmas, second pass 0.9094, 0.725, 0.4219
    (no wasted pass at t=0); tone mapping only for the 13B, on the latents just before decoding."""
    from diffusers import LTXLatentUpsamplePipeline, LTXVideoTransformer3DModel

    calls, tone_maps = [], []
    real_forward, real_tone_map = LTXVideoTransformer3DModel.forward, LTXLatentUpsamplePipeline.tone_map_latents

    def forward(self, hidden_states, *args, **kwargs):
        calls.append((hidden_states.shape[1], round(float(kwargs["timestep"].max()), 1)))
        return real_forward(self, hidden_states, *args, **kwargs)

    def tone_map(self, latents, compression):
        tone_maps.append((compression, tuple(latents.shape)))
        return real_tone_map(self, latents, compression)

    monkeypatch.setattr(LTXVideoTransformer3DModel, "forward", forward)
    monkeypatch.setattr(LTXLatentUpsamplePipeline, "tone_map_latents", tone_map)
    out = tmp_path / "f.mp4"
    rc = gv.main(["--image", str(make_image(tmp_path / "in.png", 160, 96)), "--prompt", "a boat", "--model", alias,
                  "-o", str(out), "--seed", "1", "--memory-budget", "200"] + ALIAS_ARGS[alias])
    assert rc == 0, capsys.readouterr().err
    half, full = (64 // 32) * (96 // 32) * 2, (128 // 32) * (192 // 32) * 2  # tokens: 9 frames -> 2 latent frames
    assert [c for c in calls if c[0] == half] == [(half, t) for t in (1000.0, 993.7, 987.5, 981.2, 975.0, 909.4, 725.0)]
    assert [c for c in calls if c[0] == full] == [(full, t) for t in (909.4, 725.0, 421.9)]
    assert len(calls) == 10
    side = json.loads(out.with_suffix(".json").read_text())
    assert [s["steps"] for s in side["stages"]] == [7, 3]
    expected_tone = 0.6 if alias == "ltx-13b-distilled" else 0.0
    assert side["tone_map_compression"] == expected_tone
    assert [c for c, _ in tone_maps] == ([0.6] if expected_tone else [])


def test_the_single_file_carries_lightricks_key_names(hub_root):
    """What from_single_file meets: model.diffusion_model.* transformer keys with Lightricks' names
    and the VAE under vae.* in Lightricks' names (diffusers' converter maps them back exactly)."""
    import torch
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES, convert_ltx_vae_checkpoint_to_diffusers
    from safetensors.torch import load_file

    from fake_repos import tiny_vae

    name = gv.MODELS["ltx-distilled"].single_file.split("@")[0]
    state = load_file(hub_root / "Lightricks/LTX-Video" / name)
    assert {"model.diffusion_model.patchify_proj.weight", "vae.decoder.last_scale_shift_table"} <= set(state)
    assert any(k in state for k in CHECKPOINT_KEY_NAMES["ltx-video"])
    assert not any(k.startswith("model.diffusion_model.") and ("proj_in" in k or "time_embed" in k) for k in state)
    vae = {k: v for k, v in state.items() if k.startswith("vae.")}
    # diffusers picks the 0.9.5 renames by a 2048-channel encoder output no tiny model has: force it.
    w = vae["vae.encoder.conv_out.conv.weight"]
    vae["vae.encoder.conv_out.conv.weight"] = torch.zeros(w.shape[0], 2048, 1, 1, 1)
    assert set(convert_ltx_vae_checkpoint_to_diffusers(vae)) == set(tiny_vae().state_dict())


def test_once_downloaded_a_model_runs_with_the_hub_gone(hub, tmp_path, capsys):
    """No HF_HUB_OFFLINE needed: a cached model works on a plane."""
    argv = ["--image", str(make_image(tmp_path / "in.png", 160, 96)), "--prompt", "p", "--model", "ltx",
            "-o", str(tmp_path / "a.mp4"), "--seed", "1"] + ALIAS_ARGS["ltx"]
    assert gv.main(argv) == 0, capsys.readouterr().err
    hub.stop()
    assert gv.main(argv + ["--overwrite"]) == 0, capsys.readouterr().err
    assert probe(tmp_path / "a.mp4")["size"] == (96, 64)
