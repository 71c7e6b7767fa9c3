"""Tiny, randomly initialised models in the real Hub repos' file layouts.

What a user's machine downloads, shrunk: the same folder and file names, `model_index.json` class
names as the real repos have them, T5 tokenizers as `spiece.model` + JSON files only (no
`tokenizer.json`: transformers must convert it, which needs protobuf), sharded weights with their
index files, the original-format single file with its real key names, and the junk a careless
download would also fetch (original checkpoints at the root of Lightricks/LTX-Video, a 13B
transformer in Lightricks/LTX-Video-0.9.7-distilled). Configs are the real ones (REAL_* below,
from diffusers' conversion scripts and the repos' config.json files) with sizes shrunk only where
the real value cannot run here, each shrink named beside it.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from conftest import gv

# ---------------------------------------------------------------------------------------------
# Real configs (diffusers format) and the shrinks that make them run on 2 CPU cores.

# Lightricks/LTX-Video-0.9.5 .. 0.9.8 2B transformer (transformer/config.json).
REAL_TRANSFORMER_2B = {
    "in_channels": 128, "out_channels": 128, "patch_size": 1, "patch_size_t": 1, "num_attention_heads": 32,
    "attention_head_dim": 64, "cross_attention_dim": 2048, "num_layers": 28, "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads", "norm_elementwise_affine": False, "norm_eps": 1e-6,
    "caption_channels": 4096, "attention_bias": True, "attention_out_bias": True,
}
# 13B (0.9.7 / 0.9.8): 48 layers of 32 heads x 128.
REAL_TRANSFORMER_13B = dict(REAL_TRANSFORMER_2B, attention_head_dim=128, cross_attention_dim=4096, num_layers=48)
TINY_TRANSFORMER = {  # shrunk: width, depth, latent and caption channels
    "in_channels": 8, "out_channels": 8, "num_attention_heads": 2, "attention_head_dim": 8,
    "cross_attention_dim": 16, "num_layers": 1, "caption_channels": 32,
}

# The 0.9.5+ VAE (0.9.5, 0.9.7-dev/-distilled, 0.9.8-13B-distilled: vae/config.json). Its scaling
# flags alone would say 64x/16x; the explicit ratios say 32x/8x (its "temporal" block does not
# scale space). The planner must read the ratios.
REAL_VAE_095 = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "block_out_channels": [128, 256, 512, 1024, 2048], "down_block_types": ["LTXVideo095DownBlock3D"] * 4,
    "decoder_block_out_channels": [256, 512, 1024], "layers_per_block": [4, 6, 6, 2, 2],
    "decoder_layers_per_block": [5, 5, 5, 5], "spatio_temporal_scaling": [True, True, True, True],
    "decoder_spatio_temporal_scaling": [True, True, True], "decoder_inject_noise": [False, False, False, False],
    "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
    "upsample_residual": [True, True, True], "upsample_factor": [2, 2, 2], "timestep_conditioning": True,
    "patch_size": 4, "patch_size_t": 1, "resnet_norm_eps": 1e-6, "scaling_factor": 1.0,
    "encoder_causal": True, "decoder_causal": False,
    "spatial_compression_ratio": 32, "temporal_compression_ratio": 8,
}
TINY_VAE_095 = {  # shrunk: channels (the decoder keeps its x2 per level, which its up blocks need) and depth;
    # every flag and both ratios stay real
    "latent_channels": 8, "block_out_channels": [8, 8, 8, 8, 8], "decoder_block_out_channels": [8, 16, 32],
    "layers_per_block": [1, 1, 1, 1, 1], "decoder_layers_per_block": [1, 1, 1, 1],
}

# Lightricks/LTX-Video-0.9.1 vae/config.json: timestep-conditioned, noise injection, residual
# upsamplers; no declared ratios (derived: 4 x 2^3 = 32, 2^3 = 8). 0.9.0's VAE (the class
# defaults) is what gv.tiny_ltx_pipeline builds, with the same shrinks.
REAL_VAE_091 = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 128, "block_out_channels": [128, 256, 512, 512],
    "decoder_block_out_channels": [256, 512, 1024], "layers_per_block": [4, 3, 3, 3, 4],
    "decoder_layers_per_block": [5, 6, 7, 8], "spatio_temporal_scaling": [True, True, True, False],
    "decoder_spatio_temporal_scaling": [True, True, True], "decoder_inject_noise": [True, True, True, False],
    "upsample_residual": [True, True, True], "upsample_factor": [2, 2, 2], "timestep_conditioning": True,
    "patch_size": 4, "patch_size_t": 1, "resnet_norm_eps": 1e-6, "scaling_factor": 1.0,
    "encoder_causal": True, "decoder_causal": False,
}
TINY_VAE_091 = {  # shrunk as TINY_VAE_095
    "latent_channels": 8, "block_out_channels": [8, 8, 8, 8], "decoder_block_out_channels": [8, 16, 32],
    "layers_per_block": [1, 1, 1, 1, 1], "decoder_layers_per_block": [1, 1, 1, 1],
}

# scheduler/scheduler_config.json: 0.9.0 and 0.9.1 shift dynamically (and stretch to 0.1);
# 0.9.5+ (0.9.7-dev's, 487 bytes) use a fixed schedule.
REAL_SCHEDULER_090 = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 1024, "base_shift": 0.95,
    "invert_sigmas": False, "max_image_seq_len": 4096, "max_shift": 2.05, "num_train_timesteps": 1000,
    "shift": 1.0, "shift_terminal": 0.1, "use_beta_sigmas": False, "use_dynamic_shifting": True,
    "use_exponential_sigmas": False, "use_karras_sigmas": False,
}
REAL_SCHEDULER_095 = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
    "invert_sigmas": False, "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000,
    "shift": 1.0, "shift_terminal": None, "stochastic_sampling": False, "time_shift_type": "exponential",
    "use_beta_sigmas": False, "use_dynamic_shifting": False, "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}

T5_EXTRA_IDS = 100  # T5's sentinel tokens <extra_id_0..99>, appended after the sentencepiece vocab
SP_VOCAB = 40  # shrunk from T5's 32,000 pieces

# Original-format files at the root of Lightricks/LTX-Video: the ones a '*.safetensors' pattern
# would drag in (real names; each file here is a stub, never meant to be fetched).
LTX_VIDEO_ROOT_JUNK = [
    "ltx-video-2b-v0.9.safetensors", "ltx-video-2b-v0.9.1.safetensors", "ltx-video-2b-v0.9.5.safetensors",
    "ltxv-2b-0.9.6-dev-04-25.safetensors", "ltxv-2b-0.9.6-distilled-04-25.safetensors",
    "ltxv-13b-0.9.7-dev.safetensors", "ltxv-13b-0.9.7-distilled.safetensors",
    "ltxv-13b-0.9.7-dev-fp8.safetensors", "ltxv-13b-0.9.7-distilled-fp8.safetensors",
    "ltxv-2b-0.9.8-distilled-fp8.safetensors", "ltxv-13b-0.9.8-dev.safetensors",
    "ltxv-13b-0.9.8-distilled.safetensors", "ltxv-13b-0.9.8-dev-fp8.safetensors",
    "ltxv-spatial-upscaler-0.9.7.safetensors", "ltxv-temporal-upscaler-0.9.7.safetensors",
    "ltxv-spatial-upscaler-0.9.8.safetensors", "ltxv-temporal-upscaler-0.9.8.safetensors",
    "README.md", ".gitattributes", "media/trailer.gif", "configs/ltxv-2b-0.9.8-distilled.yaml",
]
SHARD = "40KB"  # small shards, so sharded layouts (index + several files) are what gets loaded


def _stub(path: Path, text: str = "not for download") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_t5_tokenizer(folder: Path) -> int:
    """The real repos' T5 tokenizer layout: spiece.model and JSON files, no tokenizer.json.
    Returns the vocabulary size the text encoder must have."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    text = ["a boat drifts at sunset on a calm sea", "the camera slowly moves over waves and sky",
            "a cat and a dog play in the grass", gv.DEFAULT_PROMPT_NEGATIVE] * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=model, vocab_size=SP_VOCAB,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   character_coverage=1.0, num_threads=1, minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    extra = [f"<extra_id_{i}>" for i in range(T5_EXTRA_IDS)]
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "additional_special_tokens": extra}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(
        special, extra_ids=T5_EXTRA_IDS, model_max_length=128, sp_model_kwargs={}, legacy=True,
        tokenizer_class="T5Tokenizer", clean_up_tokenization_spaces=True), indent=2))
    vocab = SP_VOCAB + T5_EXTRA_IDS
    (folder / "added_tokens.json").write_text(json.dumps({t: vocab - 1 - i for i, t in enumerate(extra)}, indent=2))
    return vocab


