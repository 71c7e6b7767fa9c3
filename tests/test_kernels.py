"""Issue 16: a Metal attention kernel is used only after it matched our chunked attention and was
faster on this machine, and the VAE's conv3d goes through conv2d only after that path matched
PyTorch's conv3d and was faster; verdicts are cached per package (or tool) version, torch, macOS,
chip, dtype and shapes. The real kernels need a Mac; here fake kernel modules (and replaced
conv3d paths) that are right, wrong, NaN-producing or slow are injected, and the checks run on
CPU tensors."""

import dataclasses
import json
import re
import sys
import time
import types

import numpy as np
import pytest
import torch

from conftest import ROOT, gv, make_image


def fake(kind: str, version: str = "1.0"):
    module = types.ModuleType("fake_kernel")
    module.__version__ = version
    module.calls = 0

    def sdpa_opt(q, k, v, attn_mask=None):
        module.calls += 1
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        if kind == "wrong":
            return out + 0.5
        if kind == "nan":
            return out * float("nan")
        if kind == "slow":
            time.sleep(0.2)
        if kind == "wrong-at-32" and q.shape[-1] == 32:  # right at one head size, wrong at another
            return out + 0.5
        if kind == "ignores-masks":  # right without a mask, wrong with one
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)
        if kind == "crash":
            raise RuntimeError("MPS backend out of memory")
        if kind == "no-float-masks" and attn_mask is not None:  # as mps-flash-attn: declines, we fall back
            raise NotImplementedError("boolean masks only")
        return out

    module.sdpa_opt = sdpa_opt
    return module


@pytest.fixture
def kernels(monkeypatch, tmp_path):
    """Install a fake module under a name and return a one-kernel table for it."""
    monkeypatch.setenv("GENERATE_VIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gv, "KERNEL_CHECK_TOKENS", (64, 128))
    monkeypatch.setattr(gv, "KERNEL_CHECK_SHAPE", (2, 16))

    def install(kind, version="1.0"):
        module = fake(kind, version)
        monkeypatch.setitem(sys.modules, "fake_kernel", module)
        return (gv.Kernel("fake-kernel", "fake_kernel", gv._mps_sdpa),), module

    return install


def pick(table, mode="auto", tokens=128, log=None):
    return gv.pick_attention_kernel(mode, "cpu", torch.float32, tokens, log or gv.Log(0), table, on_mac=True)


def test_a_right_fast_kernel_is_trusted_and_its_verdict_cached(kernels, tmp_path, capsys, monkeypatch):
    table, module = kernels("right")
    monkeypatch_chunked_slower = gv.chunked_attention

    def slower(*a, **k):
        time.sleep(0.05)
        return monkeypatch_chunked_slower(*a, **k)

    gv.chunked_attention = slower
    try:
        kernel, mod, verdict = pick(table)
    finally:
        gv.chunked_attention = monkeypatch_chunked_slower
    assert kernel.package == "fake-kernel" and verdict["ok"] and verdict["max_error"] < 1e-4 and verdict["speedup"] > 1
    cache = json.loads((tmp_path / "cache" / "kernel_verdicts.json").read_text())
    (key,) = cache
    assert key.startswith("fake-kernel 1.0|torch ") and key.endswith(f"|float32|check {gv.CHECK_REVISION}")
    calls = module.calls
    log = gv.Log()
    assert pick(table, log=log) is not None and module.calls == calls  # cached: not checked again, silently
    assert "checking" not in capsys.readouterr().err
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    pick(table, log=log)
    assert "checking fake-kernel 1.0 on this machine (once for this torch, macOS, chip and dtype)" in \
        capsys.readouterr().err


@pytest.mark.parametrize("kind, reason", [("wrong", "max error"), ("nan", "NaN"), ("slow", "slower than chunked")])
def test_a_wrong_nan_or_slow_kernel_is_not_trusted_and_auto_falls_back_with_a_notice(kernels, capsys, kind, reason):
    table, _ = kernels(kind)
    assert pick(table, log=gv.Log()) is None
    err = capsys.readouterr().err
    assert "using chunked attention; Metal kernel not trusted here (fake-kernel: " in err and reason in err
    if kind == "slow":  # asked for by name: right but slower is used, said aloud
        kernel, _, verdict = pick(table, mode="metal", log=gv.Log())
        assert verdict["correct"] and not verdict["ok"] and "used as asked (auto would not)" in capsys.readouterr().err
        return
    with pytest.raises(gv.UsageError, match=reason):
        pick(table, mode="metal")  # asked for by name: a wrong kernel is refused, with the reason


def test_a_new_package_version_or_torch_checks_again(kernels, monkeypatch):
    table, module = kernels("nan", "1.0")
    assert pick(table) is None
    table, module = kernels("right", "1.1")  # the fixed release
    monkeypatch.setattr(gv, "chunked_attention", lambda *a, **k: (time.sleep(0.05), real_chunked(*a, **k))[1])
    assert pick(table) is not None and module.calls > 0
    calls = module.calls
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # another torch: the old verdict does not hold
    assert pick(table) is not None and module.calls > calls


def test_off_the_mac_auto_never_uses_a_kernel_and_metal_is_refused(kernels, models, image, tmp_path, capsys):
    table, module = kernels("right")
    assert gv.pick_attention_kernel("auto", "cpu", torch.float32, 128, gv.Log(0), table) is None
    assert module.calls == 0
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "-o", str(tmp_path / "m.mp4"),
                  "--attention", "metal", "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"])
    assert rc == 2 and "--attention metal needs a Mac's GPU" in capsys.readouterr().err


