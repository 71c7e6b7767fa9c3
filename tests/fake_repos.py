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
    for folder in repos.values():
        _stub(folder / "README.md", "---\nlicense: other\n---\n")
        _stub(folder / ".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return repos