def save_real_layout(pipe, folder: Path, model_index: dict) -> None:
    """save_pretrained with sharded weights, then the real repo's tokenizer and model_index.json."""
    pipe.save_pretrained(folder, max_shard_size=SHARD)
    if getattr(pipe, "vae", None) is not None:  # the real VAEs are one file each
        shutil.rmtree(folder / "vae")
        pipe.vae.save_pretrained(folder / "vae")
    if (folder / "tokenizer").is_dir():
        shutil.rmtree(folder / "tokenizer")
        write_t5_tokenizer(folder / "tokenizer")
    index = json.loads((folder / "model_index.json").read_text())
    index.update(model_index)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))


def tiny_vae(real: dict = REAL_VAE_095, shrink: dict = TINY_VAE_095):
    import torch
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(1)
    return AutoencoderKLLTXVideo(**dict(real, **shrink)).eval()



def tiny_transformer(real: dict):
    import torch
    from diffusers import LTXVideoTransformer3DModel

    torch.manual_seed(2)
    return LTXVideoTransformer3DModel(**dict(real, **TINY_TRANSFORMER)).eval()


def ltx_pipeline(pipeline_class: str, vae=None, transformer_config: dict = REAL_TRANSFORMER_2B,
                 timestep_conditioning: bool = True, scheduler: dict = REAL_SCHEDULER_090):
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = gv.tiny_ltx_pipeline(pipeline_class, timestep_conditioning=timestep_conditioning)
    modules = {"text_encoder": gv.tiny_text_encoder(vocab_size=SP_VOCAB + T5_EXTRA_IDS),
               "transformer": tiny_transformer(transformer_config)}
    if vae is not None:
        modules["vae"] = vae
    modules["scheduler"] = FlowMatchEulerDiscreteScheduler.from_config(
        {k: v for k, v in scheduler.items() if not k.startswith("_")})
    pipe.register_modules(**modules)
    return pipe


LTX_INDEX = {  # model_index.json entries as the real repos have them
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "transformer": ["diffusers", "LTXVideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLLTXVideo"],
}
TO_ORIGINAL = {"proj_in": "patchify_proj", "time_embed": "adaln_single", "norm_q": "q_norm", "norm_k": "k_norm"}