def test_a_trusted_kernel_runs_the_model_and_the_plan_and_sidecar_name_it(kernels, models, image, tmp_path, monkeypatch,
                                                                          capsys):
    table, module = kernels("right")
    monkeypatch.setattr(gv, "ATTENTION_KERNELS", table)
    real = gv.pick_attention_kernel
    monkeypatch.setattr(gv, "pick_attention_kernel",
                        lambda mode, device, dtype, tokens, log, kernels=table, on_mac=None, head_dims=():
                        real(mode, device, dtype, tokens, log, kernels, on_mac=True, head_dims=head_dims))
    monkeypatch.setattr(gv, "check_kernel", lambda *a, **k: {"ok": True, "reason": "max error 0, 2.00x", "max_error": 0.0,
                                                         "speedup": 2.0})
    out = tmp_path / "k.mp4"
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "-o", str(out),
                  "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"])
    captured = capsys.readouterr()
    err = captured.err
    assert rc == 0 and "attention Metal fake-kernel 1.0 (max error 0, 2.00x)" in err, err
    assert "; Metal attention fake-kernel 1.0)" in captured.out  # the summary line names it too
    assert module.calls > 0  # the model's attention went through it
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["memory_plan"]["attention_kernel"] == "fake-kernel 1.0"


def test_the_nan_guard_names_the_kernel(models, image):
    job = gv.plan_job(gv.Request(image=image, prompt="p", output=None, model=str(models["i2v"])), gv.Log(0))
    error = gv.explain_failure(gv.NonFiniteError("stage1", 2), job, "mps", "bfloat16", "mps-sdpa 0.2.0")
    assert "the Metal attention kernel mps-sdpa 0.2.0 is a suspect: run again without it (--attention=chunked): " \
           "python generate_video.py --image=" in str(error)
    assert f"--seed={job.seed} " in str(error) and str(error).count("--attention=chunked") == 2  # the whole command


def test_the_mac_kernels_install_on_macs_only():
    from packaging.requirements import Requirement

    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    mac = [Requirement(line) for line in lines if "darwin" in line]
    assert [r.name for r in mac] == ["mps-sdpa"]
    assert not any(r.marker.evaluate() for r in mac)  # this Linux machine (and CI) installs none of them
    assert all(r.marker.evaluate({"sys_platform": "darwin", "platform_machine": "arm64"}) for r in mac)


