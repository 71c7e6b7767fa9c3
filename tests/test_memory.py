"""Tier 1b: memory savings are real and correct (chunked attention, streamed tiled decode, plan)."""

from pathlib import Path

import pytest
import torch

from conftest import gv


@pytest.mark.parametrize("rows, masked", [(7, False), (16, True), (1000, True)])
def test_chunked_attention_equals_stock_attention(rows, masked):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 50, 16, generator=g) for _ in range(3))
    mask = torch.randn(2, 4, 1, 50, generator=g) if masked else None
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(gv.chunked_attention(q, k, v, mask, rows), ref, atol=1e-5)


def test_chunked_processor_installed_on_ltx_matches_stock_output():
    pipe = gv.tiny_ltx_pipeline()
    t = pipe.transformer
    g = torch.Generator().manual_seed(1)
    inputs = dict(hidden_states=torch.randn(1, 24, 8, generator=g), encoder_hidden_states=torch.randn(1, 5, 32, generator=g),
                  timestep=torch.tensor([500.0]), encoder_attention_mask=torch.ones(1, 5), num_frames=2, height=3,
                  width=4, return_dict=False)
    with torch.no_grad():
        ref = t(**inputs)[0]
        t.set_attn_processor(gv.ltx_chunked_processor(5)())
        out = t(**inputs)[0]
    assert all(type(p).__name__ == "ChunkedLTXAttnProcessor" for p in t.attn_processors.values())
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("spatial, temporal", [(False, True), (True, False), (True, True), (False, False)])
def test_streamed_decode_equals_diffusers_decode(spatial, temporal):
    """Whatever tiling is on, the streamed uint8 frames equal diffusers' own decode, bit for bit."""
    import numpy as np

    pipe = gv.tiny_ltx_pipeline(timestep_conditioning=False)
    vae = pipe.vae
    if spatial:  # small tiles so a 96x160 video is really tiled (diffusers' are 512 px)
        vae.enable_tiling(tile_sample_min_height=64, tile_sample_min_width=64, tile_sample_stride_height=32,
                          tile_sample_stride_width=48)
    vae.use_tiling = spatial
    vae.use_framewise_decoding = temporal
    z = torch.randn(1, 8, 6, 3, 5, generator=torch.Generator().manual_seed(2))  # 41 frames, 96x160
    with torch.no_grad():
        ref = gv.to_uint8(vae.decode(z, None, return_dict=False)[0][0])
    assert not vae.latents_mean.any() and bool((vae.latents_std == 1).all())  # normalised == raw latents
    job = type("J", (), {"spec": gv.MODELS["ltx-0.9.0"], "num_frames": 41, "family": gv.LTX})()
    chunks = list(gv.decode_frames(gv.Runtime("cpu", torch.float32, gv.Log(0)), pipe, z, job, None))
    assert len(chunks) > 1 and all(c.dtype == np.uint8 for c in chunks)  # streamed, already uint8
    ours = np.concatenate(chunks)
    assert ours.shape == ref.shape == (41, 96, 160, 3) and np.array_equal(ours, ref)


def _job(width, height, frames, guidance=3.0, alias="ltx"):
    spec = gv.MODELS[alias]
    req = gv.Request(image=Path("x"), prompt="p", output=None)
    preset = "fast" if spec.distilled else "quality"  # a distilled model's largest stage: the full size
    stages = gv.plan_stages(preset, spec, gv.round_up(width, 32), gv.round_up(height, 32), frames, 40, guidance)
    return gv.Job(req, spec, spec.repo, None, preset, width, height, stages[-1].width, stages[-1].height, frames, 24,
                  0, guidance, "", stages, Path("o.mp4"), Path("o.json")), req


def test_plan_chunks_attention_and_tiles_at_1080p_on_mps():
    job, req = _job(1920, 1080, 121)
    dims = gv.model_dims(None, job.spec)
    plan = gv.plan_memory(job, dims, "mps", 2, 96 * 2**30, 2**30, req)
    assert plan.tokens == 32640 and plan.attention_chunk and plan.vae_spatial_tiling
    assert dims.heads * plan.attention_chunk * plan.tokens * gv.SCORE_BYTES <= 2**30
    small, req = _job(768, 512, 25)
    plan = gv.plan_memory(small, gv.model_dims(None, small.spec), "mps", 2, 96 * 2**30, 2**30, req)
    assert plan.attention_chunk is None and not plan.vae_spatial_tiling and plan.offload == "none"


def test_plan_offloads_when_weights_do_not_fit_the_gpu_and_refuses_what_cannot_fit():
    job, req = _job(1280, 720, 121)
    dims = gv.model_dims(None, job.spec)
    # T5 (8.9 GiB in bf16) is freed before the denoiser loads, so 12 GiB needs no offload ...
    assert gv.plan_memory(job, dims, "cuda", 2, 12 * 2**30, 2**30, req).offload == "none"
    # ... while 6 GiB holds neither T5 nor the denoiser whole: layer-by-layer offload.
    plan = gv.plan_memory(job, dims, "cuda", 2, 6 * 2**30, 2**30, req)
    assert plan.offload == "sequential" and plan.peak_gib <= 6
    big, req = _job(1920, 1080, 257)
    with pytest.raises(gv.UsageError, match="--resolution 720p or --num-frames"):
        gv.plan_memory(big, dims, "mps", 2, 6 * 2**30, 2**30, req)