# diffusers' 0.9.5+ VAE names -> Lightricks' (the inverse of convert_ltx_vae_checkpoint_to_diffusers'
# rename tables for a 0.9.5 VAE; longest prefix first).
VAE_095_TO_ORIGINAL = [
    ("decoder.up_blocks.0.upsamplers.0", "decoder.up_blocks.1"), ("decoder.up_blocks.0", "decoder.up_blocks.2"),
    ("decoder.up_blocks.1.upsamplers.0", "decoder.up_blocks.3"), ("decoder.up_blocks.1", "decoder.up_blocks.4"),
    ("decoder.up_blocks.2.upsamplers.0", "decoder.up_blocks.5"), ("decoder.up_blocks.2", "decoder.up_blocks.6"),
    ("decoder.mid_block", "decoder.up_blocks.0"), ("decoder.time_embedder", "decoder.last_time_embedder"),
    ("decoder.scale_shift_table", "decoder.last_scale_shift_table"),
    ("encoder.down_blocks.0.downsamplers.0", "encoder.down_blocks.1"), ("encoder.down_blocks.0", "encoder.down_blocks.0"),
    ("encoder.down_blocks.1.downsamplers.0", "encoder.down_blocks.3"), ("encoder.down_blocks.1", "encoder.down_blocks.2"),
    ("encoder.down_blocks.2.downsamplers.0", "encoder.down_blocks.5"), ("encoder.down_blocks.2", "encoder.down_blocks.4"),
    ("encoder.down_blocks.3.downsamplers.0", "encoder.down_blocks.7"), ("encoder.down_blocks.3", "encoder.down_blocks.6"),
    ("encoder.mid_block", "encoder.down_blocks.8"),
    ("latents_mean", "per_channel_statistics.mean-of-means"), ("latents_std", "per_channel_statistics.std-of-means"),
]


def original_vae_key(key: str) -> str:
    for new, old in VAE_095_TO_ORIGINAL:
        if key == new or key.startswith(new + "."):
            key = old + key[len(new):]
            break
    return key.replace("resnets", "res_blocks").replace("conv_shortcut.conv", "conv_shortcut").replace(
        "norm3.", "norm3.norm.")


def original_single_file(transformer, vae, path: Path) -> None:
    """An original-format LTX checkpoint: transformer keys under model.diffusion_model. with
    Lightricks' names, and the VAE under vae. (which the transformer loader must skip)."""
    import torch
    from safetensors.torch import save_file

    state = {}
    for key, value in transformer.state_dict().items():
        for new, old in TO_ORIGINAL.items():
            key = key.replace(new, old)
        state["model.diffusion_model." + key] = value.contiguous()
    for key, value in vae.state_dict().items():
        state["vae." + original_vae_key(key)] = value.contiguous()
    channels = vae.latents_mean.shape[0]
    state["vae.per_channel_statistics.channel"] = torch.arange(channels)  # real files carry these two too
    state["vae.per_channel_statistics.mean-of-stds"] = torch.ones(channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, path, metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------
# LTX-2 (2.0) and LTX-2.3: the configs of diffusers' scripts/convert_ltx2_to_diffusers.py (which
# wrote the Hub's diffusers repos), shrunk only where named.

REAL_LTX2_TRANSFORMER = {
    "in_channels": 128, "out_channels": 128, "patch_size": 1, "patch_size_t": 1, "num_attention_heads": 32,
    "attention_head_dim": 128, "cross_attention_dim": 4096, "vae_scale_factors": (8, 32, 32), "pos_embed_max_pos": 20,
    "base_height": 2048, "base_width": 2048, "gated_attn": False, "cross_attn_mod": False, "audio_in_channels": 128,
    "audio_out_channels": 128, "audio_patch_size": 1, "audio_patch_size_t": 1, "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64, "audio_cross_attention_dim": 2048, "audio_scale_factor": 4,
    "audio_pos_embed_max_pos": 20, "audio_sampling_rate": 16000, "audio_hop_length": 160, "audio_gated_attn": False,
    "audio_cross_attn_mod": False, "num_layers": 48, "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads", "norm_elementwise_affine": False, "norm_eps": 1e-6, "caption_channels": 3840,
    "attention_bias": True, "attention_out_bias": True, "rope_theta": 10000.0, "rope_double_precision": True,
    "causal_offset": 1, "timestep_scale_multiplier": 1000, "cross_attn_timestep_scale_multiplier": 1000,
    "rope_type": "split", "use_prompt_embeddings": True, "perturbed_attn": False,
}
# 2.3: gated attention, cross-attention modulation, STG through perturbed attention, no prompt embeddings.
REAL_LTX23_TRANSFORMER = dict(REAL_LTX2_TRANSFORMER, gated_attn=True, cross_attn_mod=True, audio_gated_attn=True,
                              audio_cross_attn_mod=True, use_prompt_embeddings=False, perturbed_attn=True)
# 2.5 (the script's --version 2.5): 2.3's with no bias on the video feed-forward and the learned
# marker for latent frames that hold one pixel frame (the first).
REAL_LTX25_TRANSFORMER = dict(REAL_LTX23_TRANSFORMER, ff_bias=False, use_keyframes_abs_pos_embedding=True)
# Every linear layer's input a multiple of 32, as in the real model: the int8 kernels need it
# (torch's CPU int8 matmul crashes on a width of 8; quanto's MPS path asks for 32).
TINY_LTX2_TRANSFORMER = {  # shrunk: widths, depth, latent and caption channels
    "in_channels": 32, "out_channels": 32, "num_attention_heads": 2, "attention_head_dim": 16,
    "cross_attention_dim": 32, "audio_in_channels": 32, "audio_out_channels": 32, "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 16, "audio_cross_attention_dim": 32, "num_layers": 1, "caption_channels": 32,
}
REAL_LTX2_CONNECTORS = {
    "caption_channels": 3840, "text_proj_in_factor": 49, "video_connector_num_attention_heads": 30,
    "video_connector_attention_head_dim": 128, "video_connector_num_layers": 2,
    "video_connector_num_learnable_registers": 128, "video_gated_attn": False, "audio_connector_num_attention_heads": 30,
    "audio_connector_attention_head_dim": 128, "audio_connector_num_layers": 2,
    "audio_connector_num_learnable_registers": 128, "audio_gated_attn": False, "connector_rope_base_seq_len": 4096,
    "rope_theta": 10000.0, "rope_double_precision": True, "causal_temporal_positioning": False, "rope_type": "split",
    "per_modality_projections": False, "proj_bias": False,
}
REAL_LTX23_CONNECTORS = dict(
    REAL_LTX2_CONNECTORS, video_connector_num_attention_heads=32, video_connector_num_layers=8, video_gated_attn=True,
    audio_connector_num_attention_heads=32, audio_connector_attention_head_dim=64, audio_connector_num_layers=8,
    audio_gated_attn=True, per_modality_projections=True, video_hidden_dim=4096, audio_hidden_dim=2048, proj_bias=True)
TINY_LTX2_CONNECTORS = {  # shrunk: Gemma's width (32) and depth (2 layers: 3 hidden states), heads, layers
    "caption_channels": 32, "text_proj_in_factor": 3, "video_connector_num_attention_heads": 4,
    "video_connector_attention_head_dim": 8, "video_connector_num_layers": 1, "audio_connector_num_attention_heads": 4,
    "audio_connector_attention_head_dim": 8, "audio_connector_num_layers": 1, "connector_rope_base_seq_len": 32,
}
TINY_LTX23_CONNECTORS = dict(TINY_LTX2_CONNECTORS, video_hidden_dim=32, audio_hidden_dim=32)  # the transformer's
REAL_LTX2_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 128, "block_out_channels": (256, 512, 1024, 2048),
    "down_block_types": ("LTX2VideoDownBlock3D",) * 4, "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 6, 6, 2, 2), "decoder_layers_per_block": (5, 5, 5, 5),
    "spatio_temporal_scaling": (True, True, True, True), "decoder_spatio_temporal_scaling": (True, True, True),
    "decoder_inject_noise": (False, False, False, False),
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_type": ("spatiotemporal", "spatiotemporal", "spatiotemporal"), "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2), "timestep_conditioning": False, "patch_size": 4, "patch_size_t": 1,
    "resnet_norm_eps": 1e-6, "encoder_causal": True, "decoder_causal": False,
    "encoder_spatial_padding_mode": "zeros", "decoder_spatial_padding_mode": "reflect",
    "spatial_compression_ratio": 32, "temporal_compression_ratio": 8,  # its four scaling flags alone say 64x/16x
}
REAL_LTX23_VAE = dict(
    REAL_LTX2_VAE, block_out_channels=(256, 512, 1024, 1024), decoder_block_out_channels=(256, 512, 512, 1024),
    layers_per_block=(4, 6, 4, 2, 2), decoder_layers_per_block=(4, 6, 4, 2, 2),
    decoder_spatio_temporal_scaling=(True, True, True, True), decoder_inject_noise=(False,) * 5,
    upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"), upsample_residual=(False,) * 4,
    upsample_factor=(2, 2, 1, 2), decoder_spatial_padding_mode="zeros")