def test_mps_sdpa_is_trusted_only_on_its_zero_copy_backend(kernels):
    """Without Xcode's tools mps-sdpa runs a pyobjc backend that leaks Metal memory per call."""
    _, module = kernels("right")
    kernel = gv.Kernel("fake-kernel", "fake_kernel", gv._mps_sdpa, gv._mps_sdpa_unready)
    module.backend_status = lambda: {"picked": "mpsgraph", "active": True}
    verdict = gv.check_kernel(kernel, module, "cpu", torch.float32, 128)
    assert not verdict["ok"] and "xcode-select --install" in verdict["reason"] and module.calls == 0
    module.backend_status = lambda: {"picked": "mpsgraph_zc", "active": True}
    assert gv.check_kernel(kernel, module, "cpu", torch.float32, 128)["max_error"] < 1e-4


def test_a_kernel_is_checked_at_every_head_size_the_model_has(kernels, monkeypatch):
    """LTX-2 attends with 128-wide heads (video) and 64-wide ones (audio): a kernel right at one
    size and wrong at the other is not trusted for it, and the verdicts are cached apart."""
    table, _ = kernels("wrong-at-32")
    monkeypatch.setattr(gv, "chunked_attention", lambda *a, **k: (time.sleep(0.02), real_chunked(*a, **k))[1])
    assert gv.pick_attention_kernel("auto", "cpu", torch.float32, 128, gv.Log(0), table, on_mac=True,
                                    head_dims=(16,)) is not None
    assert gv.pick_attention_kernel("auto", "cpu", torch.float32, 128, gv.Log(0), table, on_mac=True,
                                    head_dims=(16, 32)) is None
    dims = gv.model_dims(None, gv.MODELS["ltx2"])
    assert dims.head_dims == (64, 128) and gv.model_dims(None, gv.MODELS["ltx-distilled"]).head_dims == (64,)
    assert gv.model_dims(None, gv.MODELS["ltx-13b-distilled"]).head_dims == (128,)


real_chunked = gv.chunked_attention


# ---- The VAE's conv3d as conv2d (built in): checked like a kernel, used by auto only on a Mac
# where it matched PyTorch's conv3d and was faster.

CONV_KINDS = [  # LTX and LTX-2.3 (zeros), LTX-2.0 (reflect), CogVideoX-style temporal padding,
    dict(kernel_size=3, padding=(0, 1, 1)),  # strides, dilation, groups, no bias, "same"
    dict(kernel_size=3, padding=(0, 1, 1), padding_mode="reflect"),
    dict(kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0)),
    dict(kernel_size=3, dilation=(2, 1, 1), padding=(2, 1, 1)),
    dict(kernel_size=(2, 3, 3), stride=2, groups=2, padding=1, padding_mode="replicate"),
    dict(kernel_size=1, bias=False),
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=3, padding="same", padding_mode="reflect"),
]


@pytest.mark.parametrize("kind", CONV_KINDS, ids=[str(k) for k in CONV_KINDS])
def test_conv3d_as_conv2d_is_pytorchs_conv3d_for_every_layer_kind(kind):
    conv = torch.nn.Conv3d(4, 6, **kind)
    x = torch.randn(2, 4, 7, 9, 10)
    with torch.no_grad():
        ref = conv(x)
        assert gv.use_conv3d(conv, "conv2d") == 1
        out = conv(x)
        gv.use_conv3d(conv, "stock")
        back = conv(x)
    assert out.shape == ref.shape and out.is_contiguous()
    assert float((out - ref).abs().max()) < 1e-5
    assert torch.equal(back, ref) and "_conv_forward" not in conv.__dict__  # stock again: PyTorch's own
    gv.use_conv3d(conv, "conv2d")
    with torch.no_grad():  # an unbatched [C, T, H, W] input, which nn.Conv3d takes too
        assert float((conv(x[0]) - ref[0]).abs().max()) < 1e-5


def test_the_check_uses_the_vaes_own_decoder_shapes(models):
    """From the safetensors header (no weight read): every decoder conv3d, counted as the loaded
    model has them; the LTX decoders' shapes when the VAE is not downloaded yet."""
    from diffusers import AutoencoderKLLTXVideo

    shapes = dict(gv.vae_conv3d_shapes(models["i2v"]))
    vae = AutoencoderKLLTXVideo.from_pretrained(models["i2v"] / "vae")
    loaded = {}
    for m in vae.decoder.modules():
        if isinstance(m, torch.nn.Conv3d):
            loaded[tuple(m.weight.shape)] = loaded.get(tuple(m.weight.shape), 0) + 1
    assert shapes == loaded and sum(shapes.values()) > 3
    assert gv.vae_conv3d_shapes(None) == gv.CONV3D_CHECK_SHAPES
    assert gv.vae_conv3d_shapes(models["cog"])  # CogVideoX's decoder too


