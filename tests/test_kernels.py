"""Issue 16 (attention): a Metal kernel is used only after it matched our chunked attention and
was faster on this machine; the verdict is cached per package/torch/macOS/chip/dtype. The real
kernels need a Mac; here fake kernel modules that are right, wrong, NaN-producing or slow are
injected, and the checks run on CPU tensors."""

import json
import sys
import time
import types

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


def test_a_right_fast_kernel_is_trusted_and_its_verdict_cached(kernels, tmp_path):
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
    assert key.startswith("fake-kernel 1.0|torch ") and key.endswith("|float32")
    calls = module.calls
    assert pick(table) is not None and module.calls == calls  # cached: not checked again


@pytest.mark.parametrize("kind, reason", [("wrong", "max error"), ("nan", "NaN"), ("slow", "slower than chunked")])
def test_a_wrong_nan_or_slow_kernel_is_not_trusted_and_auto_falls_back_with_a_notice(kernels, capsys, kind, reason):
    table, _ = kernels(kind)
    assert pick(table, log=gv.Log()) is None
    err = capsys.readouterr().err
    assert "using chunked attention; Metal kernel not trusted here (fake-kernel: " in err and reason in err
    with pytest.raises(gv.UsageError, match=reason):
        pick(table, mode="metal")  # asked for by name: refused, with the reason


def test_a_new_package_version_or_torch_checks_again(kernels, monkeypatch):
    table, module = kernels("nan", "1.0")
    assert pick(table) is None
    table, module = kernels("right", "1.1")  # the fixed release
    monkeypatch.setattr(gv, "chunked_attention", lambda *a, **k: (time.sleep(0.05), torch.nn.functional.
                                                                   scaled_dot_product_attention(*a[:3]))[1])
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
    err = capsys.readouterr().err
    assert rc == 0 and "attention Metal fake-kernel 1.0 (max error 0, 2.00x)" in err, err
    assert module.calls > 0  # the model's attention went through it
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["memory_plan"]["attention_kernel"] == "fake-kernel 1.0"


def test_the_nan_guard_names_the_kernel(models, image):
    job = gv.plan_job(gv.Request(image=image, prompt="p", output=None, model=str(models["i2v"])), gv.Log(0))
    error = gv.explain_failure(gv.NonFiniteError("stage1", 2), job, "mps", "bfloat16", "mps-sdpa 0.2.0")
    assert "the Metal attention kernel mps-sdpa 0.2.0 is a suspect: run again with --attention chunked" in str(error)


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