TINY_LTX2_VAE = {  # shrunk: channels and depth; flags, up/downsample types, patch 4 and both ratios real
    "latent_channels": 32, "block_out_channels": (8, 8, 8, 8), "decoder_block_out_channels": (8, 16, 32),
    "layers_per_block": (1, 1, 1, 1, 1), "decoder_layers_per_block": (1, 1, 1, 1),
}
TINY_LTX23_VAE = dict(TINY_LTX2_VAE, decoder_block_out_channels=(8, 16, 16, 32), decoder_layers_per_block=(1,) * 5)
REAL_LTX2_AUDIO_VAE = {  # 2.0 and 2.3 alike
    "base_channels": 128, "output_channels": 2, "ch_mult": (1, 2, 4), "num_res_blocks": 2, "attn_resolutions": None,
    "in_channels": 2, "resolution": 256, "latent_channels": 8, "norm_type": "pixel", "causality_axis": "height",
    "dropout": 0.0, "mid_block_add_attention": False, "sample_rate": 16000, "mel_hop_length": 160, "is_causal": True,
    "mel_bins": 64, "double_z": True,
}
# shrunk: channels, depth, mel bins (latent channels x mel bins / 4 = the transformer's audio input,
# as 8 x 64 / 4 = 128 is)
TINY_LTX2_AUDIO_VAE = {"base_channels": 32, "num_res_blocks": 1, "mel_bins": 16}
REAL_LTX2_VOCODER = {  # stereo, 24 kHz
    "in_channels": 128, "hidden_channels": 1024, "out_channels": 2, "upsample_kernel_sizes": [16, 15, 8, 4, 4],
    "upsample_factors": [6, 5, 2, 2, 2], "resnet_kernel_sizes": [3, 7, 11], "resnet_dilations": [[1, 3, 5]] * 3,
    "act_fn": "leaky_relu", "leaky_relu_negative_slope": 0.1, "antialias": False, "final_act_fn": "tanh",
    "final_bias": True, "output_sampling_rate": 24000,
}
REAL_LTX23_VOCODER = {  # LTX2VocoderWithBWE: 16 kHz vocoder + bandwidth extension to 48 kHz, stereo
    "in_channels": 128, "hidden_channels": 1536, "out_channels": 2, "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4],
    "upsample_factors": [5, 2, 2, 2, 2, 2], "resnet_kernel_sizes": [3, 7, 11], "resnet_dilations": [[1, 3, 5]] * 3,
    "act_fn": "snakebeta", "leaky_relu_negative_slope": 0.1, "antialias": True, "antialias_ratio": 2,
    "antialias_kernel_size": 12, "final_act_fn": None, "final_bias": False, "bwe_in_channels": 128,
    "bwe_hidden_channels": 512, "bwe_out_channels": 2, "bwe_upsample_kernel_sizes": [12, 11, 4, 4, 4],
    "bwe_upsample_factors": [6, 5, 2, 2, 2], "bwe_resnet_kernel_sizes": [3, 7, 11],
    "bwe_resnet_dilations": [[1, 3, 5]] * 3, "bwe_act_fn": "snakebeta", "bwe_leaky_relu_negative_slope": 0.1,
    "bwe_antialias": True, "bwe_antialias_ratio": 2, "bwe_antialias_kernel_size": 12, "bwe_final_act_fn": None,
    "bwe_final_bias": False, "filter_length": 512, "hop_length": 80, "window_length": 512, "num_mel_channels": 64,
    "input_sampling_rate": 16000, "output_sampling_rate": 48000,
}
TINY_LTX2_VOCODER = {"in_channels": 2 * 16, "hidden_channels": 64, "resnet_kernel_sizes": [3],  # shrunk: widths,
                     "resnet_dilations": [[1]]}  # resnets (in: 2 channels x 16 mel bins)