@pytest.fixture
def conv_check(monkeypatch, tmp_path):
    """Small shapes; the built-in path replaced by a right, wrong, NaN-producing or slow one."""
    monkeypatch.setenv("GENERATE_VIDEO_CACHE", str(tmp_path / "cache"))
    shapes = (((8, 8, 3, 3, 3), 2),)
    monkeypatch.setattr(gv, "CONV3D_CHECK_AREA", 128)  # sides of 16 and 8 px
    real, stock = gv.conv3d_as_conv2d, torch.nn.functional.conv3d
    calls = []

    def install(kind):
        def path(*a):
            calls.append(1)
            out = real(*a)
            if kind == "slow":
                time.sleep(0.05)
            return out + 0.5 if kind == "wrong" else out * float("nan") if kind == "nan" else out

        monkeypatch.setattr(gv, "conv3d_as_conv2d", path)
        if kind == "right":  # and PyTorch's slower than it
            monkeypatch.setattr(torch.nn.functional, "conv3d", lambda *a: (time.sleep(0.05), stock(*a))[1])
        return shapes, calls

    return install


def test_a_right_faster_conv3d_path_is_used_on_a_mac_and_its_verdict_cached(conv_check, tmp_path):
    shapes, calls = conv_check("right")
    mode, verdict = gv.pick_conv3d("auto", "cpu", torch.float32, shapes, gv.Log(0), on_mac=True)
    assert mode == "conv2d" and verdict["ok"] and verdict["speedup"] > 1 and verdict["max_error"] < 1e-4
    assert verdict["stock_tflops"] > 0 and verdict["tflops"] > verdict["stock_tflops"]
    cache = json.loads((tmp_path / "cache" / "kernel_verdicts.json").read_text())
    assert any(k.startswith(f"conv3d as conv2d {gv.__version__}|torch ") and "|float32|check " in k and "|shapes " in k
               for k in cache)
    n = len(calls)
    assert gv.pick_conv3d("auto", "cpu", torch.float32, shapes, gv.Log(0), on_mac=True)[0] == "conv2d"
    assert len(calls) == n  # cached: not checked again
    assert gv.pick_conv3d("auto", "cpu", torch.float32, (((16, 8, 3, 3, 3), 1),), gv.Log(0), on_mac=True)
    assert len(calls) > n  # another VAE's shapes: checked again


@pytest.mark.parametrize("kind, reason", [("wrong", "max error"), ("nan", "NaN")])
def test_a_wrong_conv3d_path_is_never_used(conv_check, capsys, kind, reason):
    shapes, _ = conv_check(kind)
    assert gv.pick_conv3d("auto", "cpu", torch.float32, shapes, gv.Log(), on_mac=True)[0] == "stock"
    err = capsys.readouterr().err
    assert "the VAE uses PyTorch's conv3d (conv3d as conv2d not used here: " in err and reason in err
    with pytest.raises(gv.UsageError, match=f"--conv3d conv2d: not right here .*{reason}.*use --conv3d stock"):
        gv.pick_conv3d("conv2d", "cpu", torch.float32, shapes, gv.Log(0), on_mac=True)


def test_a_slower_conv3d_path_is_left_to_auto_and_used_by_name_with_a_notice(conv_check, capsys, monkeypatch):
    shapes, _ = conv_check("slow")
    mode, verdict = gv.pick_conv3d("auto", "cpu", torch.float32, shapes, gv.Log(), on_mac=True)
    assert mode == "stock" and "slower than PyTorch's conv3d here" in verdict["reason"]
    assert "note:" not in capsys.readouterr().err  # a newer torch's fast conv3d is no news: the plan line says it
    mode, verdict = gv.pick_conv3d("conv2d", "cpu", torch.float32, shapes, gv.Log(), on_mac=True)
    assert mode == "conv2d" and verdict["correct"] and not verdict["ok"]
    assert "used as asked (auto would not)" in capsys.readouterr().err
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # another torch: checked again, and it may be fast there
    shapes, calls = conv_check("right")
    assert gv.pick_conv3d("auto", "cpu", torch.float32, shapes, gv.Log(0), on_mac=True)[0] == "conv2d" and calls