def test_forced_options_are_honoured():
    job, _ = _job(768, 512, 25)
    req = gv.Request(image=Path("x"), prompt="p", output=None, attention_slicing="64", vae_tiling="on", offload="model")
    plan = gv.plan_memory(job, gv.model_dims(None, job.spec), "cuda", 2, 80 * 2**30, 2**30, req)
    assert (plan.attention_chunk, plan.vae_spatial_tiling, plan.vae_temporal_tiling, plan.offload) == (64, True, True, "model")



def test_plan_reads_the_declared_vae_ratios_of_the_real_095_config(tmp_path):
    """The 0.9.5+ VAE config (copied from the real repos) declares 32x/8x; its four scaling flags
    alone would say 64x/16x and make the plan count 8x too few tokens at 1080p."""
    import json

    from fake_repos import REAL_TRANSFORMER_2B, REAL_VAE_095

    for name, cfg in (("vae", REAL_VAE_095), ("transformer", REAL_TRANSFORMER_2B)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(cfg))
    dims = gv.model_dims(tmp_path, gv.MODELS["ltx-distilled"])
    assert (dims.spatial, dims.temporal, dims.heads, dims.hidden) == (32, 8, 32, 2048)
    job, req = _job(1920, 1080, 121, guidance=1.0, alias="ltx-distilled")
    plan = gv.plan_memory(job, dims, "mps", 2, 96 * 2**30, 2**30, req)
    assert plan.tokens == 16 * 34 * 60  # 32,640 at 1920x1088 x 121 frames
    assert plan.attention_chunk is not None  # a 63.5 GiB score matrix is never "stock" on MPS
    assert 32 * plan.attention_chunk * plan.tokens * gv.SCORE_BYTES <= 2**30


def _tiled_plan(job, req, dims, budget_gib=96, rate=None):
    plan = gv.plan_memory(job, dims, "mps", 2, budget_gib * 2**30, 2**30, req, "conv2d" if rate else "stock")
    verdict = {"correct": True, "ok": True, "tflops": rate, "stock_tflops": rate, "reason": "r"} if rate else None
    return gv.dataclasses.replace(plan, conv3d_verdict=verdict)


@pytest.mark.parametrize("rate, tile", [(100.0, 1024), (5.0, 768), (1.0, None), (None, None)])
def test_tiles_grow_where_the_measured_conv_rate_keeps_each_convolution_short(rate, tile):
    """1080p x 121 frames: the decoder's full-resolution 3x3x3 convolution over a 1024 px tile is
    2 x 27 x 128^2 x 121 x 256^2 = 7.0 TFLOP, 3.9 at 768 px: under TILE_OP_SECONDS (1 s) at 100
    TFLOPS both, at 5 only 768; at 1 TFLOPS neither; without a measured rate the VAE's own 512."""
    job, req = _job(1920, 1080, 121, alias="ltx-distilled")
    dims = gv.model_dims(None, job.spec)
    plan = _tiled_plan(job, req, dims, rate=rate)
    assert plan.vae_spatial_tiling and not plan.vae_temporal_tiling and dims.vae_channels == 128
    wide = gv.widest_tile(job, dims, 2, plan, "mps")
    assert wide.vae_tile == tile
    if tile:  # the plan counts the larger tile's decode
        assert wide.estimate["decode"] > plan.estimate["decode"] and wide.peak_gib >= plan.peak_gib


def test_a_larger_tile_only_where_the_budget_has_room():
    job, req = _job(1920, 1080, 121, alias="ltx-distilled")
    dims = gv.model_dims(None, job.spec)
    plan = _tiled_plan(job, req, dims, rate=100.0)
    tight = gv.dataclasses.replace(plan, budget_bytes=int(plan.peak_gib * 2**30) + 2**20)
    assert gv.widest_tile(job, dims, 2, plan, "mps").vae_tile == 1024
    assert gv.widest_tile(job, dims, 2, tight, "mps").vae_tile is None


def test_the_vae_gets_the_planned_tile_and_the_next_job_its_own_again():
    pipe = gv.tiny_ltx_pipeline()
    base = gv.MemoryPlan(2**34, None, True, False, "none", {}, 0.0, 0)
    gv.apply_savings(pipe, gv.dataclasses.replace(base, vae_tile=768), gv.LTX)
    vae = pipe.vae
    assert vae.use_tiling and (vae.tile_sample_min_height, vae.tile_sample_min_width) == (768, 768)
    assert (vae.tile_sample_stride_height, vae.tile_sample_stride_width) == (704, 704)  # 64 px shared, as at 512
    gv.apply_savings(pipe, base, gv.LTX)
    assert (vae.tile_sample_min_height, vae.tile_sample_stride_width) == (512, 448)  # diffusers' own