TINY_LTX23_VOCODER = dict(TINY_LTX2_VOCODER, bwe_hidden_channels=64, bwe_resnet_kernel_sizes=[3],
                          bwe_resnet_dilations=[[1]])  # the BWE's own 64-bin stereo mel (its input 128): real
REAL_LTX2_UPSAMPLER = {"in_channels": 128, "mid_channels": 1024, "num_blocks_per_stage": 4, "dims": 3,
                       "spatial_upsample": True, "temporal_upsample": False, "rational_spatial_scale": 2.0,
                       "use_rational_resampler": True}
REAL_LTX23_UPSAMPLER = dict(REAL_LTX2_UPSAMPLER, use_rational_resampler=False)
TINY_LTX2_UPSAMPLER = {"in_channels": 32, "mid_channels": 32, "num_blocks_per_stage": 1}  # shrunk: channels, depth
GEMMA_PIECES = 320  # shrunk from 262,144: <pad> <eos> <bos> <unk> <mask> (ids 0-4, as Gemma's), 256 bytes, merges
GEMMA_ADDED = ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]  # after the pieces, as Gemma 3's
LTX2_INDEX = {  # Lightricks/LTX-2's model_index.json (diffusers 0.37 wrote it: no optional parts)
    "_class_name": "LTX2Pipeline", "_diffusers_version": "0.37.0.dev0",
    "audio_vae": ["diffusers", "AutoencoderKLLTX2Audio"], "connectors": ["ltx2", "LTX2TextConnectors"],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "Gemma3ForConditionalGeneration"],
    "tokenizer": ["transformers", "GemmaTokenizerFast"], "transformer": ["diffusers", "LTX2VideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLLTX2Video"], "vocoder": ["ltx2", "LTX2Vocoder"],
}
LTX2_ROOT_JUNK = ["ltx-2-19b-dev.safetensors", "ltx-2-19b-dev-fp8.safetensors", "ltx-2-19b-distilled.safetensors",
                  "ltx-2-spatial-upscaler-x2-1.0.safetensors"]
# Lightricks/LTX-2.3 holds the original-format checkpoints only; the full model's two-stage recipe
# fetches one file of it, the v1.1 distilled LoRA (the older one beside it is never fetched).
LTX23_ORIGINAL_JUNK = ["ltx-2.3-22b-dev.safetensors", "ltx-2.3-22b-distilled.safetensors",
                       "ltx-2.3-22b-distilled-lora-384.safetensors", "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"]


def distilled_lora(path: Path, width: int = 32, seed: int = 9) -> Path:
    """A distilled LoRA in the layout Lightricks ships LTX-2's LoRAs in (ComfyUI's: diffusion_model.*
    keys, lora_A/lora_B), rank 4 instead of 384, on the tiny transformer's video and audio
    attention (the real one adapts every linear layer of the blocks)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in ("attn1.to_q", "attn1.to_k", "attn1.to_v", "audio_attn1.to_q", "audio_attn1.to_v"):
        key = f"diffusion_model.transformer_blocks.0.{layer}"
        tensors[f"{key}.lora_A.weight"] = torch.randn(4, width, generator=g) * 0.1
        tensors[f"{key}.lora_B.weight"] = torch.randn(width, 4, generator=g) * 0.1
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def write_gemma_tokenizer(folder: Path) -> int:
    """Gemma's tokenizer as the repos ship it: tokenizer.model (sentencepiece BPE, byte fallback) and
    JSON files. Returns the vocabulary size the text encoder must have."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    text = ["a boat drifts at sunset on a calm sea", "waves crash on the rocks with a loud roar",
            "the camera slowly moves over waves and sky", gv.DEFAULT_PROMPT_NEGATIVE] * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=model, vocab_size=GEMMA_PIECES,
                                   model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3, byte_fallback=True,
                                   pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
                                   user_defined_symbols=["<mask>"],
                                   character_coverage=1.0, num_threads=1, minloglevel=2)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    pieces = GEMMA_PIECES
    added = {t: pieces + i for i, t in enumerate(GEMMA_ADDED)}
    special = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
               "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    (folder / "added_tokens.json").write_text(json.dumps(added, indent=2))
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(
        special, add_bos_token=True, add_eos_token=False, model_max_length=1000000000000000019884624838656,
        padding_side="left", tokenizer_class="GemmaTokenizer", sp_model_kwargs={}, spaces_between_special_tokens=False,
        clean_up_tokenization_spaces=False, legacy=False), indent=2))
    return pieces + len(GEMMA_ADDED)