def test_off_the_mac_auto_keeps_pytorchs_conv3d_unchecked(conv_check):
    shapes, calls = conv_check("right")
    assert gv.pick_conv3d("auto", "cpu", torch.float32, shapes, gv.Log(0)) == ("stock", None)
    assert gv.pick_conv3d("stock", "cpu", torch.float32, shapes, gv.Log(0), on_mac=True) == ("stock", None)
    assert not calls


def test_conv3d_by_name_decodes_the_same_video_and_the_plan_and_sidecar_say_so(models, image, tmp_path, monkeypatch,
                                                                              capsys):
    """Asked for on the CPU (where PyTorch's conv3d is fast): checked on the tiny VAE's shapes,
    used as asked, every VAE conv3d goes through it, and the frames match PyTorch's."""
    from conftest import probe

    monkeypatch.setenv("GENERATE_VIDEO_CACHE", str(tmp_path / "cache"))
    real, calls = gv.conv3d_as_conv2d, []
    monkeypatch.setattr(gv, "conv3d_as_conv2d", lambda *a: (calls.append(1), real(*a))[1])
    written, write = {}, gv.write_video  # the frames as decoded (x264 turns a 1-level change into more)

    def keep(frames, job, *a, **k):
        written[job.output.stem] = chunks = []
        return write((chunks.append(c.copy()) or c for c in frames), job, *a, **k)

    monkeypatch.setattr(gv, "write_video", keep)
    common = ["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--width", "96", "--height", "64",
              "--num-frames", "9", "--steps", "2", "--seed", "3", "--dtype", "float32"]
    assert gv.main(common + ["-o", str(tmp_path / "stock.mp4"), "--conv3d", "stock"]) == 0 and not calls
    capsys.readouterr()
    assert gv.main(common + ["-o", str(tmp_path / "conv2d.mp4"), "--conv3d", "conv2d"]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "no temporal, conv3d as conv2d (" in err and "conv3d at a measured " in err and calls
    assert "; VAE conv3d as conv2d)" in captured.out  # the summary line
    side = json.loads((tmp_path / "conv2d.json").read_text())
    plan = side["memory_plan"]
    assert plan["vae_conv3d"] == "conv3d as conv2d" and plan["conv3d_verdict"]["correct"]
    assert side["estimate_basis"]["decode_measured"]  # the check measured the conv rate the estimate uses
    a, b = (np.concatenate(written[n]).astype(int) for n in ("stock", "conv2d"))
    assert a.shape == (9, 64, 96, 3) == b.shape and np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3
    assert len(probe(tmp_path / "conv2d.mp4")["frames"]) == 9


def test_a_measured_conv_rate_lets_the_plan_widen_the_vae_tiles_and_the_sidecar_says_so(models, image, tmp_path,
                                                                                       monkeypatch, capsys):
    """With the conv rate measured (the conv3d check) and room, the tiles grow to the largest size
    (the tiny VAE's convolutions are short at any size); the plan line and the sidecar name it."""
    monkeypatch.setenv("GENERATE_VIDEO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "wide.mp4"
    assert gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--width", "96",
                    "--height", "64", "--num-frames", "9", "--steps", "2", "--conv3d", "conv2d", "--vae-tiling", "on",
                    "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"in {max(gv.VAE_TILE_SIZES)} px tiles" in err
    assert json.loads(out.with_suffix(".json").read_text())["memory_plan"]["vae_tile_px"] == max(gv.VAE_TILE_SIZES)


def test_the_failure_guard_names_the_conv3d_path(models, image):
    job = gv.plan_job(gv.Request(image=image, prompt="p", output=None, model=str(models["i2v"])), gv.Log(0))
    error = gv.explain_failure(gv.BrokenVideoError("every frame is one flat colour"), job, "mps", "bfloat16",
                               None, conv3d=True)
    assert "the VAE's conv3d as conv2d is a suspect: run again without it (--conv3d=stock): " \
           "python generate_video.py " in str(error) and "--conv3d=stock; try --dtype float32" in str(error)
    both = str(gv.explain_failure(gv.NonFiniteError("stage2", 0), job, "mps", "bfloat16", "mps-sdpa 0.2.0", True))
    assert "mps-sdpa 0.2.0 and the VAE's conv3d as conv2d are suspects: run again without them " \
           "(--attention=chunked --conv3d=stock): python generate_video.py" in both
    assert "--conv3d" not in str(gv.explain_failure(gv.BrokenVideoError("flat"), job, "mps", "bfloat16"))


def test_the_time_estimate_uses_what_the_checks_measured(models, image):
    """Attention at ATTENTION_EFFICIENCY x a trusted kernel's measured speed-up; the decode at the
    conv3d rate the check measured; the assumed efficiencies otherwise (and said to be)."""
    job = gv.plan_job(gv.Request(image=image, prompt="p", output=None, model="ltx-distilled"), gv.Log(0))
    plan = gv.MemoryPlan(2**36, 512, True, True, "none", {}, 0.0, 0)
    tflops = 14.0
    base = gv.estimate_seconds(job, tflops, plan)
    assert base == pytest.approx(gv.estimate_seconds(job, tflops))
    attention = sum(s.attention_tflop for s in job.stages)
    assert 0 < attention < sum(s.tflop for s in job.stages)
    kernel = dataclasses.replace(plan, attention_kernel="mps-sdpa 0.2.0", kernel_verdict={"speedup": 1.5, "ok": True})
    saved = attention / (tflops * gv.ATTENTION_EFFICIENCY) - attention / (tflops * gv.ATTENTION_EFFICIENCY * 1.5)
    assert gv.estimate_seconds(job, tflops, kernel) == pytest.approx(base - saved)
    conv = dataclasses.replace(plan, conv3d="conv2d", conv3d_verdict={"correct": True, "tflops": 7.0, "stock_tflops": 1.0})
    decode = gv.decode_tflop(job)
    assert gv.estimate_seconds(job, tflops, conv) == pytest.approx(
        base - decode / (tflops * gv.DECODE_EFFICIENCY) + decode / 7.0)
    basis = gv.estimate_basis(tflops, kernel)
    assert basis["decode_tflops"] == tflops * gv.DECODE_EFFICIENCY and "decode 0.25" in basis["assumed"]
    assert "attention 0.5 x 1.5 (measured here for mps-sdpa 0.2.0)" in basis["assumed"]
    assert "with mps-sdpa 0.2.0" in gv.describe_estimate(job, "mps", tflops, kernel)


def test_the_memory_plan_counts_what_the_conv3d_path_holds(image):
    """A frame-major copy of a layer's input and a second output: two more decoder arrays."""
    job = gv.plan_job(gv.Request(image=image, prompt="p", output=None, model="ltx-distilled"), gv.Log(0))
    dims = gv.model_dims(None, job.spec)
    plans = {mode: gv.plan_memory(job, dims, "mps", 2, 96 * 2**30, 2**30, job.request, mode)
             for mode in ("stock", "conv2d")}
    stock, conv2d = plans["stock"], plans["conv2d"]
    assert (stock.vae_spatial_tiling, stock.vae_temporal_tiling) == (conv2d.vae_spatial_tiling,
                                                                     conv2d.vae_temporal_tiling) == (True, False)
    array = dims.vae_channels * job.num_frames * (512 // 4) ** 2 * 2 / 2**30  # 512 px tiles, all frames, bf16
    assert conv2d.estimate["decode"] - stock.estimate["decode"] == pytest.approx(2 * array, abs=0.01)
    assert conv2d.conv3d == "conv2d" and stock.conv3d == "stock"


def test_check_reports_each_kernels_verdict_and_speed_ratio(kernels, monkeypatch):
    """What --check prints on a Mac (here on CPU tensors): each installed attention kernel's
    verdict with its speed ratio, a missing one with the install command, and the conv3d path's
    verdict with both conv rates."""
    table, _ = kernels("right")
    missing = gv.Kernel("not-installed-kernel", "no_such_module_here", gv._mps_sdpa)
    monkeypatch.setattr(gv, "CONV3D_CHECK_AREA", 128)
    lines = gv.kernel_check_lines("cpu", torch.float32, (missing, *table), (((8, 8, 3, 3, 3), 1),), tokens=128)
    (m0, w0, f0), (m1, w1, _), (m2, w2, f2) = lines
    assert m0 == gv.WARN and "not-installed-kernel: not installed" in w0 and f0 == "pip install not-installed-kernel"
    assert w1.startswith("Metal attention fake-kernel 1.0|torch ") and "|float32" in w1
    assert re.search(r"(trusted, max error [\d.e-]+, [\d.]+x chunked attention's speed|not trusted, slower than "
                     r"chunked attention here \([\d.]+x\))$", w1), w1
    assert m2 == gv.PASS and w2.startswith("VAE conv3d as conv2d (1 decoder shapes, float32): ") and f2 == ""
    assert re.search(r"(x PyTorch's conv3d's speed|slower than PyTorch's conv3d here \([\d.]+x\)); "
                     r"conv3d [\d.e-]+ TFLOPS, as conv2d [\d.e-]+$", w2), w2
    table, _ = kernels("nan")
    ((mark, what, fix),) = gv.kernel_check_lines("cpu", torch.float32, table, (((8, 8, 3, 3, 3), 1),), tokens=128)[:1]
    assert mark == gv.WARN and "not trusted, NaN/inf" in what and "--attention chunked" in fix


@pytest.mark.parametrize("change", ["chip", "macos", "dtype", "check"])
def test_another_chip_macos_dtype_or_check_revision_checks_again(kernels, conv_check, monkeypatch, change):
    table, module = kernels("right")
    monkeypatch.setattr(gv, "chunked_attention", lambda *a, **k: (time.sleep(0.02), real_chunked(*a, **k))[1])
    shapes, calls = conv_check("right")  # and PyTorch's conv3d slower than it
    dtype = torch.float32
    assert pick(table) is not None and gv.pick_conv3d("auto", "cpu", dtype, shapes, gv.Log(0), on_mac=True)
    seen = (module.calls, len(calls))
    assert pick(table) is not None and (module.calls, len(calls)) == seen  # cached
    if change == "chip":
        monkeypatch.setattr(gv, "chip_name", lambda: "Apple M9 Ultra")
    elif change == "macos":
        monkeypatch.setattr(gv, "macos_version", lambda: (27, 1))
    elif change == "dtype":
        dtype = torch.float64
    else:  # a stricter self-check in a newer version of this tool
        monkeypatch.setattr(gv, "CHECK_REVISION", gv.CHECK_REVISION + 1)
    gv.pick_attention_kernel("auto", "cpu", dtype, 128, gv.Log(0), table, on_mac=True)
    gv.pick_conv3d("auto", "cpu", dtype, shapes, gv.Log(0), on_mac=True)
    assert module.calls > seen[0] and len(calls) > seen[1]


def test_a_kernel_is_checked_on_masked_cross_attention_too(kernels, monkeypatch):
    """The transformers call the kernel for cross-attention onto the padded prompt with an
    additive mask: a kernel right on self-attention but wrong under the mask is not trusted,
    and one that declines float masks is (they stay on chunked attention, as at run time)."""
    monkeypatch.setattr(gv, "KERNEL_CHECK_TEXT", (32, 64))
    table, module = kernels("ignores-masks")
    verdict = gv.check_kernel(table[0], module, "cpu", torch.float32, 128)
    assert not verdict["ok"] and "(masked cross-attention, 128 x " in verdict["reason"]
    table, module = kernels("no-float-masks")
    verdict = gv.check_kernel(table[0], module, "cpu", torch.float32, 128)
    assert verdict["correct"] and verdict["max_error"] < 1e-4 and verdict["masks"].startswith("left to chunked")
    table, module = kernels("right")
    verdict = gv.check_kernel(table[0], module, "cpu", torch.float32, 128, (16,))
    assert verdict["masks"] == "checked" and verdict["text_lengths"] == [32, 64]
    assert module.calls == 2 * (2 + 2 + 1)  # self at 64, 128; cross onto 32, 64 keys; the reverse (each warmed up)


def test_a_reference_that_fails_judges_nothing_and_a_crash_is_checked_again(kernels, monkeypatch):
    """NaN from the reference (PyTorch's conv3d, our chunked attention) is no verdict of
    correctness; a check that crashed (out of memory, say) is not reused on the next run."""
    stock = torch.nn.functional.conv3d
    monkeypatch.setattr(torch.nn.functional, "conv3d", lambda *a: stock(*a) * float("nan"))
    verdict = gv.check_conv3d("cpu", torch.float32, (((8, 8, 3, 3, 3), 1),))
    assert not verdict.get("correct") and "no reference to judge by" in verdict["reason"]
    table, module = kernels("right")
    monkeypatch.setattr(gv, "chunked_attention", lambda q, *a, **k: q * float("nan"))
    verdict = gv.check_kernel(table[0], module, "cpu", torch.float32, 128)
    assert not verdict.get("correct") and "chunked attention gave NaN/inf" in verdict["reason"]
    monkeypatch.setattr(gv, "chunked_attention", real_chunked)
    table, module = kernels("crash")
    assert pick(table) is None and pick(table) is None
    assert module.calls == 2  # checked on each run: the crash was not cached as a verdict


def test_verdicts_are_kept_per_device(conv_check, tmp_path):
    """A conv3d verdict measured on the CPU (--device cpu on a Mac) never decides for MPS."""
    shapes, calls = conv_check("right")
    gv.pick_conv3d("conv2d", "cpu", torch.float32, shapes, gv.Log(0))
    (key,) = json.loads((tmp_path / "cache" / "kernel_verdicts.json").read_text())
    assert "|cpu|float32|" in key and gv.conv3d_identity("float32", shapes, "mps") != key
    assert "|mps|bfloat16|" in gv.kernel_identity(gv.ATTENTION_KERNELS[0], None, "bfloat16")


def test_a_far_slower_kernel_asked_for_by_name_still_gets_an_estimate(image):
    job = gv.plan_job(gv.Request(image=image, prompt="p", output=None, model="ltx-distilled"), gv.Log(0))
    plan = gv.MemoryPlan(2**36, 512, True, True, "none", {}, 0.0, 0, attention_kernel="k 1",
                         kernel_verdict={"speedup": 0.0, "correct": True})
    assert 0 < gv.estimate_seconds(job, 14.0, plan) < float("inf")


@pytest.mark.parametrize("fails", [1, 2])
def test_a_broken_video_on_a_checked_kernel_is_made_again_once_on_the_safe_path(models, image, tmp_path, monkeypatch,
                                                                                capsys, fails):
    """Issue 26: a flat (or NaN) video while the conv3d path (or a Metal kernel) was in use is made
    again by itself without it, said and recorded; a second failure names both; never a third."""
    monkeypatch.setenv("GENERATE_VIDEO_CACHE", str(tmp_path / "cache"))
    real, calls = gv.LTX.decode.__func__, []

    def broken_first(cls, pipe, latents, job, generator, rt, progress):
        calls.append(1)
        if len(calls) <= fails:
            yield np.zeros((job.num_frames, job.gen_height, job.gen_width, 3), np.uint8)
            return
        yield from real(cls, pipe, latents, job, generator, rt, progress)

    monkeypatch.setattr(gv.LTX, "decode", classmethod(broken_first))
    out = tmp_path / "v.mp4"
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--width", "96", "--height",
                  "64", "--num-frames", "9", "--steps", "2", "--conv3d", "conv2d", "-o", str(out)])
    err = capsys.readouterr().err
    assert len(calls) == 2  # once more, never a third time
    assert "making it again with PyTorch's conv3d instead of conv3d as conv2d (the known-safe path)" in err
    if fails == 1:
        side = json.loads(out.with_suffix(".json").read_text())
        assert rc == 0 and side["retried"]["changed"] == ["PyTorch's conv3d instead of conv3d as conv2d"]
        assert side["memory_plan"]["vae_conv3d"] == "stock" and "flat colour" in side["retried"]["first_attempt"]
    else:
        last = err.strip().splitlines()[-1]
        assert rc == 1 and last.count("flat colour") == 2 and "made again with" in last and not out.exists()
