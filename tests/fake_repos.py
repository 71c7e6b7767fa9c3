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
# LTX-2: diffusers 0.42.1's class defaults are LTX-2.0's configs; the repos' config.json files add
# what the defaults do not say (the VAE's declared 32x/8x: its four scaling flags alone say 64x/16x;
# the vocoder of Lightricks/LTX-2/vocoder/config.json).

REAL_LTX2_VAE = {"spatial_compression_ratio": 32, "temporal_compression_ratio": 8}
TINY_LTX2_VAE = {  # shrunk: channels and depth; flags, downsample types, patch 4 and both ratios real
    "latent_channels": 8, "block_out_channels": (8, 8, 8, 8), "decoder_block_out_channels": (8, 16, 32),
    "layers_per_block": (1, 1, 1, 1, 1), "decoder_layers_per_block": (1, 1, 1, 1),
}
TINY_LTX2_TRANSFORMER = {  # shrunk: widths, depth, latent channels; RoPE and norms as the real ones
    "in_channels": 8, "out_channels": 8, "num_attention_heads": 2, "attention_head_dim": 8, "cross_attention_dim": 16,
    "audio_in_channels": 8, "audio_out_channels": 8, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_cross_attention_dim": 8, "num_layers": 1, "caption_channels": 32,
}
# Audio: 16 kHz mel input, hop 160, 4x time and mel compression (the real values); shrunk channels
# (latent channels x mel bins / 4 = the transformer's audio_in_channels, as 8 x 64 / 4 = 128 is).
TINY_LTX2_AUDIO_VAE = {"base_channels": 8, "ch_mult": (1, 2, 4), "num_res_blocks": 1, "latent_channels": 2,
                       "mel_bins": 16}
REAL_LTX2_VOCODER = {"out_channels": 2, "output_sampling_rate": 24000, "upsample_factors": [6, 5, 2, 2, 2],
                     "upsample_kernel_sizes": [16, 15, 8, 4, 4]}  # stereo, 24 kHz: 16,000 / 160 x 240
TINY_LTX2_VOCODER = {"in_channels": 2 * 16, "hidden_channels": 64, "resnet_kernel_sizes": [3], "resnet_dilations": [[1]]}
TINY_LTX2_CONNECTORS = {"caption_channels": 32, "text_proj_in_factor": 3, "video_connector_num_attention_heads": 4,
                        "video_connector_attention_head_dim": 8, "video_connector_num_layers": 1,
                        "video_connector_num_learnable_registers": None, "audio_connector_num_attention_heads": 4,
                        "audio_connector_attention_head_dim": 8, "audio_connector_num_layers": 1,
                        "audio_connector_num_learnable_registers": None, "connector_rope_base_seq_len": 32}
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
                  "ltx-2-19b-distilled-lora-384.safetensors", "ltx-2-spatial-upscaler-x2-1.0.safetensors"]


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


def ltx2_pipeline(seed: int = 4):
    """A complete tiny LTX-2 image-to-video pipeline (real 32x/8x video compression, real audio
    rates); its tokenizer is rewritten in the real layout when saved (save_ltx2)."""
    import tempfile

    import torch
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2ImageToVideoPipeline, LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab = write_gemma_tokenizer(Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    torch.manual_seed(seed)
    return LTX2ImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(
            {k: v for k, v in REAL_SCHEDULER_090.items() if not k.startswith("_")}),
        vae=AutoencoderKLLTX2Video(**REAL_LTX2_VAE, **TINY_LTX2_VAE).eval(),
        audio_vae=AutoencoderKLLTX2Audio(**TINY_LTX2_AUDIO_VAE).eval(),
        text_encoder=tiny_gemma(vocab), tokenizer=tokenizer,
        connectors=LTX2TextConnectors(**TINY_LTX2_CONNECTORS).eval(),
        transformer=LTX2VideoTransformer3DModel(**TINY_LTX2_TRANSFORMER).eval(),
        vocoder=LTX2Vocoder(**REAL_LTX2_VOCODER, **TINY_LTX2_VOCODER).eval())


def ltx2_upsampler():
    import torch
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    torch.manual_seed(5)
    return LTX2LatentUpsamplerModel(in_channels=8, mid_channels=32, num_blocks_per_stage=1).eval()


def save_ltx2(pipe, folder: Path, upsampler=None) -> None:
    """The real LTX-2 repo layout: sharded weights, Gemma's tokenizer files (no tokenizer.json),
    model_index.json as Lightricks/LTX-2's, the upscaler in latent_upsampler/ (not in the index),
    and original-format checkpoints at the root that must never be fetched."""
    pipe.save_pretrained(folder, max_shard_size=SHARD)
    shutil.rmtree(folder / "tokenizer")
    write_gemma_tokenizer(folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps(LTX2_INDEX, indent=2))
    if upsampler is not None:
        upsampler.save_pretrained(folder / "latent_upsampler")
    for name in LTX2_ROOT_JUNK:
        _stub(folder / name)


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
    save_ltx2(ltx2_pipeline(seed=6), repo("rootonchair/LTX-2-19b-distilled"), ltx2_upsampler())
    for folder in repos.values():
        _stub(folder / "README.md", "---\nlicense: other\n---\n")
        _stub(folder / ".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return repos