def tiny_gemma(vocab: int):
    """Gemma3ForConditionalGeneration in miniature: a 2-layer text model (hidden 32) and a 1-layer
    SigLIP tower, with Gemma 3's image-token ids placed after the pieces as the real ones are."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    torch.manual_seed(3)
    text = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, sliding_window=16, max_position_embeddings=2048)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, boi_token_index=vocab - 3,
                       eoi_token_index=vocab - 2, image_token_index=vocab - 1)
    return Gemma3ForConditionalGeneration(cfg).eval()


LTX2_CONFIGS = {  # version -> (transformer, connectors, VAE, vocoder, upscaler): real, then shrunk
    "2.0": ((REAL_LTX2_TRANSFORMER, TINY_LTX2_TRANSFORMER), (REAL_LTX2_CONNECTORS, TINY_LTX2_CONNECTORS),
            (REAL_LTX2_VAE, TINY_LTX2_VAE), (REAL_LTX2_VOCODER, TINY_LTX2_VOCODER),
            (REAL_LTX2_UPSAMPLER, TINY_LTX2_UPSAMPLER)),
    "2.3": ((REAL_LTX23_TRANSFORMER, TINY_LTX2_TRANSFORMER), (REAL_LTX23_CONNECTORS, TINY_LTX23_CONNECTORS),
            (REAL_LTX23_VAE, TINY_LTX23_VAE), (REAL_LTX23_VOCODER, TINY_LTX23_VOCODER),
            (REAL_LTX23_UPSAMPLER, TINY_LTX2_UPSAMPLER)),
    # 2.5: the script has no 2.5 upscaler config (it raises for "2.5"): 2.3's layout
    "2.5": ((REAL_LTX25_TRANSFORMER, TINY_LTX2_TRANSFORMER), (REAL_LTX23_CONNECTORS, TINY_LTX23_CONNECTORS),
            (REAL_LTX23_VAE, TINY_LTX23_VAE), (REAL_LTX23_VOCODER, TINY_LTX23_VOCODER),
            (REAL_LTX23_UPSAMPLER, TINY_LTX2_UPSAMPLER)),
}


# LTX-2.5's text encoder: Gemma 4 12B fine-tuned by Lightricks (Gemma4UnifiedForConditionalGeneration).
# Its config.json is not on this machine (only the class's defaults and the width 3840 the
# transformer's caption_channels implies), so this is the class with the Gemma 3 miniature's
# sizes; no vision tower (the LTX text encoder reads text only).
TINY_GEMMA4_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, head_dim=16, global_head_dim=16, sliding_window=16,
                        max_position_embeddings=2048)


def write_gemma4_tokenizer(folder: Path) -> int:
    """Gemma 4's tokenizer as diffusers saves it with transformers 5: tokenizer.json and
    tokenizer_config.json (GemmaTokenizer, the tokenizers backend; no sentencepiece model), which
    adds no <bos> (Lightricks' LTXGemmaTokenizer prepends it for Gemma 4). Returns the vocabulary size."""
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}  # Gemma's ids 0-4
    vocab.update({f"<0x{b:02X}>": len(vocab) + b for b in range(256)})  # byte fallback
    for word in ("▁", "▁a", "▁boat", "▁waves", "▁sea", "a", "e", "s"):
        vocab.setdefault(word, len(vocab))
    tokenizer = GemmaTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = 1024
    tokenizer.save_pretrained(folder)
    return len(vocab)


def tiny_gemma4(vocab: int):
    import torch
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

    torch.manual_seed(3)
    return Gemma4UnifiedForConditionalGeneration(Gemma4UnifiedConfig(
        text_config=dict(TINY_GEMMA4_TEXT, vocab_size=vocab), vision_config=None, audio_config=None)).eval()


def ltx2_pipeline(version: str = "2.0", seed: int = 4):
    """A complete tiny LTX-2 (or 2.3) image-to-video pipeline: the real configs with the shrinks
    above (real 32x/8x video compression, real audio rates); its tokenizer is rewritten in the real
    layout when saved (save_ltx2)."""
    import tempfile

    import torch
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2ImageToVideoPipeline, LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
    from transformers import AutoTokenizer

    transformer, connectors, vae, vocoder, _ = (dict(real, **tiny) for real, tiny in LTX2_CONFIGS[version])
    gemma4 = version == "2.5"
    with tempfile.TemporaryDirectory() as tmp:
        vocab = (write_gemma4_tokenizer if gemma4 else write_gemma_tokenizer)(Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    torch.manual_seed(seed)
    return LTX2ImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(
            {k: v for k, v in REAL_SCHEDULER_090.items() if not k.startswith("_")}),
        vae=AutoencoderKLLTX2Video(**vae).eval(),
        audio_vae=AutoencoderKLLTX2Audio(**dict(REAL_LTX2_AUDIO_VAE, **TINY_LTX2_AUDIO_VAE)).eval(),
        text_encoder=(tiny_gemma4 if gemma4 else tiny_gemma)(vocab), tokenizer=tokenizer,
        connectors=LTX2TextConnectors(**connectors).eval(), transformer=LTX2VideoTransformer3DModel(**transformer).eval(),
        vocoder=(LTX2Vocoder if version == "2.0" else LTX2VocoderWithBWE)(**vocoder).eval())


