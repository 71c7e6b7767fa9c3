"""Tier 3: needs Apple's MPS or real downloaded weights; skipped elsewhere (see conftest.py).

On a Mac:  python -m pytest -q tests/test_mac.py -m mps
With the default models cached:  GENERATE_VIDEO_REAL_WEIGHTS=1 python -m pytest -q tests/test_mac.py -m real_weights
"""

import json

import numpy as np
import pytest

from conftest import gv, make_image, probe


@pytest.mark.mps
@pytest.mark.parametrize("folder", ["i2v", "i2v_plain"])  # decode noise from the MPS generator, and none
def test_mps_run_is_reproducible_for_both_generator_paths(models, image, tmp_path, folder):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.mp4"
        assert gv.main(["--image", str(image), "--prompt", "waves", "--model", str(models[folder]), "-o", str(out),
                        "--device", "mps", "--width", "96", "--height", "64", "--num-frames", "17", "--steps", "2",
                        "--seed", "5", "-q"]) == 0
        outs.append(np.stack(probe(out)["frames"]))
    assert np.array_equal(outs[0], outs[1])
    assert json.loads((tmp_path / "a.json").read_text())["device"] == "mps"


@pytest.mark.mps
def test_check_passes_on_mps(capsys):
    assert gv.main(["--check", "--device", "mps"]) == 0
    assert "tiny LTX pipeline ran end to end on mps" in capsys.readouterr().out


@pytest.mark.real_weights
def test_default_fast_path_with_real_weights(tmp_path):
    image = make_image(tmp_path / "in.png", 1920, 1080)
    out = tmp_path / "real.mp4"
    assert gv.main(["--image", str(image), "--prompt", "waves roll onto a beach at sunset", "-o", str(out),
                    "--duration", "1", "--seed", "0"]) == 0
    info = probe(out)
    assert info["size"] == (1920, 1080) and len(info["frames"]) == 25
    side = json.loads(out.with_suffix(".json").read_text())
    print(json.dumps({"timings_s": side["timings_s"], "stages": side["stages"]}, indent=1))


@pytest.mark.mps
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_installed_metal_attention_kernels_pass_their_self_check_here(dtype):
    """Each installed kernel against chunked attention at LTX's real shapes and lengths up to a
    1080p fast-path stage-1 job (8,160 tokens). A failure here is what `auto` would fall back on."""
    import importlib

    import torch

    found = 0
    for kernel in gv.ATTENTION_KERNELS:
        try:
            module = importlib.import_module(kernel.module)
        except Exception:
            continue
        found += 1
        verdict = gv.check_kernel(kernel, module, "mps", getattr(torch, dtype), 8160)
        print(kernel.package, dtype, verdict)
        assert verdict.get("max_error", float("inf")) <= verdict.get("tolerance", 0), verdict
    if not found:
        pytest.skip("no Metal attention kernel installed (pip install mps-sdpa)")


@pytest.mark.mps
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_conv3d_as_conv2d_is_right_at_the_ltx_decoders_shapes_here(dtype):
    """The built-in conv3d path against PyTorch's on MPS at the LTX decoders' weight shapes and
    tile sides; prints the speed ratio and both conv rates (what auto decides on)."""
    import torch

    verdict = gv.check_conv3d("mps", getattr(torch, dtype), gv.CONV3D_CHECK_SHAPES)
    print("conv3d as conv2d", dtype, verdict)
    assert verdict.get("correct"), verdict


@pytest.mark.mps
def test_conv3d_as_conv2d_decodes_on_mps(models, image, tmp_path):
    out = tmp_path / "c.mp4"
    assert gv.main(["--image", str(image), "--prompt", "waves", "--model", str(models["i2v"]), "-o", str(out),
                    "--device", "mps", "--conv3d", "conv2d", "--width", "96", "--height", "64", "--num-frames", "17",
                    "--steps", "2", "--seed", "5", "-q"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["memory_plan"]["vae_conv3d"] == "conv3d as conv2d"


@pytest.fixture(scope="module")
def ltx2_folder(tmp_path_factory):
    from fake_repos import ltx2_pipeline, save_ltx2

    folder = tmp_path_factory.mktemp("ltx2") / "model"
    save_ltx2(ltx2_pipeline(), folder)
    return folder


@pytest.mark.mps
@pytest.mark.parametrize("quantize", ["none", "int8", "int4"])
def test_ltx2_on_mps_makes_video_with_sound_in_bf16_and_quantized(ltx2_folder, tmp_path, quantize):
    """float32 RoPE on MPS (no float64 there), the vocoder in float32, quanto's MPS int8 kernel."""
    out = tmp_path / f"{quantize}.mp4"
    assert gv.main(["--image", str(make_image(tmp_path / "in.png", 160, 96)), "--prompt", "waves crash",
                    "--model", str(ltx2_folder), "-o", str(out), "--device", "mps", "--dtype", "bfloat16",
                    "--width", "96", "--height", "64", "--num-frames", "17", "--steps", "2", "--quantize", quantize,
                    "--seed", "5", "-q"]) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["device"] == "mps" and side["audio"]["sample_rate"] == 24000
    assert side["memory_plan"]["quantize"] == quantize