def ltx2_upsampler(version: str = "2.0"):
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    torch.manual_seed(5)
    real, tiny = LTX2_CONFIGS[version][4]
    return LTX2LatentUpsamplerModel(**dict(real, **tiny)).eval()


# diffusers/LTX-2.3-*: written by the same script (LTX2Pipeline) with --add_processor: a processor/
# folder for prompt enhancement (Gemma3Processor; here without the 33 MB tokenizer.json, which
# the tokenizer.model it is made from replaces), fetched only for --enhance-prompt.
LTX23_INDEX = dict(LTX2_INDEX, _diffusers_version="0.38.0.dev0", vocoder=["ltx2", "LTX2VocoderWithBWE"],
                   processor=["transformers", "Gemma3Processor"])

# Gemma 3's chat template, as google/gemma-3-12b-it's tokenizer_config.json carries it (the
# processor saves it as chat_template.jinja).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n")
# google/gemma-3-12b-it's processor configs; shrunk: 28 px images (896) and 4 tokens per image
# (256), the tiny SigLIP tower's (tiny_gemma).
REAL_GEMMA3_PREPROCESSOR = {
    "do_convert_rgb": None, "do_normalize": True, "do_pan_and_scan": None, "do_rescale": True, "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Gemma3ImageProcessor", "image_seq_length": 256,
    "image_std": [0.5, 0.5, 0.5], "pan_and_scan_max_num_crops": None, "pan_and_scan_min_crop_size": None,
    "pan_and_scan_min_ratio_to_activate": None, "processor_class": "Gemma3Processor", "resample": 2,
    "rescale_factor": 0.00392156862745098, "size": {"height": 896, "width": 896}}
TINY_GEMMA3_PREPROCESSOR = {"image_seq_length": 4, "size": {"height": 28, "width": 28}}


def save_gemma_processor(folder: Path) -> None:
    """The processor/ folder diffusers' conversion script writes with --add_processor (Gemma 3's
    processor saved as is): processor and image-processor configs, the tokenizer, the chat template."""
    write_gemma_tokenizer(folder)
    (folder / "processor_config.json").write_text(json.dumps(
        {"image_seq_length": TINY_GEMMA3_PREPROCESSOR["image_seq_length"], "processor_class": "Gemma3Processor"},
        indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        dict(REAL_GEMMA3_PREPROCESSOR, **TINY_GEMMA3_PREPROCESSOR), indent=2))
    (folder / "chat_template.jinja").write_text(GEMMA3_CHAT_TEMPLATE)


# Lightricks/LTX-2.5-Diffusers (diffusers' ltx2.md): the distilled transformer in transformer/ (the
# index's), the full one in transformer_full/ (not in the index), the distilled scheduler, the
# upscaler in latent_upsampler/, the full model's stage-2 LoRA at the root, the duration head and
# the diffusion decoder (neither run here).
LTX25_INDEX = dict(LTX23_INDEX, _diffusers_version="0.42.0.dev0",
                   text_encoder=["transformers", "Gemma4UnifiedForConditionalGeneration"],
                   tokenizer=["transformers", "GemmaTokenizer"], processor=[None, None], prompt_enhancer=[None, None],
                   duration_head=["ltx2", "LTX2DurationHead"])
REAL_LTX25_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": False,
                        "base_shift": 0.95, "max_shift": 2.05, "base_image_seq_len": 1024, "max_image_seq_len": 4096,
                        "shift_terminal": None}  # the script's scheduler for a distilled checkpoint


def save_ltx25(folder: Path) -> None:
    import torch
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2DurationHead

    pipe = ltx2_pipeline("2.5", seed=11)
    save_ltx2(pipe, folder, ltx2_upsampler("2.5"), index=LTX25_INDEX, junk=("diffusion_decoder/config.json",))
    shutil.rmtree(folder / "tokenizer")
    write_gemma4_tokenizer(folder / "tokenizer")
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(REAL_LTX25_SCHEDULER, indent=2))
    torch.manual_seed(12)
    full = dict(REAL_LTX25_TRANSFORMER, **TINY_LTX2_TRANSFORMER)
    LTX2VideoTransformer3DModel(**full).save_pretrained(folder / "transformer_full", max_shard_size=SHARD)
    LTX2DurationHead(video_cross_attention_dim=32, audio_cross_attention_dim=32, pooler_hidden_dim=32,
                     num_pooler_heads=2, mlp_hidden_dim=32).save_pretrained(folder / "duration_head")
    distilled_lora(folder / gv.LTX25_STAGE2_LORA.split("@")[0], seed=13)


def save_ltx2(pipe, folder: Path, upsampler=None, index: dict = LTX2_INDEX, junk=LTX2_ROOT_JUNK) -> None:
    """The real LTX-2 repo layout: sharded weights, Gemma's tokenizer files (no tokenizer.json),
    model_index.json as the Hub's, the upscaler in latent_upsampler/ (not in the index), and
    original-format checkpoints at the root that must never be fetched."""
    pipe.save_pretrained(folder, max_shard_size=SHARD)
    shutil.rmtree(folder / "tokenizer")
    write_gemma_tokenizer(folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    if upsampler is not None:
        upsampler.save_pretrained(folder / "latent_upsampler")
    for name in junk:
        _stub(folder / name)


def save_ltx2_upsampler(upsampler, vae, folder: Path) -> None:
    """An upscaler-only repo (rootonchair/LTX-2.3-spatial-upscaler-*): LTX2LatentUpsamplePipeline."""
    from diffusers import LTX2LatentUpsamplePipeline

    LTX2LatentUpsamplePipeline(vae=vae, latent_upsampler=upsampler).save_pretrained(folder)


def build_repos(root: Path) -> dict[str, Path]:
    """Every repo the model table names, under root/<org>/<name>. Returns repo -> folder."""
    from diffusers import LTXLatentUpsamplePipeline

    repos: dict[str, Path] = {}

    def repo(name: str) -> Path:
        repos[name] = root / name
        return repos[name]

    # Lightricks/LTX-Video: 0.9.0 in diffusers folders (model_index says LTXPipeline) plus every
    # original-format checkpoint at the root, one of which is the fast path's 2B distilled file.
    folder = repo("Lightricks/LTX-Video")
    save_real_layout(ltx_pipeline("LTXImageToVideoPipeline", timestep_conditioning=False), folder,
                     dict(LTX_INDEX, _class_name="LTXPipeline"))
    for name in LTX_VIDEO_ROOT_JUNK:
        _stub(folder / name)
    vae_097 = tiny_vae()
    distilled_2b = tiny_transformer(REAL_TRANSFORMER_2B)
    file_name = gv.MODELS["ltx-distilled"].single_file.split("@")[0]
    original_single_file(distilled_2b, vae_097, folder / file_name)

    folder = repo("Lightricks/LTX-Video-0.9.1")
    save_real_layout(ltx_pipeline("LTXImageToVideoPipeline", vae=tiny_vae(REAL_VAE_091, TINY_VAE_091)), folder,
                     dict(LTX_INDEX, _class_name="LTXPipeline"))

    # 0.9.5: only its transformer/config.json is used (the config of the 2B single file).
    folder = repo("Lightricks/LTX-Video-0.9.5")
    save_real_layout(ltx_pipeline("LTXConditionPipeline", vae=vae_097, scheduler=REAL_SCHEDULER_095), folder,
                     dict(LTX_INDEX, _class_name="LTXConditionPipeline"))

    # 0.9.7-distilled: the 13B model; the fast path takes its scheduler, T5, tokenizer and VAE only.
    folder = repo("Lightricks/LTX-Video-0.9.7-distilled")
    save_real_layout(ltx_pipeline("LTXConditionPipeline", vae=vae_097, transformer_config=REAL_TRANSFORMER_13B,
                                  scheduler=REAL_SCHEDULER_095), folder,
                     dict(LTX_INDEX, _class_name="LTXConditionPipeline"))
    for name in ("transformer/diffusion_pytorch_model-00001-of-00006.safetensors.bak", "transformer/README.md",
                 "transformer/ltxv-13b-0.9.7-distilled.safetensors"):
        _stub(folder / name)

    folder = repo("Lightricks/LTX-Video-0.9.8-13B-distilled")
    save_real_layout(ltx_pipeline("LTXConditionPipeline", vae=vae_097, transformer_config=REAL_TRANSFORMER_13B,
                                  scheduler=REAL_SCHEDULER_095), folder,
                     dict(LTX_INDEX, _class_name="LTXConditionPipeline"))

    folder = repo("Lightricks/ltxv-spatial-upscaler-0.9.7")
    LTXLatentUpsamplePipeline(vae=vae_097, latent_upsampler=gv.tiny_latent_upsampler()).save_pretrained(folder)

    for name, version in (("THUDM/CogVideoX-5b-I2V", "1.0"), ("THUDM/CogVideoX1.5-5B-I2V", "1.5")):
        # 1.0's learned positions keep the real sample size: 90x60 latents (720x480), 49 frames.
        pipe = gv.tiny_cogvideox_pipeline(version, sample=(90, 60, 49))
        pipe.register_modules(text_encoder=gv.tiny_text_encoder(vocab_size=SP_VOCAB + T5_EXTRA_IDS))
        save_real_layout(pipe, repo(name), {
            "_class_name": "CogVideoXImageToVideoPipeline",
            "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
            "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
            "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLCogVideoX"]})
    # LTX-2: the full model at Lightricks/LTX-2; the distilled one (the diffusers docs' repo) with
    # its upscaler in the same repo.
    save_ltx2(ltx2_pipeline(), repo("Lightricks/LTX-2"), ltx2_upsampler())
    distilled_lora(repos["Lightricks/LTX-2"] / gv.LTX2_STAGE2_LORA.split("@")[0])
    distilled_lora(repo("Lightricks/LTX-2.3") / gv.LTX23_STAGE2_LORA.split("@")[0], seed=10)
    for name in LTX23_ORIGINAL_JUNK:
        _stub(repos["Lightricks/LTX-2.3"] / name)
    save_ltx2(ltx2_pipeline(seed=6), repo("rootonchair/LTX-2-19b-distilled"), ltx2_upsampler())
    # LTX-2.3 (diffusers' own repos, processor folder included) and its v1.1 upscaler's repo.
    dev23, distilled23 = ltx2_pipeline("2.3", seed=7), ltx2_pipeline("2.3", seed=8)
    save_ltx2(dev23, repo("diffusers/LTX-2.3-Diffusers"), index=LTX23_INDEX, junk=())
    save_ltx2(distilled23, repo("diffusers/LTX-2.3-Distilled-Diffusers"), index=LTX23_INDEX, junk=())
    for name in ("diffusers/LTX-2.3-Diffusers", "diffusers/LTX-2.3-Distilled-Diffusers"):
        save_gemma_processor(repos[name] / "processor")
    save_ltx25(repo("Lightricks/LTX-2.5-Diffusers"))
    save_ltx2_upsampler(ltx2_upsampler("2.3"), distilled23.vae,
                        repo("rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers"))
    for folder in repos.values():
        _stub(folder / "README.md", "---\nlicense: other\n---\n")
        _stub(folder / ".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return repos
