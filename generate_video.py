#!/usr/bin/env python3
"""generate_video.py: turn a still image and a prompt into an MP4, locally.

    python generate_video.py --image in.png --prompt "a boat drifts at sunset"

Runs Lightricks' LTX-Video (or CogVideoX image-to-video as the fallback, or LTX-2 for video with
its sound) through Hugging Face Diffusers on the best device at hand: Apple's MPS, then CUDA, then
the CPU. At every size the default is LTX's distilled multi-scale recipe (half-size pass, 2x
latent upscale, short full-size refine, tiled decode), which is what makes 5 s of 1080p a matter
of minutes.

Guarantees: the MP4 has exactly the size and fps asked (H.264, yuv420p, moov atom first); it is
written to a temporary file and renamed, never over an existing file without --overwrite; a JSON
sidecar with the same stem records every setting, version, timing and the seed, so any video can
be made again. Weights are read from safetensors only and no remote code is ever run.

Run `python generate_video.py --help` for every option, `--check` to test the machine first,
`--ui` for the same tool as a page in your browser.

Sections, top to bottom in the order the data flows, each under a banner of the same words:

  1. Constants: every default, once, and the model table (MODELS)
  2. Small helpers: errors, signals, output, numbers, files read, hashed or named
  3. Request: what was asked and what it resolves to, as types
  4. Plan, the model: aliases, local folders, the Hub cache, the model's sizes
  5. Plan, the job: checks, model, refusals, size, frames, stages, keyframes, windows, LoRAs, drafts
  6. Memory and time: which savings to switch on, decided before anything loads; the time estimate
  7. Weights and loading: device, dtype, downloads, the two-phase load, LoRAs, placement
  8. Kernels, trusted only once proven here: Metal attention, chunked attention, conv3d as conv2d
  9. Families: one class of facts and hooks per family of pipelines, registered by pipeline class
 10. Stages: the image, the prompts, the denoising stages through the family's hooks
 11. Decode and files: frames out, the MP4 and its sidecar published as one unit
 12. Running jobs: one model load per group, prompts encoded once, each video written atomically
 13. Batch: --jobs FILE (JSON Lines), several --image, or a folder of images
 14. --check: can this machine run the tool? Works offline, on tiny pipelines
 15. Command line: the parser, and main as a numbered recipe
 16. The web page (--ui): the command line's requests, plans and runs behind a local page
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

# platform, random, subprocess and tempfile are imported where used: --help and usage
# errors must answer at once (measured in tests/benchmarks).

# MPS: operators Metal lacks fall back to the CPU instead of crashing. Only read by torch at import
# time, so it must be set before anything imports torch (NOTES.md).
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

__version__ = "1.0.0"


# ----------------------------------------------------------------------------------------------
# 1. Constants: every default, once, and the model table (MODELS)
# The defaults, limits and choices the command line offers, then one row per checkpoint (ModelSpec):
# its recipe, sizes and what it can do.

DEFAULT_PROMPT_NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"
DEFAULT_RESOLUTION = "1080p"
DEFAULT_DURATION_S = 5.0
DEFAULT_FPS = 24
DEFAULT_DEVICE = "auto"
DEFAULT_DTYPE = "auto"
DEFAULT_PRESET = "auto"
UI_PORT = 7860  # --ui: the page's port (Gradio's own default)
UI_OUTPUT_DIR = "videos"  # --ui: the page's videos, in the folder it was started from (or --output-dir)
DEFAULT_ATTENTION_BUDGET_GIB = 1.0  # per attention call: heads x chunk x keys x bytes
DEFAULT_CRF = 17  # x264 quality: 17 is visually lossless for generated video
AUDIO_BITRATE = "192k"  # AAC, stereo: transparent for generated speech, music and effects
RESOLUTIONS = {"480p": 480, "720p": 720, "1080p": 1080}  # short side in pixels
LTX_VAE_SPATIAL_TILE = 512  # diffusers' LTX VAE tile (px) with 448 px stride
LTX_VAE_TILE_BLEND = 64  # px two neighbouring tiles share and blend (diffusers' 512 - 448), at any tile size
# Larger tiles compute less overlap twice (1080p: 512 px tiles decode 1.27x the frame's pixels,
# 1024 px tiles 1.09x), where the memory plan has room and the decoder's largest single convolution
# stays short: macOS may end a GPU command that runs for seconds while the display needs the GPU
# (kIOGPUCommandBufferCallbackErrorImpactingInteractivity). Judged at the conv rate measured here.
VAE_TILE_SIZES = (512, 768, 1024)  # px
TILE_OP_SECONDS = 1.0  # the longest one convolution of a tile may take, at the measured rate
MAX_SIDE = 4096  # px; far beyond what any of these models was trained for
MAX_UPSCALE = 2.0  # image enlarged more than this to fill the video: warn (detail will be soft)
MPS_WORKING_SET = 0.75  # share of unified memory Metal recommends as a GPU working set
MAX_SEED = 2**63 - 1
MAX_IMAGE_PIXELS = 200_000_000  # larger images are refused before decoding (decompression bombs)
MIN_IMAGE_SIDE = 16  # px: a smaller picture holds nothing to animate (and H.264 needs 2+ px a side)
MAX_FPS = 120  # frames per second
MAX_VARIATIONS = 64  # per command: one model load makes them all
EXTEND_CONTEXT = 17  # frames of the original (8k+1: three latent frames) that start an extension
DRAFT_LATENTS_SUFFIX = ".latents.safetensors"  # beside a draft's MP4 and sidecar
EXTEND_SOUND_RATE = 48000  # Hz: an extended video's own sound, kept under its part by a silent model
STAGE_SEED_STRIDE = 0x9E3779B97F4A7C15  # stage k > 0 reseeds at seed + k * this (mod 2**63): see denoise()
# A running job keeps what it has denoised in a hidden file beside its output, so the same command
# resumes a run that was killed (memory pressure, a closed lid or terminal): see Resume.
RESUME_SUFFIX = ".resume.safetensors"  # the state file: "." + the output's name + this
RESUME_SAVE_SECONDS = 30.0  # s between saves inside a stage (or every step, if steps are slower)
RESUME_KEEP_DAYS = 14  # a saved state untouched this long is stale: removed like a killed run's temp files
MAX_STEPS = 500  # denoising steps
# Numbers a user gives are finite and inside these, checked where they are parsed (a value like
# 1e308 s would overflow every frame count computed from it).
MAX_DURATION_S = 3600.0  # s of video in one command (a long clip is made window by window)
MAX_MEMORY_BUDGET_GB = 4096.0  # GB: beyond any Mac's memory
MAX_GUIDANCE = 100.0  # classifier-free guidance scale (LTX's recipes use 1 to 5)
MAX_TFLOPS = 10_000.0  # a matmul rate read from the timing cache beyond this is not this machine's
BOUND_REASONS = {"fps": "players and H.264 levels stop there; the models were trained at 8-30 fps",
                 "steps": "flow-matching samplers stop improving long before; 50 is the usual guided count"}
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DEVICES = ("auto", "mps", "cuda", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")
PRESETS = ("auto", "fast", "quality")
TRISTATE = ("auto", "on", "off")
OFFLOADS = ("auto", "none", "model", "sequential")
QUANTIZE = ("auto", "none", "int8", "int4")

# The VAE's conv3d. Before PyTorch moved it onto Metal kernels, MPS ran conv3d at ~6-7% of its
# matmul rate (pytorch#192213: 3.6-4.1 of 61 TFLOPS on torch 2.12) while conv2d ran at par; the
# same convolution as one conv2d per temporal tap, summed, rides the tuned 2-D path (MLX now does
# this itself, ml-explore/mlx#3785). Where conv3d is fast (newer torch), the native op wins and
# auto keeps it: the choice is measured on the machine, never assumed.

CONV3D_MODES = ("auto", "conv2d", "stock")
CONV3D_NAME = "conv3d as conv2d"  # the built-in path's name in plans, verdicts and sidecars

# Bytes per weight of a quantized linear layer (optimum-quanto): int8 with a scale per output
# channel; int4 in groups of 128 with a bf16 scale and shift each.
QUANT_BYTES = {"int8": 1.0 + 1 / 256, "int4": 0.5 + 4 / 128}
LOG_QUIET, LOG_NORMAL, LOG_VERBOSE = 0, 1, 2

# What one component folder of a diffusers repo may contribute: configs, tokenizer files and
# safetensors weights (sharded ones through their index). Never *.bin/*.pt: pickles can run code
# when loaded. Nothing outside the folders model_index.json names is ever fetched: repos such as
# Lightricks/LTX-Video keep 250+ GB of original-format checkpoints at their root.
HUB_CONFIG_FILES = ("config.json", "scheduler_config.json", "preprocessor_config.json", "generation_config.json")
HUB_TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                       "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model")
HUB_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
# A transformers processor's folder (Gemma3Processor as diffusers' LTX-2.3 repos save it): configs,
# tokenizer files and chat template; no weights.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "chat_template.jinja",
                   "chat_template.json") + HUB_TOKENIZER_FILES
HUB_WEIGHT_INDEXES = tuple(f"{w}.index.json" for w in HUB_WEIGHT_FILES)


@dataclass(frozen=True)
class ModelSpec:
    """What one checkpoint needs; the single source of checkpoint-specific settings."""

    alias: str
    repo: str  # Hub id in diffusers format (or of the companion repo for single-file weights)
    pipeline: str  # diffusers pipeline class that runs it: its family's registered name (FAMILIES)
    distilled: bool = False
    steps: int = 50
    guidance: float = 3.0
    fps: int = DEFAULT_FPS
    # Valid frame counts are frame_step * k + 1. CogVideoX too: its VAE decodes latents in pairs and
    # returns 4k+1 frames only for an odd latent count, i.e. 8k+1 frames (49, 81, 161).
    frame_step: int = 8
    max_frames: int = 257
    size_multiple: int = 32
    native_size: tuple[int, int] | None = None  # (w, h) a model with learned positions needs
    native_frames: int | None = None  # the frame count those positions were learned for (the default length)
    short_side: int | None = None  # px: the short side a model card prescribes (default size)
    max_long_side: int | None = None  # px: the card's upper bound for the long side
    scheduler: str | None = None  # diffusers scheduler class the authors' demo swaps in (trailing spacing)
    dynamic_cfg: bool = False  # CogVideoX's cosine-ramped guidance (THUDM's demo, with the DPM scheduler)
    default_resolution: str = DEFAULT_RESOLUTION
    decode_timestep: float | None = None  # timestep-conditioned VAEs (LTX 0.9.1+)
    decode_noise_scale: float | None = None
    # Distilled schedules, as Lightricks' configs give them (sigmas x 1000): one transformer pass
    # per value, the last stepping to sigma 0. Stage 2 starts from the upscaled stage-1 latents
    # noised to its first value.
    stage1_timesteps: tuple[float, ...] | None = None
    stage2_timesteps: tuple[float, ...] | None = None
    # Stage 1's size as a share of the target in the maker's own recipe (--preset quality; fast
    # always runs it at half, so the 2x upscale lands on the target and nothing is computed twice).
    maker_stage1_scale: float = 0.5
    best_size: tuple[int, int] | None = None  # (long, short) px: the card says it works best within it
    # Conditioning image as Lightricks' ltx_video/inference.py prepares it (models trained on
    # compressed frames): 3x3 gaussian blur of this sigma, then an H.264 encode/decode at this CRF.
    image_blur_sigma: float = 0.0
    image_crf: int = 0
    image_cond_noise_scale: float = 0.15  # inference.py's default, in every pass
    tone_map: float = 0.0  # latent tone-map compression before decoding (0: none)
    upsampler: str | None = None  # default spatial upscaler for the fast preset
    single_file: str | None = None  # transformer weights as one file in `repo` (original format)
    config_repo: str | None = None  # diffusers repo whose transformer config fits `single_file`
    params_b: dict[str, float] = field(default_factory=dict)  # billions, for the memory plan
    # Extra guidance the pipeline takes (LTX-2: STG, modality isolation, audio guidance), as its
    # keyword arguments; each extra pass (STG, modality) is one more transformer forward per step.
    guidance_extras: dict[str, Any] = field(default_factory=dict)
    quality_alias: str | None = None  # the full model this distilled one defers to under --preset quality
    # A full model's two-stage recipe (LTX-2): stage 2 runs with this distilled LoRA ("file@repo"),
    # on stage2_timesteps, without guidance; stage 1 is guided, on the family's schedule.
    stage2_lora: str | None = None
    call_options: dict[str, Any] = field(default_factory=dict)  # more keyword arguments every pipeline call takes
    stage1_sampler: str | None = None  # "ancestral": the distilled stage 1's Euler step adds fresh noise (LTX-2.5)
    transformer_folder: str | None = None  # the repo folder of its transformer when not the index's (transformer_full)
    prompt_enhancer: str | None = None  # a separate model its maker enhances prompts with (not run here)
    # GB a first run downloads, summed from the real repos' listings (README "Downloads"); None: the
    # weights' parameter count at HUB_BYTES_PER_PARAM (LTX-2's repos are bf16 throughout)
    download_gb: float | None = None
    quantizable: tuple[str, ...] = ()  # components whose linear layers may be quantized (--quantize)
    unquantized_b: dict[str, float] = field(default_factory=dict)  # billions in them that stay (embeddings)
    note: str = ""

    @property
    def family(self) -> type[Family]:
        """The class of hooks that runs this checkpoint (registered by its pipeline class)."""
        return FAMILIES[self.pipeline]

    @property
    def two_stage(self) -> bool:
        """It runs as two stages (a stage, the 2x latent upscaler, a short one at full size), as its
        maker does: a distilled model in both presets (quality: at the maker's geometry), LTX-2's
        full models too."""
        return self.upsampler is not None and self.stage2_timesteps is not None


# Billions of parameters, counted from the real configs (tests/benchmarks/real_size.py builds them):
# T5-XXL encoder 4.76; transformers 2B 1.92, 13B 13.04; VAEs (encoder + decoder, both loaded)
# 0.9.0 0.419, 0.9.1 0.935, 0.9.5+ 1.247; latent upsampler 0.126.
LTX_T5 = 4.76

# configs/ltxv-{2b,13b}-0.9.8-distilled.yaml: first_pass and second_pass timesteps (sigmas x 1000).
LTX_DISTILLED_STAGE1 = (1000.0, 993.7, 987.5, 981.2, 975.0, 909.4, 725.0)
LTX_DISTILLED_STAGE2 = (909.4, 725.0, 421.9)
# Their multi-scale geometry (every configs/ltxv-*-0.9.8-*.yaml: downscale_factor 0.6666666): the
# first pass at 2/3 of the target (floored to 32), the 2x upscale, the second pass at 4/3, the
# video resized down to the target (inference.py).
LTX_DOWNSCALE = 0.6666666
LTX_IMAGE_RECIPE = {"image_blur_sigma": 1.0, "image_crf": 29}  # ltx_video/inference.py, every LTX model

# LTX-2 (video with its sound). Sigmas x 1000 of diffusers' pipelines/ltx2/utils.py (= Lightricks'
# distilled.py): 8 for stage 1, 3 for stage 2 (renoised to its first).
LTX2_DISTILLED_STAGE1 = (1000.0, 993.75, 987.5, 981.25, 975.0, 909.375, 725.0, 421.875)
LTX2_DISTILLED_STAGE2 = (909.375, 725.0, 421.875)

# Distilled: no guidance of any kind (the pipeline's defaults would add STG and modality passes,
# and audio CFG 7). The full models: Lightricks' ltx_pipelines/utils/constants.py (2.0: STG in
# block 29; 2.3: block 28).
LTX2_DISTILLED_GUIDANCE = {"stg_scale": 0.0, "audio_stg_scale": 0.0, "modality_scale": 1.0,
                           "audio_modality_scale": 1.0, "audio_guidance_scale": 1.0, "guidance_rescale": 0.0,
                           "audio_guidance_rescale": 0.0}
LTX2_FULL_GUIDANCE = {"stg_scale": 1.0, "audio_stg_scale": 1.0, "modality_scale": 3.0, "audio_modality_scale": 3.0,
                      "audio_guidance_scale": 7.0, "guidance_rescale": 0.7, "audio_guidance_rescale": 0.7,
                      "spatio_temporal_guidance_blocks": [29]}

# The full models' recipe (Lightricks' ltx_pipelines/ti2vid_two_stages.py, TI2VidTwoStagesPipeline,
# the one Lightricks ships for quality; its one-stage pipeline is "primarily for educational
# purposes"): stage 1 at half size with full guidance on LTX2Scheduler's sigmas (40 steps for
# 2.0, 30 for 2.3: utils/constants.py), the 2x upscaler, stage 2 on LTX2_DISTILLED_STAGE2 with
# the distilled LoRA at strength 1.0 (the CLI's DEFAULT_LORA_STRENGTH; diffusers' ltx2.md too),
# renoised to its first sigma, no guidance (SimpleDenoiser). LoRA files as Lightricks' READMEs
# name them (2.3: its model list's v1.1).
LTX2_STAGE2_LORA = "ltx-2-19b-distilled-lora-384.safetensors@Lightricks/LTX-2"
LTX23_STAGE2_LORA = "ltx-2.3-22b-distilled-lora-384-1.1.safetensors@Lightricks/LTX-2.3"
# --enhance-prompt on LTX-2: Gemma 3 rewrites the prompt before encoding it, as Lightricks' pipelines
# do when asked (ltx-pipelines utils/blocks.py PromptEncoder: the first prompt only, the video's
# seed, the first image). ltx-core text_encoders/gemma/encoders/base_encoder.py: sampling at
# temperature 0.7, at most 512 new tokens (GEMMA3_ENHANCE_GENERATION_KWARGS); ltx-pipelines
# utils/helpers.py generate_enhanced_prompt: the image file's long side resized to 896 px. The
# processor (Gemma 3's tokenizer, chat template and 896 px image processor) is shipped in the
# processor/ folder of diffusers' LTX-2.3 repos only; LTX-2.0 and 2.3 read with the same Gemma 3
# 12B, so both take it from there.
ENHANCE_NEW_TOKENS = 512
LTX2_ENHANCER_PROCESSOR = "processor@diffusers/LTX-2.3-Diffusers"
# Planning: the system prompt (~750 tokens), the image (256 tokens), the user's prompt and the new
# tokens, rounded up; Gemma 3 12B's KV cache per token: 2 x 48 layers x 8 KV heads x 256
# (google/gemma-3-12b-it config.json), elements.
ENHANCE_CONTEXT_TOKENS = 2048
GEMMA_KV_PER_TOKEN = 2 * 48 * 8 * 256
GENERATE_EFFICIENCY = 0.03  # token-by-token generation reads every weight per token: memory-bound
# LTX-2's own negative prompt: Lightricks' ltx_pipelines DEFAULT_NEGATIVE_PROMPT of the 2.0/2.3
# releases, byte for byte what diffusers 0.42.1 exports (pipelines/ltx2/utils.py).
LTX2_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, "
    "grainy texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, "
    "deformed facial features, asymmetrical face, missing facial features, extra limbs, disfigured hands, "
    "wrong hand count, artifacts around text, inconsistent perspective, camera shake, incorrect depth of "
    "field, background too sharp, background clutter, distracting reflections, harsh shadows, inconsistent "
    "lighting direction, color banding, cartoonish rendering, 3D CGI look, unrealistic materials, uncanny "
    "valley effect, incorrect ethnicity, wrong gender, exaggerated expressions, wrong gaze direction, "
    "mismatched lip sync, silent or muted audio, distorted voice, robotic voice, echo, background noise, "
    "off-sync audio, incorrect dialogue, added dialogue, repetitive speech, jittery movement, awkward "
    "pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, flat lighting, "
    "inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)
# LTX-2.0's audio-video cross-attention uses each modality's own timestep (its release code);
# from 2.3 on, the other modality's: diffusers' use_cross_timestep (default True, "the LTX-2.3/2.5
# behavior; False is the legacy LTX-2.0 behavior").
LTX20_CALL = {"use_cross_timestep": False}

# Billions, from the bf16 files' sizes (transformer 37.8 GB; Gemma 3 12B with its vision tower
# 24.4 GB; video VAE 2.49 GB, audio VAE 0.22, connectors 2.86, vocoder 0.11, upsampler ~1 GB).
# Replaced by the safetensors headers' counts once a checkpoint is on disk (model_dims). The
# distilled LoRAs: rank 384 on each linear layer of the blocks, counted from the real configs
# (tests/fake_repos.py: 1,344 layers, 3.70B; 2.3: 1,632, 4.04B).
LTX2_PARAMS = {"transformer": 19.0 + 1.43, "text_encoder": 12.2, "vae": 1.25 + 0.11 + 0.06, "upsampler": 0.5}
LTX23_PARAMS = dict(LTX2_PARAMS, transformer=22.0 + 1.43)  # LTX-2.3: "22B" by its name; connectors as 2.0's
LTX2_QUANTIZABLE = ("text_encoder", "transformer")  # Gemma 3 12B and the 19B transformer: 88% of the weights
LTX2_UNQUANTIZED = {"text_encoder": 262_144 * 3840 / 1e9}  # Gemma's token embeddings: not a linear layer
LTX2_IMAGE_CRF = 33  # ltx_pipelines' DEFAULT_IMAGE_CRF through LTX-2.3 (18 from 2.5); no blur
# LTX-2.5: one diffusers repo (diffusers' ltx2.md): the distilled transformer in transformer/, the
# full one in transformer_full/, the upscaler in latent_upsampler/, the full model's stage-2
# distilled LoRA (rank 450) at the root. Lightricks' ltx-pipelines for it: images at CRF 18
# (utils/constants.py LTX_2_4_IMAGE_CRF: 2.5 is the product name of the internal 2.4); the
# distilled stage 1 sampled with the ancestral Euler step, eta 1, its noise seeded seed + 10000
# (distilled.py ANCESTRAL_ETA, ANCESTRAL_NOISE_SEED_OFFSET); the full model as 2.3's (30 steps,
# STG in block 28). Its Gemma 4 is no prompt enhancer (diffusers and Lightricks use a separate
# google/gemma-4-E2B-it).
LTX25_REPO = "Lightricks/LTX-2.5-Diffusers"
LTX25_IMAGE_CRF = 18
LTX25_STAGE2_LORA = f"ltx-2.5-22b-distilled-lora-450-bf16.safetensors@{LTX25_REPO}"
LTX25_ENHANCER = "google/gemma-4-E2B-it"
ANCESTRAL_ETA = 1.0
ANCESTRAL_NOISE_SEED_OFFSET = 10000
# --audio (Lightricks' a2vid_two_stage.py): the sound is read at the audio VAE's 16 kHz, stereo, as
# a log-mel spectrogram (ltx-core model/audio_vae/ops.py AudioProcessor: n_fft 1024, hop 160,
# slaney mel scale and norm, magnitude, log of at least 1e-5), encoded, and held fixed ("frozen":
# noise 0, timestep 0) in both stages; the video carries the original sound.
SOUNDTRACK_RATE = 16000  # Hz
SOUNDTRACK_OUT_RATE = 48000  # Hz: the sound written with the video (AAC)
MEL_FFT, MEL_HOP, MEL_FLOOR = 1024, 160, 1e-5
# Billions: transformer 18.99 + text connectors 3.17 (the script's 2.5 configs built empty: the
# "22b" of the file names); Gemma 4 12B by its name; video VAE 0.73, audio VAE 0.05, vocoder 0.13;
# upscaler as 2.3's. The LoRA: 2.3's rank-384 count x 450/384.
LTX25_PARAMS = {"transformer": 18.99 + 3.17, "text_encoder": 12.0, "vae": 0.73 + 0.05 + 0.13, "upsampler": 0.5}
MODELS: dict[str, ModelSpec] = {
    spec.alias: spec
    for spec in (
        ModelSpec(
            # configs/ltxv-2b-0.9.1.yaml: 40 steps, guidance 3, rescaling 0.7 (diffusers' guidance_rescale);
            # its README then: "works best on resolutions under 720 x 1280"
            "ltx", "Lightricks/LTX-Video-0.9.1", "LTXImageToVideoPipeline",
            steps=40, guidance=3.0, decode_timestep=0.05, decode_noise_scale=0.025, **LTX_IMAGE_RECIPE,
            guidance_extras={"guidance_rescale": 0.7}, default_resolution="720p", best_size=(1280, 720),
            params_b={"transformer": 1.92, "text_encoder": LTX_T5, "vae": 0.935},
            download_gb=25.0, note="LTX-Video 0.9.1, 2B: the newest checkpoint built for LTXImageToVideoPipeline (720p by default)",
        ),
        ModelSpec(
            "ltx-0.9.0", "Lightricks/LTX-Video", "LTXImageToVideoPipeline",
            steps=50, guidance=3.0, **LTX_IMAGE_RECIPE,
            params_b={"transformer": 1.92, "text_encoder": LTX_T5, "vae": 0.42},
            download_gb=28.4, note="LTX-Video 0.9.0, 2B, VAE without timestep conditioning",
        ),
        ModelSpec(
            "ltx-distilled", "Lightricks/LTX-Video-0.9.7-distilled", "LTXConditionPipeline",
            distilled=True, steps=7, guidance=1.0, decode_timestep=0.05, decode_noise_scale=0.025,
            stage1_timesteps=LTX_DISTILLED_STAGE1, stage2_timesteps=LTX_DISTILLED_STAGE2,
            upsampler="Lightricks/ltxv-spatial-upscaler-0.9.7", **LTX_IMAGE_RECIPE, maker_stage1_scale=LTX_DOWNSCALE,
            single_file="ltxv-2b-0.9.8-distilled.safetensors@Lightricks/LTX-Video",
            config_repo="Lightricks/LTX-Video-0.9.5",
            params_b={"transformer": 1.92, "text_encoder": LTX_T5, "vae": 1.247, "upsampler": 0.126},
            download_gb=25.9, note="LTX-Video 0.9.8 2B distilled (single file) with 0.9.7 VAE/T5: the fast default",
        ),
        ModelSpec(
            "ltx-13b-distilled", "Lightricks/LTX-Video-0.9.8-13B-distilled",
            "LTXConditionPipeline",
            distilled=True, steps=7, guidance=1.0, decode_timestep=0.05, decode_noise_scale=0.025,
            stage1_timesteps=LTX_DISTILLED_STAGE1, stage2_timesteps=LTX_DISTILLED_STAGE2,
            upsampler="Lightricks/ltxv-spatial-upscaler-0.9.7", **LTX_IMAGE_RECIPE, tone_map=0.6,
            maker_stage1_scale=LTX_DOWNSCALE,
            params_b={"transformer": 13.04, "text_encoder": LTX_T5, "vae": 1.247, "upsampler": 0.126},
            download_gb=48.0, note="LTX-Video 0.9.8 13B distilled: better detail, ~5x the compute of the 2B; the quality default",
        ),
        ModelSpec(
            "cogvideox", "THUDM/CogVideoX-5b-I2V", "CogVideoXImageToVideoPipeline",
            steps=50, guidance=6.0, fps=8, frame_step=8, max_frames=49, size_multiple=16,
            native_size=(720, 480), native_frames=49, scheduler="CogVideoXDPMScheduler", dynamic_cfg=True,
            params_b={"transformer": 5.6, "text_encoder": LTX_T5, "vae": 0.22},
            download_gb=21.6, note="CogVideoX 1.0 5B I2V: 720x480, 49 frames at 8 fps; the fallback",
        ),
        ModelSpec(
            "cogvideox1.5", "THUDM/CogVideoX1.5-5B-I2V",
            "CogVideoXImageToVideoPipeline",
            steps=50, guidance=6.0, fps=16, frame_step=16, max_frames=161, size_multiple=16,
            short_side=768, max_long_side=1360, scheduler="CogVideoXDPMScheduler", dynamic_cfg=True,
            params_b={"transformer": 5.6, "text_encoder": LTX_T5, "vae": 0.22},
            download_gb=31.0, note="CogVideoX 1.5 5B I2V: short side 768, long side <= 1360, 16N+1 frames (81, 161) at 16 fps",
        ),
        ModelSpec(
            "ltx2", "rootonchair/LTX-2-19b-distilled", "LTX2ImageToVideoPipeline",
            distilled=True, steps=8, guidance=1.0, max_frames=481,
            stage1_timesteps=LTX2_DISTILLED_STAGE1, stage2_timesteps=LTX2_DISTILLED_STAGE2,
            upsampler="rootonchair/LTX-2-19b-distilled", image_crf=LTX2_IMAGE_CRF, image_cond_noise_scale=0.0,
            guidance_extras=LTX2_DISTILLED_GUIDANCE, quality_alias="ltx2-dev", params_b=LTX2_PARAMS,
            quantizable=LTX2_QUANTIZABLE, unquantized_b=LTX2_UNQUANTIZED, call_options=LTX20_CALL,
            note="LTX-2 19B distilled, video with sound (24 kHz stereo): the diffusers docs' distilled repo",
        ),
        ModelSpec(
            "ltx2-dev", "Lightricks/LTX-2", "LTX2ImageToVideoPipeline",
            steps=40, guidance=3.0, max_frames=481, image_crf=LTX2_IMAGE_CRF, image_cond_noise_scale=0.0,
            stage2_timesteps=LTX2_DISTILLED_STAGE2, upsampler="Lightricks/LTX-2", stage2_lora=LTX2_STAGE2_LORA,
            guidance_extras=LTX2_FULL_GUIDANCE, params_b=dict(LTX2_PARAMS, stage2_lora=3.70),
            quantizable=LTX2_QUANTIZABLE, unquantized_b=LTX2_UNQUANTIZED, call_options=LTX20_CALL,
            note="LTX-2 19B full model, Lightricks' two stages: 40 guided steps at half size (CFG, STG, "
                 "modality), then 3 with the distilled LoRA",
        ),
        ModelSpec(
            "ltx2.3", "diffusers/LTX-2.3-Distilled-Diffusers", "LTX2ImageToVideoPipeline",
            distilled=True, steps=8, guidance=1.0, max_frames=481,
            stage1_timesteps=LTX2_DISTILLED_STAGE1, stage2_timesteps=LTX2_DISTILLED_STAGE2,
            upsampler="rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers", image_crf=LTX2_IMAGE_CRF,
            image_cond_noise_scale=0.0, guidance_extras=LTX2_DISTILLED_GUIDANCE, quality_alias="ltx2.3-dev",
            params_b=LTX23_PARAMS, quantizable=LTX2_QUANTIZABLE, unquantized_b=LTX2_UNQUANTIZED,
            note="LTX-2.3 22B distilled, video with sound (48 kHz stereo), upscaler v1.1",
        ),
        ModelSpec(
            "ltx2.3-dev", "diffusers/LTX-2.3-Diffusers", "LTX2ImageToVideoPipeline",
            steps=30, guidance=3.0, max_frames=481, image_crf=LTX2_IMAGE_CRF, image_cond_noise_scale=0.0,
            stage2_timesteps=LTX2_DISTILLED_STAGE2, upsampler="rootonchair/LTX-2.3-spatial-upscaler-x2-v1.1-Diffusers",
            stage2_lora=LTX23_STAGE2_LORA, guidance_extras=dict(LTX2_FULL_GUIDANCE, spatio_temporal_guidance_blocks=[28]),
            params_b=dict(LTX23_PARAMS, stage2_lora=4.04), quantizable=LTX2_QUANTIZABLE,
            unquantized_b=LTX2_UNQUANTIZED,
            note="LTX-2.3 22B full model, Lightricks' two stages: 30 guided steps at half size (CFG, STG in "
                 "block 28, modality), then 3 with the distilled LoRA",
        ),
        ModelSpec(
            "ltx2.5", LTX25_REPO, "LTX2ImageToVideoPipeline",
            distilled=True, steps=8, guidance=1.0, max_frames=481,
            stage1_timesteps=LTX2_DISTILLED_STAGE1, stage2_timesteps=LTX2_DISTILLED_STAGE2, stage1_sampler="ancestral",
            upsampler=LTX25_REPO, image_crf=LTX25_IMAGE_CRF, image_cond_noise_scale=0.0,
            guidance_extras=LTX2_DISTILLED_GUIDANCE, quality_alias="ltx2.5-dev", params_b=LTX25_PARAMS,
            prompt_enhancer=LTX25_ENHANCER, quantizable=LTX2_QUANTIZABLE, unquantized_b=LTX2_UNQUANTIZED,
            note="LTX-2.5 22B distilled (Lightricks' recommended model), video with sound (48 kHz stereo), "
                 "Gemma 4 text encoder",
        ),
        ModelSpec(
            "ltx2.5-dev", LTX25_REPO, "LTX2ImageToVideoPipeline",
            steps=30, guidance=3.0, max_frames=481, image_crf=LTX25_IMAGE_CRF, image_cond_noise_scale=0.0,
            transformer_folder="transformer_full", stage2_timesteps=LTX2_DISTILLED_STAGE2, upsampler=LTX25_REPO,
            stage2_lora=LTX25_STAGE2_LORA, guidance_extras=dict(LTX2_FULL_GUIDANCE, spatio_temporal_guidance_blocks=[28]),
            params_b=dict(LTX25_PARAMS, stage2_lora=4.04 * 450 / 384), prompt_enhancer=LTX25_ENHANCER,
            quantizable=LTX2_QUANTIZABLE, unquantized_b=LTX2_UNQUANTIZED,
            note="LTX-2.5 22B full model, Lightricks' two stages: 30 guided steps at half size (CFG, STG in "
                 "block 28, modality), then 3 with the distilled LoRA",
        ),
    )
}
DEFAULT_MODEL_FAST = "ltx-distilled"
# --preset quality: Lightricks' best for image-to-video at its own multi-scale geometry (README: why
# not the 13B dev, whose per-step guidance lists diffusers cannot run, nor 0.9.1)
DEFAULT_MODEL_QUALITY = "ltx-13b-distilled"
UNKNOWN_REPO_MODEL = "ltx"  # an uncached Hub repo is planned as this row's pipeline until its index is fetched

# The family registry: each pipeline class a checkpoint's model_index.json may name -> the Family
# subclass that runs it (section 9's classes register themselves; so can any module that imports
# this one). Per-family facts live on those classes and in the MODELS rows, nowhere else.
FAMILIES: dict[str, type[Family]] = {}

# What a family may support beyond plain image-to-video (Family.supports); the planner refuses an
# option whose feature the chosen family lacks (REFUSALS).
FEATURES = ("draft", "lora", "lora_passes", "conditions", "keyframes", "extend", "segments", "enhance_prompt",
            "soundtrack")


def register(*pipeline_classes: str):
    """Class decorator: the family runs checkpoints whose model_index.json names any of these
    classes, with the first (a text-to-video class's weights serve its image-to-video sibling)."""
    def add(cls):
        unknown = set(cls.supports) - set(FEATURES)
        if unknown:  # a family author's typo would otherwise refuse the option it meant to allow
            raise TypeError(f"{cls.__name__}.supports: unknown feature(s) {sorted(unknown)}; known: {FEATURES}")
        cls.pipeline = pipeline_classes[0]
        for name in pipeline_classes:
            FAMILIES[name] = cls
        return cls
    return add


# ----------------------------------------------------------------------------------------------
# 2. Small helpers: errors, signals, output, numbers, files read, hashed or named


class UsageError(Exception):
    """A mistake the user can fix by changing the command (exit 2)."""


class RunError(Exception):
    """A failure while running (exit 1); the message names the cause and the fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (kill, timeout, a closed terminal): cleaned up exactly like Ctrl-C,
    exit 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Cancelled(KeyboardInterrupt):
    """The web page's Cancel: the job ends at its next step as Ctrl-C ends it (nothing half-made is
    left), and since it is wanted no more, its resume state goes too."""


@contextlib.contextmanager
def terminate_like_ctrl_c():
    """While a run is under way, SIGTERM and SIGHUP raise Terminated, so every cleanup that
    handles Ctrl-C (temp files, ffmpeg) runs for them too; the old handlers come back after."""
    import signal

    def handler(signum, frame):
        raise Terminated(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            with contextlib.suppress(ValueError):  # not the main thread: leave them alone
                previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def in_background(fn: Callable[[], Any]) -> Any:
    """fn() in a daemon thread while this one waits in short joins, so Ctrl-C, SIGTERM and SIGHUP
    end the wait at once (huggingface_hub's download pool would be waited on: 11.5 min seen)."""
    import threading

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the waiting thread as is
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["value"]


def exit_now(code: int) -> None:
    """sys.exit; after Ctrl-C, SIGTERM or SIGHUP (their cleanup done), without waiting for worker
    threads: Python's exit joins a thread pool's workers, and huggingface_hub's download pool
    would finish its files first (11.5 minutes seen). Files already downloaded are kept."""
    if code in (EXIT_INTERRUPTED, 128 + 15, 128 + 1):  # Ctrl-C, SIGTERM, SIGHUP
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def emit(text: str, stream=None, end: str = "\n") -> None:
    """print() that survives a reader going away (`| head`): the rest of the output is dropped,
    the work goes on and the exit code stays the work's (a finished video is not a failure)."""
    stream = stream or sys.stdout
    try:
        stream.write(text + end)
        stream.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())  # Python's documented remedy: later writes go nowhere
            os.close(devnull)


class Log:
    """Stage lines on stderr; -q keeps errors and the final line only. Where lines and progress
    go is this class's to say: the web page's log (PageLog) keeps them for the page, and its
    `check` ends a job at its next step when the page's Cancel was pressed."""

    def __init__(self, level: int = LOG_NORMAL):
        self.level = level

    def info(self, msg: str) -> None:
        if self.level >= LOG_NORMAL:
            self.write(msg)

    def warn(self, msg: str) -> None:
        if self.level >= LOG_NORMAL:
            self.write(f"warning: {msg}")

    def verbose(self, msg: str) -> None:
        """Detail for -v only."""
        if self.level >= LOG_VERBOSE:
            self.write(msg)

    def write(self, line: str) -> None:
        emit(line, sys.stderr)

    @property
    def redraws(self) -> bool:
        """Progress redrawn in place (a terminal), or a plain line every 10% (logs, pipes)."""
        return sys.stderr.isatty()

    def status(self, text: str, width: int, last: bool = False) -> None:
        """A progress or heartbeat line: redrawn in place on a terminal (`last` ends it, "" clears it)."""
        if self.redraws:
            emit("\r" + text.ljust(width)[:width] + ("" if text else "\r"), sys.stderr, end="\n" if last else "")
        else:
            emit(text, sys.stderr)

    def check(self) -> None:
        """Called at every step: nothing here (Ctrl-C arrives as a signal); the page's log raises
        Cancelled once its Cancel was pressed."""


class Progress:
    """One long stage's progress on stderr: a bar redrawn in place on a terminal, a plain line
    every 10% otherwise (logs, pipes); stage ETA from its own pace, and the job's elapsed time."""

    def __init__(self, log: Log, stage: str, job_started: float, start: float = 0.0):
        self.log, self.stage, self.job_started = log, stage, job_started
        self.started = time.perf_counter()
        self.start = start  # the fraction done before this run (a resumed stage): the pace counts what is left
        self.tty = log.redraws
        self.next_line = 0.0  # non-terminal: the next fraction worth a line

    def update(self, fraction: float, detail: str = "") -> None:
        self.log.check()
        if self.log.level < LOG_NORMAL or (not self.tty and fraction < self.next_line and fraction < 1):
            return
        self.next_line = int(fraction * 10 + 1) / 10
        now = time.perf_counter()
        spent = now - self.started
        eta = f", ETA {clock(spent / (fraction - self.start) * (1 - fraction))}" if self.start < fraction < 1 else ""
        bar = "#" * int(fraction * 20) + "-" * (20 - int(fraction * 20))
        self.log.status(f"  {self.stage} [{bar}] {fraction:4.0%} {detail}".rstrip()
                        + f"  {clock(spent)}{eta} (job {clock(now - self.job_started)})", 100, last=fraction >= 1)


HEARTBEAT_SECONDS = 10  # a phase without progress of its own says how long it has run, this often


@contextlib.contextmanager
def heartbeat(log: Log | None, what: str, every: float | None = None):
    """No silent stretch: while a phase with no progress of its own runs (loading, encoding,
    finishing the MP4), its elapsed time every `every` seconds, redrawn in place on a terminal."""
    if log is None or log.level < LOG_NORMAL:
        yield
        return
    import threading

    stop, started = threading.Event(), time.perf_counter()
    every = every or HEARTBEAT_SECONDS

    def beat():
        while not stop.wait(every):
            log.status(f"  {what}: {clock(time.perf_counter() - started)} so far", 60)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if log.redraws and time.perf_counter() - started >= every:
            log.status("", 60)  # the line cleared


def is_amount(value: Any, below: float = math.inf) -> bool:
    """A number read back from a file of ours as we write them: int or float (not bool), 0 <= it < `below`."""
    return type(value) in (int, float) and 0 <= value < below


def notes(e: BaseException) -> str:
    """What was added to an error on its way up ("; the same command resumes v.mp4 from ..."). """
    return "".join(f"; {n}" for n in getattr(e, "__notes__", ()))


def first_line(e: BaseException, default: str = "") -> str:
    """An exception's message, first line only: some libraries put a tool's whole output there."""
    return (str(e).strip().splitlines() or [default])[0]


def clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def describe_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def valid_frame_count(n: int, step: int) -> int:
    """The smallest count >= n of the form step * k + 1 (what the VAE maps cleanly)."""
    return round_up(max(n - 1, 0), step) + 1


def even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def dtype_label(dtype) -> str:
    """torch.bfloat16 -> "bfloat16": how plans, sidecars and verdict keys name a dtype."""
    return str(dtype).replace("torch.", "")


def total_memory_bytes() -> int:
    """Physical (on Apple Silicon: unified) memory of this machine."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def peak_rss_bytes() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # macOS: bytes, Linux: KiB


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SAFETENSORS_HEADER_MAX = 100_000_000  # bytes: safetensors' own limit on a header


def read_safetensors_header(path: Path) -> dict:
    """A .safetensors file's header (tensor names, dtypes, shapes); no tensor is read. OSError,
    ValueError or struct.error for a file that is not one."""
    return safetensors_layout(path)[0]


def safetensors_layout(path: Path) -> tuple[dict, int, int]:
    """(header, the header's length, the file's size) of a .safetensors file, from its first bytes."""
    import struct

    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        size = os.fstat(f.fileno()).st_size
        if header_len > min(SAFETENSORS_HEADER_MAX, size - 8):  # damaged, or not one
            raise ValueError(f"a header of {header_len} bytes in a file of {size}")
        header = json.loads(f.read(header_len))
    return header if isinstance(header, dict) else {}, header_len, size


@contextlib.contextmanager
def signals_deferred(reraise: bool = True):
    """Ctrl-C, SIGTERM and SIGHUP wait until the block is done (a few file operations), so a
    cleanup or a publish is never cut in half. A signal that came meanwhile is delivered after,
    to the handler it would have met, unless `reraise` is False (the run is already ending)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if caught and reraise:
            signal.raise_signal(caught[0])


def resume_path(output: Path) -> Path:
    """The hidden file beside a video where its run keeps the state a stopped run resumes from."""
    return output.with_name(f".{output.name}{RESUME_SUFFIX}")


def read_resume_record(output: Path) -> dict | None:
    """The record of a stopped run's saved state for this output (seed, stage, step, what shaped
    it), read from the file's header alone; None when there is none or it is not ours."""
    import struct

    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, struct.error):
        record = json.loads(read_safetensors_header(resume_path(output))["__metadata__"]["resume"])
        if isinstance(record, dict) and type(record.get("seed")) is int and isinstance(record.get("shaping"), dict) \
                and type(record.get("saved_at")) is float and math.isfinite(record["saved_at"]):
            return record
    return None


def safetensors_params(path: Path) -> int:
    """Parameter count of a .safetensors file from its header alone."""
    return sum(math.prod(t["shape"]) for k, t in read_safetensors_header(path).items() if k != "__metadata__")


def read_audio(path: Path, rate: int):
    """The sound of any file ffmpeg reads, as float32 [2, samples] in [-1, 1] at `rate` Hz (mono
    doubled); an empty array when it has no sound."""
    import subprocess

    import imageio_ffmpeg
    import numpy as np

    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-vn",
                          "-ac", "2", "-ar", str(rate), "-f", "f32le", "-"], capture_output=True)
    data = np.frombuffer(run.stdout, "<f4")
    return np.ascontiguousarray(data[:len(data) // 2 * 2].reshape(-1, 2).T)


def resample(samples, rate: int, to: int):
    """[channels, n] float samples at `rate` Hz as at `to` Hz, band-limited (the FFT's own
    interpolation, as scipy.signal.resample does)."""
    import numpy as np

    n = samples.shape[1]
    m = round(n * to / rate)
    if n == 0 or m == n:
        return samples
    spectrum = np.fft.rfft(samples, axis=1)
    keep = min(spectrum.shape[1], m // 2 + 1)
    out = np.zeros((samples.shape[0], m // 2 + 1), complex)
    out[:, :keep] = spectrum[:, :keep]
    return (np.fft.irfft(out, m, axis=1) * (m / n)).astype(samples.dtype)


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read once per version of the file (a draft's image is hashed for its
    latents and again for its sidecar; a batch hashes the same image for every job)."""
    st = os.stat(path)
    return _file_sha256(os.path.realpath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def dict_sha256(data: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _shell_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


PARTIAL_STEM_CHARS = 40  # of the target's stem in a temp name: long stems must not overflow NAME_MAX


def run_tag() -> str:
    """<host>-<pid>: which machine and process a temp file belongs to."""
    import hashlib
    import socket

    return f"{hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]}-{os.getpid()}"


def temp_path(final: Path, ext: str) -> Path:
    """A new, empty temp file beside `final` (same file system, so renaming it is atomic), locked
    by this process while it lives (hold_lock)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem[:PARTIAL_STEM_CHARS]}.{run_tag()}.",
                               suffix=f".partial.{ext}", dir=final.parent)
    hold_lock(fd, tmp)
    return Path(tmp)


# Temp file -> the descriptor holding its lock. A lock lives as long as its holder, so this lives
# with the process: a run in another PID namespace (a container, `unshare`) may see our PID as
# dead, but never our lock as free (remove_stale_partials). Closed once its file is gone.
HELD_LOCKS: dict[str, int] = {}


def hold_lock(fd: int, path: str) -> None:
    """Keep `fd` open with an exclusive flock on `path` (the file's inode: it follows a rename)."""
    import fcntl

    for held, old in list(HELD_LOCKS.items()):  # published or removed since: let go
        if not os.path.exists(held):
            os.close(old)
            del HELD_LOCKS[held]
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a file system without locks: the PID in the name is all there is
        os.close(fd)
        return
    HELD_LOCKS[path] = fd


def locked_by_a_live_run(path: str) -> bool:
    """Whether a live process (of any PID namespace on this kernel) holds this file's lock."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def chip_name() -> str:
    """The CPU/SoC name ("Apple M4 Max"); asked once per process (attention calls consult it)."""
    import platform
    import subprocess

    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip()
    return platform.processor() or platform.machine()


def verdict_cache_path() -> Path:
    root = os.environ.get("GENERATE_VIDEO_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                                   os.path.expanduser("~/.cache"), "generate_video")
    return Path(root) / "kernel_verdicts.json"


# ----------------------------------------------------------------------------------------------
# 3. Request: what was asked and what it resolves to, as types
# Strings become real types once, at the boundary (the parser, a jobs file); everything after
# works on these frozen dataclasses.


def _number(kind: type, accept: Callable[[float], bool], rule: str) -> Callable[[str], Any]:
    """An argparse type: parse `kind`, then check it, with a message that says the rule."""
    noun = "a whole number" if kind is int else "a number"

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return convert


positive_int = _number(int, lambda v: v > 0, "positive")
duration_seconds = _number(float, lambda v: 0 < v <= MAX_DURATION_S, f"positive and at most {MAX_DURATION_S:g}")
time_seconds = _number(float, lambda v: 0 <= v <= MAX_DURATION_S, f"between 0 and {MAX_DURATION_S:g}")
memory_gb = _number(float, lambda v: 0 < v <= MAX_MEMORY_BUDGET_GB, f"positive and at most {MAX_MEMORY_BUDGET_GB:g}")
guidance_value = _number(float, lambda v: 0 <= v <= MAX_GUIDANCE, f"between 0 and {MAX_GUIDANCE:g}")
seed_int = _number(int, lambda v: 0 <= v <= MAX_SEED, f"between 0 and {MAX_SEED}")
port_int = _number(int, lambda v: 1 <= v <= 65535, "a port number, 1 to 65535")


@dataclass(frozen=True)
class Request:
    """What the user asked for, validated but not yet resolved against a model."""

    image: Path
    prompt: str
    output: Path | None
    negative_prompt: str | None = None
    model: str | None = None
    upsampler: str | None = None
    preset: str = DEFAULT_PRESET
    resolution: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    num_frames: int | None = None
    fps: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    device: str = DEFAULT_DEVICE
    dtype: str = DEFAULT_DTYPE
    attention_slicing: str = "auto"
    conv3d: str = "auto"  # the VAE's conv3d: auto (the check decides), conv2d (the built-in path), stock
    vae_tiling: str = "auto"
    offload: str = "auto"
    memory_budget_gb: float | None = None
    overwrite: bool = False
    draft: bool = False
    variations: int = 1
    from_draft: Path | None = None
    lora: tuple[str, ...] = ()  # PATH_OR_HUB_ID[:SCALE][@half|@full] each
    end_image: Path | None = None
    keyframe: tuple[str, ...] = ()  # PATH@SECONDS or PATH@#FRAME each
    extend: Path | None = None  # an MP4 to continue
    extend_only: bool = False
    segment_prompt: tuple[str, ...] = ()  # one long clip, a window per prompt
    no_audio: bool = False  # a model with sound: write the video without it
    quantize: str = "auto"  # weights of the big parts: auto (the plan picks), none, int8, int4
    enhance_prompt: bool = False  # the model's own enhancer rewrites the prompt first
    audio: Path | None = None  # a soundtrack the video is made to (LTX-2), and carries

    def frames_at(self, fps: int) -> int:
        """The frames asked for: --num-frames, else --duration (default DEFAULT_DURATION_S) at
        `fps` plus the first frame, before any model's frame rule rounds it."""
        if self.num_frames is not None:
            return self.num_frames
        return int(round((self.duration or DEFAULT_DURATION_S) * fps)) + 1


@dataclass(frozen=True)
class Stage:
    """One denoising pass: its size and schedule."""

    name: str
    width: int
    height: int
    steps: int
    timesteps: tuple[int, ...] | None = None
    denoise_strength: float = 1.0
    tflop: float = 0.0
    reused: str | None = None  # a final's stage 1: the draft's latents file it starts from
    attention_tflop: float = 0.0  # of `tflop`, attention's (its rate depends on the kernel)
    guided: bool = True  # runs the model's guidance (a full model's stage 2 runs none: its distilled LoRA)


@dataclass(frozen=True)
class Condition:
    """An image the video must pass through: at `frame` (0-based), with `strength` 1 = exactly."""

    path: Path
    frame: int
    sha256: str
    strength: float = 1.0


@dataclass(frozen=True)
class Soundtrack:
    """--audio: the sound the video is made to (LTX-2's audio-to-video) and carries."""

    path: Path
    sha256: str
    seconds: float


@dataclass(frozen=True)
class Extension:
    """--extend: the original video and how the new part continues it."""

    video: Path
    sha256: str
    frames: int  # the original's frame count
    context: int  # its last frames that condition the start of the new part (8k+1)
    only: bool  # write the new part alone


@dataclass(frozen=True)
class Lora:
    """One --lora, resolved: its safetensors file on disk, checked against the model."""

    source: str  # as given: a path, a Hub id, or Hub id/file.safetensors
    file: Path
    scale: float
    passes: str  # "all", "half" (the fast path's stage 1) or "full" (its stage 2, or the single pass)
    params: int
    sha256: str

    def applies(self, stage: str) -> bool:
        return self.passes == "all" or (self.passes == "half") == (stage == "stage1")

    @property
    def arg(self) -> str:
        return lora_arg(self.source, self.scale, self.passes)


def lora_arg(source: str, scale: float, passes: str) -> str:
    """The --lora argument that asks for this LoRA again."""
    return f"{source}:{scale:g}" + ("" if passes == "all" else f"@{passes}")


@dataclass(frozen=True)
class Job:
    """Everything one video needs, resolved: sizes, frames, schedule, files."""

    request: Request
    spec: ModelSpec
    model_source: str  # Hub id, local folder, or single file
    upsampler_source: str | None
    preset: str  # "fast" (multi-scale distilled) or "quality" (single pass)
    width: int  # exact output size
    height: int
    gen_width: int  # generation size: multiples of the model's size rule covering the output
    gen_height: int
    num_frames: int
    fps: int
    seed: int
    guidance_scale: float
    negative_prompt: str
    stages: tuple[Stage, ...]
    output: Path
    sidecar: Path
    dims: ModelDims | None = None  # the model's sizes as planned (configs, safetensors headers: read once)
    draft: bool = False  # stage 1 only, written at half size with its latents (for a final later)
    final_size: tuple[int, int] | None = None  # a draft's: the size its final will have
    reuse: Path | None = None  # a final's: the draft latents that replace its stage 1
    image_size: tuple[int, int] | None = None  # the conditioning image's size if not the generation size
    loras: tuple[Lora, ...] = ()
    conditions: tuple[Condition, ...] = ()  # images pinned after frame 0 (end image, keyframes)
    extend: Extension | None = None
    soundtrack: Soundtrack | None = None  # --audio
    segments: tuple[str, ...] = ()  # a long clip's window prompts (each window num_frames long)
    downscale: bool = False  # generated larger than the target by design (the maker's geometry): resized down
    window: int = 0  # a long clip's window: each after the first starts from the last frames of the one before
    held_sound: Any = None  # ... and, with a family that makes sound, from their sound (16 kHz stereo)

    @property
    def family(self) -> type[Family]:
        return self.spec.family

    @property
    def cfg(self) -> bool:
        """Classifier-free guidance is on: two transformer passes a step, a negative prompt read."""
        return self.guidance_scale > 1.0

    @property
    def stage2_lora(self) -> str | None:
        """The model's recipe LoRA ("file@repo") when this job runs the stage it is for (a draft stops
        at stage 1)."""
        return self.spec.stage2_lora if len(self.stages) > 1 else None

    @property
    def windows(self) -> int:
        return max(1, len(self.segments))

    @property
    def out_frames(self) -> int:
        """Frames in the written MP4: an extension drops its context frames and, unless
        --extend-only, puts the original first; each window after a long clip's first drops the
        context frames it starts from."""
        if self.segments:
            return self.windows * self.num_frames - EXTEND_CONTEXT * (self.windows - 1)
        if self.extend is None:
            return self.num_frames
        return self.num_frames - self.extend.context + (0 if self.extend.only else self.extend.frames)

    @property
    def latents_file(self) -> Path:
        """Where a draft keeps its stage-1 latents, beside its video."""
        return self.output.with_name(self.output.stem + DRAFT_LATENTS_SUFFIX)


@dataclass(frozen=True)
class MemoryPlan:
    """Memory settings chosen (or forced) for a job, and the estimate that chose them."""

    budget_bytes: int
    attention_chunk: int | None  # query rows per chunk; None: the stock attention
    vae_spatial_tiling: bool
    vae_temporal_tiling: bool
    offload: str  # none / model / sequential
    estimate: dict[str, float]  # GiB by part
    peak_gib: float
    tokens: int
    attention_kernel: str | None = None  # a Metal kernel that passed its self-check here ("mps-sdpa 0.2.0")
    kernel_verdict: dict | None = None
    quantize: str = "none"  # the spec's quantizable parts in int8/int4 (optimum-quanto)
    conv3d: str = "stock"  # the VAE's conv3d: "conv2d" (conv3d_as_conv2d, checked here) or PyTorch's
    conv3d_verdict: dict | None = None
    vae_tile: int | None = None  # px of the spatial tiles when larger than the VAE's own (widest_tile)


@dataclass(frozen=True)
class AudioTrack:
    """A soundtrack for the video: float samples in [-1, 1], [channels, samples], at `rate` Hz."""

    samples: Any
    rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    def fitted(self, seconds: float) -> AudioTrack:
        """Exactly `seconds` long: the vocoder's output is a few ms off the video's length (its
        latent grid is 25 per second), so the tail is cut or padded with silence."""
        import numpy as np

        n = round(seconds * self.rate)
        samples = self.samples[:, :n]
        if samples.shape[1] < n:
            samples = np.pad(samples, ((0, 0), (0, n - samples.shape[1])))
        return AudioTrack(samples, self.rate)


@dataclass
class RunStats:
    """Measured while a job runs; goes to the sidecar."""

    timings: dict[str, float] = field(default_factory=dict)
    step_seconds: list[float] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    device_peak_bytes: int = 0
    stage_shapes: dict[str, list[int]] = field(default_factory=dict)
    cpu_fallback_ops: list[str] = field(default_factory=list)
    estimated_seconds: float | None = None  # the plan's time estimate, kept beside the actual
    estimate_basis: dict | None = None  # the rates it assumed or measured (estimate_basis)
    extra_files: list[tuple[Path, Path]] = field(default_factory=list)  # (temp, final) published with the video
    latents_sha256: str | None = None  # a draft's saved latents
    audio: AudioTrack | None = None  # the soundtrack a family with audio made with the frames
    enhanced_prompt: str | None = None  # --enhance-prompt: the rewrite the model read
    throttling: dict | None = None  # steps that slowed down within a stage (notice_throttling)
    retried: dict | None = None  # a first attempt that failed on a checked kernel, and what the second changed
    resumed: dict | None = None  # the saved state of a stopped run this one resumed from (Resume.record)
    started: float = field(default_factory=time.perf_counter)  # for the progress display's job clock

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)


@dataclass(frozen=True)
class Runtime:
    """Where and how jobs run, decided once per group of jobs and handed whole to what runs them
    (instead of device, dtype, log and stats through every signature). Per job: its `stats`, and
    the Metal attention kernel its plan trusts as (Kernel, module), if any."""

    device: str
    dtype: Any  # a torch dtype
    log: Log
    stats: RunStats = field(default_factory=RunStats)
    kernel: tuple | None = None
    resume: Any = None  # the job's Resume: its saved state, if a stopped run left one, and its saver

    @property
    def dtype_name(self) -> str:
        return dtype_label(self.dtype)


@dataclass(frozen=True)
class Loaded:
    """A model in memory: its pipeline, latent upscaler (the fast path's), family and weights."""

    pipe: Any
    upsampler: Any
    weights: Weights
    lora_fused: bool = False  # its LoRAs were fused into the weights (apply_loras)
    loras: tuple[Lora, ...] = ()  # loaded: the jobs' own, then the recipe's (a full model's stage-2 LoRA)

    @property
    def family(self) -> type[Family]:
        return self.weights.family


# ----------------------------------------------------------------------------------------------
# 4. Plan, the model: aliases, local folders, the Hub cache, the model's sizes
# Cheap: reads at most a model_index.json, configs and safetensors headers.


def hub_cache_dir() -> Path:
    from_env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if from_env:
        return Path(from_env)
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hub"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def cached_repo_dir(repo: str) -> Path:
    return hub_cache_dir() / ("models--" + repo.replace("/", "--"))


def model_folder(source: str | None) -> Path | None:
    """The folder of a local model, or of a Hub model's newest cached snapshot, or None."""
    if source is None:
        return None
    path = Path(source)
    if path.is_dir():
        return path
    snapshots = cached_repo_dir(source) / "snapshots"
    found = sorted(snapshots.glob("*/model_index.json")) if snapshots.is_dir() else []
    return found[-1].parent if found else None


HUB_TIMEOUT_S = (10, 10)  # s: connect, each read (huggingface_hub's own download timeouts); its client has none


@functools.lru_cache(maxsize=1)
def hub_timeouts() -> None:
    """huggingface_hub's shared HTTP client with timeouts (its repo-info call passes none: a Hub
    that accepts the connection and never answers hung the run for good); once per process."""
    import httpx2
    from huggingface_hub.utils import _http

    connect, read = HUB_TIMEOUT_S

    def bounded(request) -> None:  # calls that pass timeout=None (repo info) get ours too
        limits = dict(request.extensions.get("timeout") or {})
        for key, value in (("connect", connect), ("read", read), ("write", read), ("pool", read)):
            if limits.get(key) is None:
                limits[key] = value
        request.extensions["timeout"] = limits

    _http.set_client_factory(lambda: httpx2.Client(
        event_hooks={"request": [_http.hf_request_event_hook, bounded]}, follow_redirects=True,
        timeout=httpx2.Timeout(read, connect=connect)))


def _snapshot(repo: str, patterns: list[str], log: Log | None = None) -> tuple[Path, str]:
    """Exactly these files of a Hub repo in the local cache (downloaded, or resumed, if missing).
    What is missing is listed first (the Hub's sizes): refused if the cache's disk cannot hold it,
    and fetched with one progress line of ours (`log`), never huggingface_hub's bars; nothing is
    said when everything is cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

    hub_timeouts()
    where = dict(allow_patterns=patterns, local_files_only=hub_offline(), cache_dir=hub_cache_dir(),
                 endpoint=hub_endpoint())
    try:
        missing, listed = 0, []
        if not hub_offline():
            with contextlib.suppress(Exception):  # unreachable, gated, missing: the download below says which
                listed = in_background(lambda: snapshot_download(repo, dry_run=True, tqdm_class=download_bar(),
                                                                 **where))
            missing = sum(f.file_size or 0 for f in listed if f.will_download)
            check_disk_room(missing, repo)
            if missing >= DOWNLOAD_NOTE_BYTES and log is not None:
                files = sum(1 for f in listed if f.will_download)
                log.info(f"downloading {files} file(s) of {repo}: {describe_bytes(missing)} (kept in the cache "
                         f"{hub_cache_dir()}: only the first run downloads)")
        shown = log if missing >= DOWNLOAD_NOTE_BYTES else None  # configs and tokenizers: seconds, said nothing of
        folder = Path(in_background(lambda: snapshot_download(repo, tqdm_class=download_bar(shown, missing), **where)))
    except GatedRepoError:
        raise RunError(f"{repo} is gated: accept its licence at {hub_endpoint()}/{repo} (logged in), then log in "
                       "here with `hf auth login` (or set HF_TOKEN) and run again") from None
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE=1 is set" if hub_offline() else f"the Hub ({hub_endpoint()}) cannot be reached"
        raise RunError(f"{repo} is not (completely) in the Hugging Face cache ({hub_cache_dir()}) and {why}; "
                       "connect and run again (files already downloaded are kept), or pass "
                       "--model with a local folder") from None
    except (RunError, UsageError):
        raise
    except OSError as e:
        import errno

        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # a disk that filled during the download: say disk
            raise RunError(f"the disk holding the Hugging Face cache ({hub_cache_dir()}) filled up while downloading "
                           f"{repo}; free some space (or set HF_HOME to a folder on a disk with room) and run "
                           "again: files already downloaded are kept") from None
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # the cache, not the network
            raise RunError(f"the Hugging Face cache ({hub_cache_dir()}) cannot be written ({first_line(e)}); "
                           "set HF_HOME to a folder of your own (or fix the cache's permissions) and run again") from None
        raise RunError(f"could not download {repo}: {e.__class__.__name__}: {first_line(e)}; check the network "
                       "and the id, then run again (files already downloaded are kept), or pass a local folder") from None
    except Exception as e:  # huggingface_hub raises many network error types
        raise RunError(f"could not download {repo}: {e.__class__.__name__}: {first_line(e)}"
                       "; check the network and the id, then run again (files already downloaded are kept), "
                       "or pass a local folder") from None
    return folder, folder.name


DISK_MARGIN = 2**30  # bytes kept free beyond a download (the cache's own files, the video written after)
HUB_BYTES_PER_PARAM = 2  # the Hub's diffusers weights are bf16 (a plan's download size before the listing)
DOWNLOAD_NOTE_BYTES = 10**7  # a download this large or larger gets its line and progress; smaller ones pass silently


def check_disk_room(missing: int, repo: str) -> None:
    """Refuse, before a byte is fetched, a download the cache's disk cannot hold."""
    import shutil

    folder = hub_cache_dir()
    while not folder.exists() and folder != folder.parent:  # the cache may not exist yet: its disk
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if missing and missing + DISK_MARGIN > free:
        raise RunError(f"{repo} needs {describe_bytes(missing)} more in the Hugging Face cache ({hub_cache_dir()}), "
                       f"but its disk has {describe_bytes(free)} free; free some space, or set HF_HOME to a folder on "
                       "a disk with room, and run again")


def describe_bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def download_bar(log: Log | None = None, total: int = 0) -> type:
    """A tqdm class for huggingface_hub that draws nothing and reports the bytes its downloads
    write as one progress line of ours (`log`; none for a listing or when nothing is missing)."""
    from tqdm.auto import tqdm

    progress = Progress(log, "download", time.perf_counter()) if log is not None and total else None
    done = [0]  # bytes written so far, by every file's bar

    class Quiet(tqdm):
        def __init__(self, *args, **kwargs):
            self.counts = str(kwargs.get("desc", "")).startswith("Reconstructing")  # bytes written to the cache
            kwargs.pop("name", None)
            super().__init__(*args, **dict(kwargs, disable=True))

        def update(self, n=1):
            if self.counts and progress is not None and n:
                done[0] += n
                rate = done[0] / max(time.perf_counter() - progress.started, 1e-3)
                progress.update(min(done[0] / total, 1.0),
                                f"{describe_bytes(done[0])} of {describe_bytes(total)}, {rate / 1e6:.1f} MB/s")
            return super().update(n)

    return Quiet


def hub_cached(repo: str, filename: str = "model_index.json") -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir()), str)


def read_model_index(folder: Path, check_folders: bool = True) -> dict:
    """A diffusers folder's model_index.json, checked: an object whose components are
    [library, class] pairs (or null), each with its folder present. UsageError otherwise, naming
    what is wrong, instead of an AttributeError from deep inside diffusers."""
    index = folder / "model_index.json"
    try:
        data = read_json(index)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {index} ({e.__class__.__name__}); download the model again") from None
    if not isinstance(data, dict):
        raise UsageError(f"{index} is not a diffusers model index (not a JSON object); download the model again")
    for name, entry in data.items():
        if name.startswith("_") or entry is None or entry == [None, None]:
            continue
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            raise UsageError(f"{index}: entry {name!r} should be [library, class], got {json.dumps(entry)[:60]}; "
                             "download the model again")
        if check_folders and not (folder / name).is_dir():
            raise UsageError(f"{folder} has no {name}/ folder although its model_index.json names one "
                             "(an incomplete download or copy); download the model again")
    return data


def model_family_from_folder(folder: Path, check_folders: bool = False) -> str:
    """Pipeline class named by a diffusers folder's model_index.json (never guessed by name)."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise UsageError(
            f"{folder} is not a diffusers model folder (no model_index.json); "
            "pass a folder saved with save_pretrained, a Hub id, or one of: " + ", ".join(MODELS)
        )
    name = read_model_index(folder, check_folders).get("_class_name", "")
    name = name if isinstance(name, str) else ""
    if name not in FAMILIES:
        raise UsageError(
            f"{folder} holds a {name or 'unknown'} checkpoint; this tool runs image-to-video "
            f"checkpoints of: {', '.join(dict.fromkeys(f.pipeline for f in FAMILIES.values()))}"
        )
    return FAMILIES[name].pipeline  # a text-to-video class's weights run in its image-to-video sibling


def spec_for_source(source: str, pipeline_class: str | None) -> ModelSpec:
    """The table entry for a model: by alias, Hub id, or a Hub-cache snapshot path."""
    if source in MODELS:
        return MODELS[source]
    for spec in MODELS.values():
        if source == spec.repo or f"models--{spec.repo.replace('/', '--')}" in source:
            if pipeline_class is None or spec.pipeline == pipeline_class:
                return spec
    if pipeline_class is None:
        raise UsageError(f"unknown model {source!r}")
    return FAMILIES[pipeline_class].generic_spec(source)


def resolve_model_name(name: str) -> tuple[str, ModelSpec]:
    """(source, spec) for --model; cheap: reads at most one JSON file."""
    if name in MODELS:
        spec = MODELS[name]
        return spec.repo, spec
    path = Path(name).expanduser()
    hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None  # org/name
    looks_local = path.is_absolute() or name.startswith((".", "~")) or (os.sep in name and not hub_like)
    if path.exists():
        if path.is_file():
            raise UsageError(f"--model {name}: give the folder that holds model_index.json, not a file")
        return str(path.resolve()), spec_for_source(str(path.resolve()), model_family_from_folder(path, check_folders=True))
    if looks_local:
        raise UsageError(f"--model {name}: no such folder; check the path or use a Hub id such as "
                         f"{MODELS[DEFAULT_MODEL_QUALITY].repo}")
    if not hub_like:
        raise UsageError(f"--model {name!r} is neither a folder, a Hub id (org/name) nor one of: "
                         + ", ".join(MODELS))
    return name, spec_for_source(name, None if name in {s.repo for s in MODELS.values()} else
                                 _cached_pipeline_class(name))


def _cached_pipeline_class(repo: str) -> str | None:
    """Pipeline class of an unknown Hub repo from its cached model_index.json, if cached."""
    snapshots = cached_repo_dir(repo) / "snapshots"
    for index in sorted(snapshots.glob("*/model_index.json")) if snapshots.is_dir() else []:
        with contextlib.suppress(UsageError):
            return model_family_from_folder(index.parent)
    return MODELS[UNKNOWN_REPO_MODEL].pipeline  # an unknown repo: assume the stock layout until loaded


def resolve_upsampler_name(name: str) -> str:
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file() and not (path / "latent_upsampler").is_dir():
            raise UsageError(f"--upsampler {name}: not an LTXLatentUpsamplePipeline folder "
                             "(needs model_index.json or a latent_upsampler/ subfolder)")
        return str(path.resolve())
    if path.is_absolute() or name.startswith("."):
        raise UsageError(f"--upsampler {name}: no such folder")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        raise UsageError(f"--upsampler {name!r} is neither a folder nor a Hub id (org/name)")
    return name


@dataclass(frozen=True)
class ModelDims:
    """Sizes the memory plan needs; read from local configs when present, else the table."""

    params: dict[str, int]  # per component
    heads: int
    hidden: int
    vae_channels: int  # channels of the decoder's full-resolution block
    spatial: int  # VAE compression
    temporal: int
    patch: int  # transformer patch (tokens per latent pixel side)
    framewise_builtin: bool = False  # the VAE always decodes a few latent frames at a time
    layers: int = 28  # transformer blocks
    # LTX-2's audio stream (hidden 2048 beside video's 4096) runs on ~25 tokens a second: its
    # weights are a share of the transformer's that video tokens never use
    audio_hidden: int = 0
    audio_head_dim: int = 0  # LTX-2's audio attention (a Metal kernel is checked at both head sizes)
    latent_channels: int = 128  # per latent pixel, as the transformer returns them (resume state's size)

    @property
    def head_dims(self) -> tuple[int, ...]:
        return tuple(sorted({self.hidden // self.heads, *([self.audio_head_dim] if self.audio_head_dim else [])}))

    @property
    def video_share(self) -> float:
        """Of the transformer's weights, the share that acts on video tokens."""
        return self.hidden**2 / (self.hidden**2 + self.audio_hidden**2)


def model_dims(folder: Path | None, spec: ModelSpec) -> ModelDims:
    """The model's sizes: its family's defaults and the table's parameter counts, then, when the
    checkpoint is on disk, its safetensors headers' counts and its configs' sizes."""
    family = spec.family
    dims = dataclasses.replace(family.dims(spec), params={k: int(v * 1e9) for k, v in spec.params_b.items()})
    if folder is None or not folder.is_dir():
        return dims
    folded = family.folded_components
    where = {"transformer": spec.transformer_folder or "transformer"}  # LTX-2.5's full model: transformer_full/
    counted: dict[str, int] = {}
    for component in ("transformer", "text_encoder", "vae", "latent_upsampler", *folded):
        files = list((folder / where.get(component, component)).glob("*.safetensors"))
        if files:
            with contextlib.suppress(OSError, ValueError, KeyError):
                counted[component] = sum(safetensors_params(f) for f in files)
    params = dict(dims.params)
    for component, n in counted.items():
        if component not in folded:  # each with the parts folded into it
            params[component] = n + sum(counted.get(c, 0) for c, into in folded.items() if into == component)
    configs = []
    for part in ("transformer", "vae"):
        cfg: Any = {}
        with contextlib.suppress(OSError, ValueError):
            cfg = read_json(folder / where.get(part, part) / "config.json")
        configs.append(cfg if isinstance(cfg, dict) else {})
    return family.dims_from_configs(dataclasses.replace(dims, params=params), *configs)


# ----------------------------------------------------------------------------------------------
# 5. Plan, the job: checks, model, refusals, size, frames, stages, keyframes, windows, LoRAs, drafts
# plan_job and its steps. No model is loaded; a LoRA given as a Hub id is fetched (its header is
# checked against the model) and an --extend video is probed with ffmpeg.


@dataclass(frozen=True)
class Choice:
    """What a request resolves to before its length is planned: the model and its source, the
    preset, the exact output size and the size of the picture it starts from."""

    source: str
    spec: ModelSpec
    preset: str  # "fast" (multi-scale distilled) or "quality" (single pass)
    width: int
    height: int

    @property
    def family(self) -> type[Family]:
        return self.spec.family

    @property
    def two_stage(self) -> bool:
        return self.spec.two_stage


@dataclass(frozen=True)
class Refusal:
    """An option the chosen model or path cannot use: refused by name, never silently dropped."""

    asked: Callable[[Request], Any]  # the option was given
    usable: Callable[[Choice], bool]  # and the chosen model and path can use it
    why: str  # the message: str.format'ed with r (the request) and c (the choice)


# Every option a model or path may be unable to use, in the order they are checked (plan_job's
# step 4). Features are the families' `supports` (FEATURES).
REFUSALS = (
    Refusal(lambda r: r.draft or r.from_draft, lambda c: "draft" in c.family.supports,
            "--draft/--from-draft is not available for {c.spec.alias} ({c.spec.pipeline}) yet; leave it out, "
            "or use an LTX-Video model such as " + DEFAULT_MODEL_FAST),
    Refusal(lambda r: r.lora, lambda c: "lora" in c.family.supports,
            "--lora is not available for {c.spec.alias} ({c.spec.pipeline}) yet; leave it out, "
            "or use an LTX-Video model such as " + DEFAULT_MODEL_FAST),
    Refusal(lambda r: r.quantize in ("int8", "int4"), lambda c: bool(c.spec.quantizable),
            "--quantize {r.quantize}: {c.spec.alias} runs unquantized (it fits where it runs); quantized "
            "weights are offered for LTX-2's Gemma and transformer"),
    Refusal(lambda r: r.audio, lambda c: "soundtrack" in c.family.supports,
            "--audio: {c.spec.alias} makes silent video; a soundtrack drives LTX-2's picture (--model ltx2)"),
    Refusal(lambda r: r.no_audio, lambda c: c.family.audio,
            "--no-audio: {c.spec.alias} makes no sound (its videos are silent already)"),
    Refusal(lambda r: r.enhance_prompt, lambda c: not c.spec.prompt_enhancer,
            "--enhance-prompt: {c.spec.alias}'s text encoder is not trained to rewrite prompts; its maker uses a "
            "separate model for it ({c.spec.prompt_enhancer}), not offered here yet. Leave it out, or use "
            "--model ltx2.3"),
    Refusal(lambda r: r.enhance_prompt, lambda c: "enhance_prompt" in c.family.supports,
            "--enhance-prompt runs a model's own prompt enhancer: LTX-2's Gemma (--model ltx2 or ltx2.3); "
            "{c.spec.alias}'s maker enhances with Florence-2 and Llama run as remote code, which this tool "
            "never runs. Leave it out, or write a longer prompt: what moves, how the camera moves, the light"),
    Refusal(lambda r: r.attention_slicing not in ("auto", "off"), lambda c: c.family.own_attention,
            "--attention: {c.family.label} runs its pipeline's own attention here (no chunked or Metal "
            "processor for it); leave out --attention"),
    Refusal(lambda r: r.upsampler, lambda c: c.two_stage,
            "--upsampler is only used by --preset fast (the multi-scale path) and LTX-2's two-stage quality recipe"),
    Refusal(lambda r: r.guidance_scale not in (None, 1.0), lambda c: not c.spec.distilled,
            "--guidance-scale: {c.spec.alias} is guidance-distilled and runs at 1.0"),
    Refusal(lambda r: r.steps is not None, lambda c: not c.spec.distilled,
            "--steps: {c.spec.alias} runs the distilled timestep schedule of its checkpoint in both presets; "
            "--steps is for a full model (e.g. --model ltx2-dev, or --model ltx)"),
    Refusal(lambda r: r.extend is not None, lambda c: "extend" in c.family.supports,
            "--extend needs a condition pipeline (a distilled LTX-Video such as " + DEFAULT_MODEL_FAST
            + ", or LTX-2); {c.spec.alias} is an {c.spec.pipeline}"),
)


def plan_job(request: Request, log: Log, decode_image: bool = True) -> Job:
    """Validate everything cheap and resolve the job. Loads no model."""
    check_request(request)  # 1. numbers and text on their own
    extension, image_size, ext_fps = plan_input(request, decode_image, log)  # 2. the picture it starts from
    choice = choose_model(request, image_size, extension is not None, log)  # 3. model, preset, size
    refuse_unusable(request, choice)  # 4. options this model or path cannot use
    check_size(request, choice, log)
    soundtrack = plan_soundtrack(request)  # 5. frames and fps (a soundtrack's length unless asked)
    frames, fps = plan_length(fit_to_soundtrack(request, soundtrack, choice, log), choice, extension, ext_fps, log)
    job = build_job(request, choice, frames, fps, extension, log)  # 6. stages, output, seed, LoRAs, keyframes
    job = dataclasses.replace(job, soundtrack=soundtrack)
    return job if request.from_draft is None else attach_draft(job)


def check_request(request: Request) -> None:
    """Step 1: a request's numbers and text, each on its own (no file, no model yet)."""
    for what, text in (("--prompt", request.prompt), ("--negative-prompt", request.negative_prompt),
                       ("--image path", str(request.image)), ("--output path", request.output and str(request.output))):
        check_text(what, text)
    if not 1 <= request.variations <= MAX_VARIATIONS:
        raise UsageError(f"--variations must be between 1 and {MAX_VARIATIONS}, got {request.variations}")
    if request.from_draft is not None and (request.draft or request.variations > 1):
        raise UsageError("--from-draft renders that one draft in full; it takes neither --draft nor --variations")
    if request.audio is not None and request.no_audio:
        raise UsageError("--audio with --no-audio: the video carries the soundtrack it was made to; leave out one of them")
    for name, most in (("fps", MAX_FPS), ("steps", MAX_STEPS)):
        value = getattr(request, name)
        if value is not None and value > most:
            raise UsageError(f"--{name} {value}: at most {most} ({BOUND_REASONS[name]})")
    for name in ("width", "height", "num_frames", "fps", "steps"):
        value = getattr(request, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if request.duration is not None and request.duration <= 0:
        raise UsageError(f"--duration must be positive, got {request.duration}")
    for name in ("width", "height"):
        value = getattr(request, name)
        if value is not None and (value % 2 or value > MAX_SIDE):
            raise UsageError(f"--{name} {value}: must be even (H.264 yuv420p) and at most {MAX_SIDE}")
    if not request.prompt.strip() and not request.segment_prompt:
        raise UsageError("--prompt is empty; describe the motion you want")
    if request.memory_budget_gb is not None and request.memory_budget_gb <= 0:
        raise UsageError(f"--memory-budget must be positive, got {request.memory_budget_gb}")


def plan_input(request: Request, decode_image: bool, log: Log) -> tuple[Extension | None, tuple[int, int], int | None]:
    """Step 2: (extension, size, its fps): the video --extend continues, or --image's size."""
    if request.extend is not None:
        extension, width, height, fps = plan_extension(request, request.fps, log)
        return extension, (width, height), fps
    return None, check_image(request.image, decode=decode_image), None


def choose_model(request: Request, image_size: tuple[int, int], extending: bool, log: Log) -> Choice:
    """Step 3: the model and preset (the default model follows the preset, which follows the
    size) and the exact output size (an extension keeps the original's)."""
    if request.model:
        source, spec = resolve_model_name(request.model)
        spec = spec.family.refine(spec, Path(source)) if Path(source).is_dir() else spec
    else:
        source, spec = None, MODELS[DEFAULT_MODEL_FAST]
    width, height = image_size if extending else plan_size(image_size, request, spec)
    upscale = max(width / image_size[0], height / image_size[1])  # after the center crop
    if upscale > MAX_UPSCALE:
        log.warn(f"the {image_size[0]}x{image_size[1]} image is enlarged {upscale:.1f}x to fill {width}x{height}: "
                 "detail will be soft; use a larger image or a lower --resolution")
    # auto: the distilled multi-scale path at every size (a 50-step guided pass costs ~7x more at
    # 720p too); a checkpoint that cannot run it falls back to one pass below, with a notice.
    preset = "fast" if request.preset == "auto" else request.preset
    if request.model is None:
        spec = MODELS[DEFAULT_MODEL_FAST if preset == "fast" else DEFAULT_MODEL_QUALITY]
        if preset == "quality" and not roomy_enough(spec, request):
            log.info(f"note: --preset quality runs {spec.alias} on a Mac with room for its weights (64 GB or more); "
                     f"here {DEFAULT_MODEL_FAST} runs at Lightricks' own geometry instead")
            spec = MODELS[DEFAULT_MODEL_FAST]
        source = spec.repo
    elif request.preset == "quality" and spec.quality_alias and request.model == spec.alias:
        spec = MODELS[spec.quality_alias]  # a distilled family name: its full, guided model
        source = spec.repo
        log.info(f"note: --preset quality runs {spec.alias} ({spec.repo}), the full model of {request.model}")
    if request.model is not None and request.preset == "auto" and spec.two_stage and not spec.distilled:
        preset = "quality"  # a full model with its maker's two-stage recipe: that is its quality path
    if preset == "fast" and not (spec.two_stage and spec.stage1_timesteps is not None):
        if request.preset == "fast":
            raise UsageError(f"--preset fast needs a distilled checkpoint with a latent upscaler "
                             f"(e.g. --model {DEFAULT_MODEL_FAST}); {spec.alias} is an {spec.pipeline}")
        log.info(f"note: {spec.alias} is an {spec.pipeline} checkpoint, so it runs as a single pass "
                 "(the fast multi-scale path needs a distilled checkpoint with a latent upscaler)")
        preset = "quality"
    return Choice(source, spec, preset, width, height)


def roomy_enough(spec: ModelSpec, request: Request) -> bool:
    """Whether this machine's memory (--memory-budget, else 75% of it, a Mac's GPU working set)
    holds the model's denoising weights in bf16 at most 60% full: the rest is for activations and
    the decode (the 13B's plan: 26.8 GiB of weights, 38.2 GiB peak for 5 s of 1080p). A cheap guess
    before the device is known: the memory plan decides for real."""
    budget = request.memory_budget_gb * 2**30 if request.memory_budget_gb else total_memory_bytes() * MPS_WORKING_SET
    weights = sum(v for k, v in spec.params_b.items() if k != "text_encoder") * 1e9 * 2
    return weights <= 0.6 * budget


def refuse_unusable(request: Request, choice: Choice) -> None:
    """Step 4: honesty. An option the chosen model or path cannot use is refused (REFUSALS)."""
    for rule in REFUSALS:
        if rule.asked(request) and not rule.usable(choice):
            raise UsageError(rule.why.format(r=request, c=choice))


def check_size(request: Request, choice: Choice, log: Log) -> None:
    """The output size against the model's rules: refused where H.264 or this tool cannot, warned
    where the model was trained otherwise."""
    spec, width, height = choice.spec, choice.width, choice.height
    if spec.short_side and (min(width, height) != spec.short_side or max(width, height) > (spec.max_long_side or MAX_SIDE)):
        log.warn(f"{spec.alias} was trained with a short side of {spec.short_side} px and a long side of at most "
                 f"{spec.max_long_side} px; {width}x{height} is outside that and may look worse "
                 "(leave out --resolution/--width/--height for its size)")
    if spec.native_size and (request.width or request.height or request.resolution):
        log.warn(f"{spec.alias} only generates at {spec.native_size[0]}x{spec.native_size[1]}; "
                 f"frames are resized to {width}x{height}")
    if spec.best_size and (max(width, height) > spec.best_size[0] or min(width, height) > spec.best_size[1]):
        log.warn(f"{spec.alias} works best at sizes up to {spec.best_size[0]}x{spec.best_size[1]} (its model card); "
                 f"{width}x{height} may look worse: --resolution 720p, or the default model")
    if spec.native_size is None and (width % 2 or height % 2):
        raise UsageError(f"size {width}x{height} must be even for H.264 yuv420p")
    if max(width, height) > MAX_SIDE:
        raise UsageError(f"size {width}x{height} is larger than {MAX_SIDE} px; lower --resolution")


def plan_length(request: Request, choice: Choice, extension: Extension | None, ext_fps: int | None,
                log: Log) -> tuple[int, int]:
    """Step 5: (frames generated, fps): a long clip's windows, an extension's new part after its
    context frames, or --num-frames / --duration, each rounded to the model's frame rule."""
    spec = choice.spec
    fps = request.fps or ext_fps or spec.fps
    if not choice.family.fps_input and request.fps and request.fps != spec.fps:
        log.warn(f"{choice.family.label} has no frame-rate input: it moves as if at {spec.fps} fps; "
                 f"--fps {request.fps} only changes playback speed")
    if request.segment_prompt:
        frames, notice = plan_windows(request, spec, fps)
    elif extension is None:
        frames, notice = plan_frames(request, fps, spec)
    else:  # the new frames asked, after the context frames: the whole generation is 8k+1
        wanted = request.num_frames or request.frames_at(fps) - 1
        frames, notice = plan_frames(dataclasses.replace(request, num_frames=extension.context + wanted, duration=None),
                                     fps, spec)
        notice = notice and f"{frames - extension.context} new frames (the generation must be 8k+1 with the " \
                            f"{extension.context} context frames)"
    if notice:
        log.info(f"note: {notice}")
    if spec.native_frames and frames != spec.native_frames:  # diffusers' CogVideoXPatchEmbed swaps the table
        log.warn(f"{spec.alias} learned its positions for {spec.native_frames} frames; at {frames} they are "
                 "replaced by computed ones and the video may look worse (leave out --duration/--num-frames "
                 f"for {spec.native_frames} frames, {spec.native_frames / fps:.1f} s)")
    return frames, fps


def plan_soundtrack(request: Request) -> Soundtrack | None:
    """--audio: read once with ffmpeg (any format it reads) for its length; refused if it holds no sound."""
    if request.audio is None:
        return None
    path = Path(request.audio).expanduser()
    if not path.is_file():
        raise UsageError(f"--audio {path}: no such file")
    samples = read_audio(path, SOUNDTRACK_RATE)
    if samples.shape[1] < SOUNDTRACK_RATE // 10:
        raise UsageError(f"--audio {path}: no sound in it that ffmpeg can read (an audio or video file with "
                         "a sound track: WAV, MP3, M4A, AAC, FLAC, MP4 ...)")
    return Soundtrack(path.resolve(), file_sha256(path), samples.shape[1] / SOUNDTRACK_RATE)


def fit_to_soundtrack(request: Request, soundtrack: Soundtrack | None, choice: Choice, log: Log) -> Request:
    """Without --duration or --num-frames, the video is as long as its soundtrack (as far as the
    model makes in one go: then the sound's beginning, said in a note)."""
    if soundtrack is None or request.duration is not None or request.num_frames is not None:
        return request
    fps = request.fps or choice.spec.fps
    longest = (choice.spec.max_frames - 1) / fps
    if soundtrack.seconds > longest:
        log.info(f"note: the soundtrack is {soundtrack.seconds:.1f} s and {choice.spec.alias} makes at most "
                 f"{longest:.1f} s at once: the video is made to its first {longest:.1f} s")
    return dataclasses.replace(request, duration=min(soundtrack.seconds, longest))


def build_job(request: Request, choice: Choice, frames: int, fps: int, extension: Extension | None,
              log: Log) -> Job:
    """Step 6: the stages (cut to stage 1 for a draft), upscaler, output name, seed, LoRAs and
    keyframes, as one Job."""
    import random

    spec, preset = choice.spec, choice.preset
    guidance = spec.guidance if request.guidance_scale is None else request.guidance_scale
    if request.negative_prompt is not None and guidance <= 1.0:
        log.warn("--negative-prompt has no effect at guidance scale <= 1 (no classifier-free guidance)")
    gen_w, gen_h = plan_generation_size(choice.width, choice.height, spec)
    # TFLOP (and later the memory plan) from the checkpoint's own configs when it is at hand
    dims = model_dims(model_folder(choice.source), spec)
    stages = plan_stages(preset, spec, gen_w, gen_h, frames, request.steps or spec.steps, guidance, dims)
    upsampler = plan_upsampler(request, choice)
    sizes = plan_draft(request, choice, stages)
    tag = "-draft" if request.draft else f"-s{request.seed}" if request.from_draft and request.seed is not None else ""
    output = request.output or unique_output_path(request.image, Path.cwd(), tag)  # a final keeps its draft's seed
    check_output(output, request.overwrite, request.draft)
    check_not_an_input(output, request)
    seed = request.seed if request.seed is not None else saved_seed(output)
    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")
    return Job(
        request=request, spec=spec, model_source=choice.source, upsampler_source=upsampler,
        preset=preset, **sizes, num_frames=frames, fps=fps, seed=seed, guidance_scale=guidance,
        negative_prompt=spec.family.negative_prompt if request.negative_prompt is None else request.negative_prompt,
        stages=stages if not request.draft else stages[:1], output=output, sidecar=output.with_suffix(".json"),
        dims=dims, draft=request.draft, loras=resolve_loras(request, spec, dims, choice.two_stage, log),
        conditions=plan_conditions(request, spec, frames, fps, extension.context if extension else 1), extend=extension,
        segments=tuple(f"{request.prompt} {p}".strip() for p in request.segment_prompt),
    )


def saved_seed(output: Path) -> int | None:
    """A stopped run of this output left its state: the seed it drew, so that running the same
    command (with no --seed) again resumes it instead of starting over with a new seed."""
    record = read_resume_record(output)
    return record["seed"] if record and 0 <= record["seed"] <= MAX_SEED else None


def plan_upsampler(request: Request, choice: Choice) -> str | None:
    """The two-stage path's 2x latent upscaler: --upsampler, else the model's own."""
    if not choice.two_stage:
        return None
    upsampler = resolve_upsampler_name(request.upsampler) if request.upsampler else choice.spec.upsampler
    if upsampler is None:
        raise UsageError("the fast preset needs a spatial upscaler: pass --upsampler ID_OR_DIR")
    return upsampler


def plan_draft(request: Request, choice: Choice, stages: tuple[Stage, ...]) -> dict:
    """The sizes of a job: output, generation, and for a draft (the fast path's stage 1 alone, at
    half size) the size its final will have and the size its image is prepared at."""
    width, height = choice.width, choice.height
    gen_w, gen_h = stages[-1].width, stages[-1].height
    if not request.draft:
        larger = choice.two_stage and choice.preset != "fast" and choice.spec.maker_stage1_scale != 0.5
        return dict(width=width, height=height, gen_width=gen_w, gen_height=gen_h, downscale=larger)
    if choice.preset != "fast":
        runs = "at its maker's geometry (--preset quality)" if choice.two_stage else "a single pass"
        raise UsageError(f"--draft is the fast preset's first stage; {choice.spec.alias} runs {runs} "
                         f"(use --preset fast with a distilled model such as {DEFAULT_MODEL_FAST}, or leave out --draft)")
    first = stages[0]
    # The image is prepared at the full size, as the whole fast path prepares it: the pipeline then
    # resizes it for stage 1 the same way, so the draft's latents are a final's.
    return dict(width=min(first.width, even(width / 2)), height=min(first.height, even(height / 2)),
                gen_width=first.width, gen_height=first.height, final_size=(width, height), image_size=(gen_w, gen_h))


def plan_size(image_size: tuple[int, int], request: Request, spec: ModelSpec) -> tuple[int, int]:
    """Exact output (width, height): --width/--height, else --resolution on the image's aspect."""
    iw, ih = image_size
    if request.width and request.height:
        return request.width, request.height
    if request.width:
        return request.width, even(request.width * ih / iw)
    if request.height:
        return even(request.height * iw / ih), request.height
    if request.resolution is None and spec.native_size:
        return spec.native_size  # learned positions: landscape at this exact size only
    if request.resolution is None and spec.short_side:  # the model card's size for this aspect
        step = spec.size_multiple
        long = min(spec.max_long_side or MAX_SIDE, round(spec.short_side * max(iw, ih) / min(iw, ih) / step) * step)
        return (long, spec.short_side) if iw >= ih else (spec.short_side, long)
    short = RESOLUTIONS[request.resolution or spec.default_resolution]
    if iw >= ih:
        return even(short * iw / ih), short
    return short, even(short * ih / iw)


def plan_generation_size(width: int, height: int, spec: ModelSpec) -> tuple[int, int]:
    """Smallest size the model accepts that covers the output (cropped back afterwards)."""
    if spec.native_size:
        return spec.native_size
    return round_up(width, spec.size_multiple), round_up(height, spec.size_multiple)


def plan_frames(request: Request, fps: int, spec: ModelSpec) -> tuple[int, str | None]:
    """(frame count, notice) from --num-frames or --duration at fps, rounded up to step*k+1; a
    model with learned positions (CogVideoX 1.0) defaults to the count they were learned for."""
    asked = request.num_frames is not None or request.duration is not None
    wanted = request.frames_at(fps) if asked or not spec.native_frames else spec.native_frames
    frames = valid_frame_count(wanted, spec.frame_step)
    notice = None
    if frames != wanted:
        notice = (f"{wanted} frames rounded up to {frames}: {spec.alias} needs "
                  f"{spec.frame_step}k+1 frames")
    if frames > spec.max_frames:
        raise UsageError(
            f"{frames} frames ({(frames - 1) / fps:.1f} s at {fps} fps) is more than {spec.alias} can make at once "
            f"({spec.max_frames} at most, {(spec.max_frames - 1) / fps:.1f} s); use a shorter --duration or "
            f"--num-frames {spec.max_frames}" + (", or several --segment-prompt (a long clip, window by window)"
                                                 if "segments" in spec.family.supports else "")
        )
    return frames, notice


def latent_tokens(width: int, height: int, frames: int, dims: ModelDims) -> int:
    """Transformer tokens of a video: latent frames x latent rows x latent columns, per patch."""
    side = dims.spatial * dims.patch
    return ((frames - 1) // dims.temporal + 1) * (height // side) * (width // side)


def transformer_flops(width: int, height: int, frames: int, spec: ModelSpec, cfg: bool,
                      dims: ModelDims | None = None, guided: bool = True) -> tuple[float, float]:
    """Forward-pass TFLOP of the denoiser at a size, as (dense, attention): dense 2 x params x
    tokens, attention 4 x tokens^2 x hidden x layers; sizes from the checkpoint's configs when at
    hand (`dims`), else the table's (LTX: 32x32 px x 8 frames a token; CogVideoX: 8x8 px x 4
    frames, 2x2 patches). An unguided stage (`guided` False) is one pass a step."""
    d = dims or model_dims(None, spec)
    tokens = latent_tokens(width, height, frames, d)
    dense = 2 * d.params.get("transformer", 2e9) * d.video_share * tokens
    attention = 4 * tokens * tokens * d.hidden * d.layers  # QK^T and PV, 2 FLOP per multiply-add
    passes = guidance_passes(spec, cfg) if guided else 1
    return dense * passes / 1e12, attention * passes / 1e12


def guidance_passes(spec: ModelSpec, cfg: bool) -> int:
    """Transformer forwards per step: 2 with classifier-free guidance, plus one each for LTX-2's
    spatio-temporal (STG) and modality-isolation guidance when they are on."""
    extras = spec.guidance_extras
    stg = max(extras.get("stg_scale", 0.0), extras.get("audio_stg_scale", 0.0)) > 0
    modality = max(extras.get("modality_scale", 1.0), extras.get("audio_modality_scale", 1.0)) > 1
    cfg = cfg or extras.get("audio_guidance_scale", 1.0) > 1
    return (2 if cfg else 1) + stg + modality


def plan_stages(preset: str, spec: ModelSpec, gen_w: int, gen_h: int, frames: int,
                steps: int, guidance: float, dims: ModelDims | None = None) -> tuple[Stage, ...]:
    """The denoising passes: two stages (the distilled fast path; a full model's two-stage recipe,
    guided at half size, then unguided with its distilled LoRA) or one."""
    cfg = guidance > 1.0

    def stage(name: str, w: int, h: int, n: int, timesteps, strength: float, guided: bool = True) -> Stage:
        dense, attention = transformer_flops(w, h, frames, spec, cfg, dims, guided)
        return Stage(name, w, h, n, timesteps, strength, n * (dense + attention), attention_tflop=n * attention,
                     guided=guided)

    if spec.two_stage:
        scale = 0.5 if preset == "fast" else spec.maker_stage1_scale
        if scale == 0.5:  # stage 1 at half size, rounded up to the latent grid: the 2x upscale covers the target
            half_w, half_h = round_up(gen_w // 2, 32), round_up(gen_h // 2, 32)
        else:  # the maker's share, floored to the grid as inference.py floors it
            half_w, half_h = max(32, int(gen_w * scale) // 32 * 32), max(32, int(gen_h * scale) // 32 * 32)
        full_w, full_h = half_w * 2, half_h * 2
        s1 = spec.stage1_timesteps if spec.distilled else spec.family.schedule(steps)
        s2 = spec.stage2_timesteps or ()
        # diffusers starts from given latents only at denoise_strength < 1: the schedule handed to
        # it is (1000, *s2) at strength n/(n+1), which skips 1000 and noises to s2[0] (denoise()).
        return (stage("stage1", half_w, half_h, len(s1) if s1 else steps, s1, 1.0),
                stage("stage2", full_w, full_h, len(s2), s2, len(s2) / (len(s2) + 1), guided=spec.distilled))
    if spec.distilled:  # its distilled schedule, at its own step count
        timesteps = spec.stage1_timesteps if steps == len(spec.stage1_timesteps or ()) else None
    else:  # the maker's schedule where the family has one (LTX-2), else the pipeline's scheduler
        timesteps = spec.family.schedule(steps)
    return (stage("denoise", gen_w, gen_h, steps, timesteps, 1.0),)


def reference_job(width: int = 1920, height: int = 1080, frames: int = 121) -> Job:
    """The default job without an image: 5 s of 1080p on the fast path (what --check and the
    README's memory tables plan for)."""
    spec = MODELS[DEFAULT_MODEL_FAST]
    request = Request(image=Path("image.png"), prompt="", output=None)
    stages = plan_stages("fast", spec, round_up(width, 32), round_up(height, 32), frames, spec.steps, 1.0)
    return Job(request, spec, spec.repo, spec.upsampler, "fast", width, height, stages[-1].width, stages[-1].height,
               frames, DEFAULT_FPS, 0, 1.0, "", stages, Path("video.mp4"), Path("video.json"))


def unique_output_path(image: Path, directory: Path, tag: str = "", taken: Sequence[Path] = ()) -> Path:
    """<image stem><tag>.mp4 in the folder, or <stem><tag>-2.mp4, -3 ... if taken (by a file, or
    named in `taken`: the web page's queued jobs)."""
    candidate = directory / f"{image.stem}{tag}.mp4"
    n = 2
    while candidate.exists() or candidate.with_suffix(".json").exists() or candidate in taken:
        candidate = directory / f"{image.stem}{tag}-{n}.mp4"
        n += 1
    return candidate


def open_image(path: Path):
    """PIL's Image.open (reads the header only) with our pixel limit in place of PIL's, so an
    image we accept never raises PIL's decompression-bomb warning."""
    import warnings

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    if is_heif(path):  # an iPhone's photo: PIL reads HEIC through pillow-heif's plugin
        from pillow_heif import register_heif_opener

        register_heif_opener()
    with warnings.catch_warnings():  # over the limit: check_image refuses it in its own words
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def is_heif(path: Path) -> bool:
    """An HEIC/HEIF file by its first box (ftyp with a HEIF brand), whatever its name."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


def exif_orientation(im) -> int:
    """The EXIF orientation tag (1-8) from the header; PNGs keep EXIF before their pixels or not
    at all here, so this never decodes the image."""
    from PIL import Image

    exif = Image.Exif()
    if im.format == "PNG":
        if "exif" in im.info:
            exif.load(im.info["exif"])
    else:
        exif = im.getexif()
    return int(exif.get(0x0112, 1) or 1)


def check_image(path: Path, decode: bool = True) -> tuple[int, int]:
    """(width, height) of a readable image as it is displayed (EXIF rotation applied), or a
    UsageError naming the problem. `decode` False reads the header only (a batch of 1,000 jobs)."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise UsageError(f"--image {path}: no such file")
    if path.is_dir():
        raise UsageError(f"--image {path}: is a folder, not an image")
    if not path.is_file():  # a FIFO or a device would block forever or never end
        raise UsageError(f"--image {path}: not a regular file (a pipe or a device); save the image to a file first")
    try:
        with open_image(path) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(f"{width}x{height}")
            if exif_orientation(im) in (5, 6, 7, 8):  # rotated 90 or 270 degrees for display
                width, height = height, width
            if min(width, height) < MIN_IMAGE_SIDE:
                raise UsageError(f"--image {path}: {width}x{height} is too small to make a video from; use a "
                                 f"picture at least {MIN_IMAGE_SIDE} px on each side")
            if decode:
                im.load()
        return width, height
    except Image.DecompressionBombError:
        raise UsageError(f"--image {path}: larger than the {MAX_IMAGE_PIXELS // 10**6} megapixels this tool reads "
                         "(a guard against decompression bombs); scale it down first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UsageError(f"--image {path}: not a readable image ({e.__class__.__name__}); "
                         "use a PNG, JPEG or WebP file") from None


def check_text(what: str, text: str | None) -> None:
    """Text that will be encoded (prompts) or written into the sidecar (paths) must be UTF-8:
    a lone surrogate or a file name in another encoding would fail after the model loaded."""
    if text is None:
        return
    if "\x00" in text:  # no command line can carry it: the sidecar's reproduce command could not
        raise UsageError(f"{what} contains a NUL character; remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        fix = "rename the file" if what.endswith("path") else "check the encoding of your terminal or jobs file"
        raise UsageError(f"{what} is not valid UTF-8 text; {fix}") from None


def need_condition_pipeline(what: str, spec: ModelSpec, verb: str = "needs", feature: str = "conditions") -> None:
    """Keyframes, extensions and segment windows are conditions of a condition pipeline: LTX's
    takes all three ("conditions"); LTX-2's pinned images ("keyframes")."""
    if feature not in spec.family.supports:
        also = " or LTX-2 (--model ltx2)" if feature == "keyframes" else ""
        raise UsageError(f"{what} {verb} a condition pipeline that {spec.alias} ({spec.pipeline}) does not run here "
                         f"yet; use a distilled LTX-Video such as {DEFAULT_MODEL_FAST}{also}")


def plan_conditions(request: Request, spec: ModelSpec, frames: int, fps: int, first: int = 1) -> tuple[Condition, ...]:
    """--end-image and --keyframe PATH@T (seconds, or #frame) as frames of this video, from frame
    `first` (an extension's first frames are the original's last, held: an image there would never
    show). LTX's condition pipeline places a single image at any frame exactly (it becomes extra
    tokens at that time position), so no rounding to the 8k+1 grid is needed; each is checked like
    --image."""
    wanted: list[tuple[str, Path, int]] = []
    for text in request.keyframe:
        path_text, _, when = text.rpartition("@")
        if not path_text or not when:
            raise UsageError(f"--keyframe {text}: use PATH@SECONDS or PATH@#FRAME, e.g. end.png@4.5")
        try:
            float(when.removeprefix("#"))  # neither a number nor #frame: ValueError
            frame = int(when[1:]) if when.startswith("#") else round(time_seconds(when) * fps)
        except ValueError:
            raise UsageError(f"--keyframe {text}: {when!r} is neither seconds nor #frame") from None
        except (argparse.ArgumentTypeError, OverflowError):
            raise UsageError(f"--keyframe {text}: the time must be between 0 and {MAX_DURATION_S:g} s") from None
        wanted.append((f"--keyframe {text}", Path(path_text).expanduser(), frame))
    if request.end_image is not None:
        wanted.append((f"--end-image {request.end_image}", Path(request.end_image).expanduser(), frames - 1))
    if not wanted:
        return ()
    need_condition_pipeline(f"{wanted[0][0]}: images after the first frame", spec, "need", "keyframes")
    conditions, taken = [], {0: "--image"}
    for what, path, frame in wanted:
        if 0 <= frame < first and first > 1:
            raise UsageError(f"{what}: frame {frame} is one of the original's last {first} frames, which begin the "
                             f"new part unchanged; place it at frame {first} ({first / fps:.2f} s) or later")
        if not 1 <= frame <= frames - 1:
            raise UsageError(f"{what}: frame {frame} is outside this video (frames 1 to {frames - 1}, "
                             f"0 to {(frames - 1) / fps:.2f} s; frame 0 is --image)")
        if frame in taken:
            raise UsageError(f"{what}: frame {frame} already holds {taken[frame]}")
        taken[frame] = what
        check_text(f"{what.split()[0]} path", str(path))
        try:
            check_image(path, decode=False)
        except UsageError as e:
            raise UsageError(str(e).replace("--image", what.split()[0], 1)) from None
        conditions.append(Condition(path.resolve(), frame, file_sha256(path)))
    return tuple(sorted(conditions, key=lambda c: c.frame))


VFR_TOLERANCE = 0.01  # share of frame steps whose length may change (an odd glitch), beyond one


def probe_video(path: Path) -> tuple[int, int, float, int]:
    """(width, height, fps, frames) of a video file with a constant frame rate, or a UsageError:
    a still image, or a phone's variable-frame-rate clip (its frames are not evenly spaced, and
    the continuation could not be timed to them), is refused before any model loads."""
    import imageio_ffmpeg

    if not path.is_file():
        raise UsageError(f"--extend {path}: no such file")
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, StopIteration, KeyError):
        raise UsageError(f"--extend {path}: not a readable video") from None
    width, height = meta["size"]
    fps = float(meta.get("fps") or 0)
    if frames < 2 or not seconds or not fps:
        raise UsageError(f"--extend {path}: a still picture, not a video; to start from a picture, give it as --image")
    if not 1 <= round(fps) <= MAX_FPS:  # the models make 1 to MAX_FPS fps video; another rate would be retimed
        raise UsageError(f"--extend {path}: it plays at {fps:g} fps; what is made from it plays at 1 to {MAX_FPS} "
                         f"fps. Convert it first: ffmpeg -i {path.name} -vf fps=24 -c:a copy at24.mp4")
    varied, deltas = frame_rate_changes(path)
    if varied > max(1, VFR_TOLERANCE * deltas):
        raise UsageError(f"--extend {path}: its frame rate varies ({varied} of {deltas} frame steps differ, as in "
                         f"a phone's clip); make it constant first: "
                         f"ffmpeg -i {path.name} -vf fps={round(fps)} -c:a copy constant.mp4")
    return width, height, fps, frames


def frame_rate_changes(path: Path) -> tuple[int, int]:
    """(frame steps whose duration differs from the one before, frame steps): ffmpeg's vfrdet
    filter over the whole video (one decode); (0, 0) if ffmpeg says nothing."""
    import subprocess

    import imageio_ffmpeg

    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
                          "-map", "0:v:0", "-vf", "vfrdet", "-f", "null", "-"], capture_output=True, text=True)
    found = re.findall(r"VFR:[-\w.]+ \((\d+)/(\d+)\)", run.stderr)
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def plan_extension(request: Request, fps_wanted: int | None, log: Log) -> tuple[Extension, int, int, int]:
    """--extend VIDEO: (extension, width, height, fps). The new part has the original's size and
    fps and begins with its last EXTEND_CONTEXT frames as a video condition at frame 0 (the
    model's pipeline is checked by plan_job once the model is known)."""
    path = Path(request.extend).expanduser()
    if request.width or request.height or request.resolution:
        raise UsageError("--extend keeps the original's size; leave out --width/--height/--resolution")
    if request.draft or request.from_draft:
        raise UsageError("--extend makes a finished clip; it takes neither --draft nor --from-draft")
    width, height, fps, frames = probe_video(path)
    if width % 2 or height % 2 or width > MAX_SIDE or height > MAX_SIDE:
        raise UsageError(f"--extend {path}: {width}x{height} must be even and at most {MAX_SIDE} px")
    fps_int = max(1, round(fps))
    if fps_wanted is not None and fps_wanted != fps_int:
        raise UsageError(f"--fps {fps_wanted}: --extend keeps the original's {fps_int} fps")
    if abs(fps - fps_int) > 1e-3:  # 29.97 (NTSC) and its kind: the models and this writer take whole rates
        log.info(f"note: the original is {fps:.3f} fps; the result plays at {fps_int} fps "
                 f"({abs(fps_int / fps - 1):.1%} {'faster' if fps_int > fps else 'slower'})")
    context = next(n for n in (EXTEND_CONTEXT, 9, 1) if frames >= n)
    return Extension(path.resolve(), file_sha256(path), frames, context, request.extend_only), width, height, fps_int


def plan_windows(request: Request, spec: ModelSpec, fps: int) -> tuple[int, str]:
    """--segment-prompt: (frames per window, notice). A long clip is N windows of G frames; each
    after the first starts from the previous window's last EXTEND_CONTEXT frames (a video
    condition, as --extend), so the clip has N*G - 17*(N-1) frames: G is the smallest 8k+1 that
    reaches the length asked. Memory is one window's, whatever the length."""
    n = len(request.segment_prompt)
    if n < 2:
        raise UsageError("--segment-prompt: give two or more (one prompt is --prompt)")
    need_condition_pipeline("--segment-prompt", spec, feature="segments")
    for what in ("extend", "end_image", "draft", "from_draft", "audio"):
        if getattr(request, what):
            raise UsageError(f"--segment-prompt makes one long clip from --image; it does not take "
                             f"--{what.replace('_', '-')}")
    if request.keyframe:
        raise UsageError("--segment-prompt does not take --keyframe (each window starts from the last)")
    total = request.frames_at(fps)
    window = EXTEND_CONTEXT + spec.frame_step  # each later window adds at least one latent frame
    while n * window - EXTEND_CONTEXT * (n - 1) < total:
        window += spec.frame_step
    if window > spec.max_frames:
        raise UsageError(f"{n} windows of {window} frames: each window may have at most {spec.max_frames}; "
                         "give more --segment-prompt parts or a shorter --duration")
    made = n * window - EXTEND_CONTEXT * (n - 1)
    return window, f"{n} windows of {window} frames, each after the first starting from the last " \
                   f"{EXTEND_CONTEXT} of the one before: {made} frames ({made / fps:.1f} s)"


def request_inputs(request: Request) -> list[Path]:
    """The files a request reads (its image, end image, keyframes, video, sound, draft, LoRAs)."""
    paths = [request.image, request.end_image, request.extend, request.audio, request.from_draft]
    paths += [Path(k.rpartition("@")[0]) for k in request.keyframe]
    paths += [Path(parse_lora(x)[0]) for x in request.lora]
    return [Path(p).expanduser() for p in paths if p]


def check_not_an_input(output: Path, request: Request, jobs_file: Path | None = None) -> None:
    """Nothing this run writes (the video, its sidecar, a draft's latents) may be a file it reads:
    --overwrite would replace the user's own input (a jobs file in.json beside in.png...)."""
    mine = [output, output.with_suffix(".json"), output.with_name(output.stem + DRAFT_LATENTS_SUFFIX)]
    keys = {same_file_key(p): p for p in request_inputs(request) + ([jobs_file] if jobs_file else [])}
    for path in mine:
        if same_file_key(path) in keys:
            raise UsageError(f"--output {output.name}: this run would write {path.name}, which is one of its "
                             f"inputs ({keys[same_file_key(path)]}); choose another --output name")


def same_file_key(path: Path) -> str:
    """One key per file, however it is spelled (relative, absolute, via .., on a case-insensitive
    volume)."""
    key = os.path.realpath(path)
    return key.casefold() if case_insensitive(os.path.dirname(key)) else key


@functools.lru_cache(maxsize=64)
def case_insensitive(folder: str) -> bool:
    """Whether names in this folder ignore case (APFS and HFS+ by default, FAT, SMB shares): a
    hidden probe file's name asked for in the other case. A folder we cannot write: the
    platform's default (a Mac's disks ignore case)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".gv-case-probe-", dir=folder)
    except OSError:
        return sys.platform in ("darwin", "win32")
    os.close(fd)
    try:
        return os.path.exists(os.path.join(folder, os.path.basename(probe).upper()))
    finally:
        os.unlink(probe)


def check_output(path: Path, overwrite: bool, draft: bool = False) -> None:
    if path.suffix.lower() != ".mp4":
        raise UsageError(f"--output {path}: must end in .mp4")
    if path.exists() and path.is_dir():
        raise UsageError(f"--output {path}: is a folder; give a file name ending in .mp4")
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"--output {path}: folder {path.parent} is not writable")
    name_max = 255  # bytes in one file name on APFS, ext4 and most others
    with contextlib.suppress(OSError, ValueError):
        name_max = os.pathconf(path.parent, "PC_NAME_MAX")
    files = [path, path.with_suffix(".json")] + ([path.with_name(path.stem + DRAFT_LATENTS_SUFFIX)] if draft else [])
    longest = max(len(os.fsencode(f.name)) for f in files)  # the sidecar's (a draft's latents') name is longer
    if longest > name_max:
        raise UsageError(f"--output {path.name}: the name is too long ({longest} bytes with the sidecar's "
                         f"or latents' suffix; this folder allows {name_max}); choose a shorter name")
    for existing in files:
        if existing.is_dir():  # --overwrite could not replace it either: said now, not after the run
            raise UsageError(f"{existing} is a folder; this run writes a file of that name: choose another "
                             "--output name")
        if existing.is_symlink() and not existing.exists():  # dangling: publishing would fail at the end
            raise UsageError(f"{existing} is a broken symbolic link; remove it or choose another --output")
        if existing.exists() and not overwrite:
            raise UsageError(f"{existing} already exists; pass --overwrite to replace it "
                             "or choose another --output name")


# LoRA: --lora PATH_OR_HUB_ID[:SCALE][@half|@full]. Safetensors only; checked against the model
# from its header before anything loads; loaded through diffusers' LoRA loaders (peft) later.
LORA_PASSES = ("all", "half", "full")

# (hidden size, blocks) of the bases a LoRA may have been trained on, to name them when refusing.
LORA_BASES = {(2048, 28): "LTX-Video 2B", (4096, 48): "LTX-Video 13B (or LTX-2's video stream)",
              (3072, 42): "CogVideoX 5B", (1920, 30): "CogVideoX 2B"}
LORA_KEY_PREFIXES = ("transformer.", "diffusion_model.")  # diffusers' layout; ComfyUI/original (converted)


def parse_lora(text: str) -> tuple[str, float, str]:
    """'SOURCE[:SCALE][@PASSES]' -> (source, scale, passes)."""
    source, passes = text, "all"
    head, _, tail = text.rpartition("@")
    if head and tail in LORA_PASSES:
        source, passes = head, tail
    scale = 1.0
    head, _, tail = source.rpartition(":")
    if head:
        try:
            scale = float(tail)
        except ValueError:
            pass
        else:
            source = head
    if not source or not math.isfinite(scale):
        raise UsageError(f"--lora {text}: use PATH_OR_HUB_ID[:SCALE][@half|@full], e.g. style.safetensors:0.8")
    return source, scale, passes


def lora_file(source: str, log: Log) -> Path:
    """The LoRA's .safetensors: a local file or folder, or from the Hub (`org/name` holding one
    .safetensors, or `org/name/file.safetensors`). Never a pickle."""
    path = Path(source).expanduser()
    if path.exists():
        found = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
        if path.is_file() and path.suffix != ".safetensors":
            raise UsageError(f"--lora {source}: only .safetensors files are loaded (pickles can run code)")
        if len(found) != 1:
            raise UsageError(f"--lora {source}: the folder holds {len(found)} .safetensors files; name one")
        return found[0]
    parts = source.split("/")
    if len(parts) < 2 or source.startswith((".", "/", "~")):
        raise UsageError(f"--lora {source}: no such file, and not a Hub id (org/name)")
    repo, name = "/".join(parts[:2]), "/".join(parts[2:])
    if name and not name.endswith(".safetensors"):
        raise UsageError(f"--lora {source}: only .safetensors files are loaded (pickles can run code)")
    try:
        folder, _ = _snapshot(repo, [name] if name else ["*.safetensors", "README.md"], log)
    except RunError as e:
        raise UsageError(f"--lora {source}: {e}") from None
    found = [folder / name] if name else sorted(folder.glob("*.safetensors"))
    if len(found) != 1 or not found[0].is_file():
        names = ", ".join(p.name for p in found) or "none"
        raise UsageError(f"--lora {source}: the repo holds {len(found)} .safetensors files ({names}); "
                         f"name one as {repo}/FILE.safetensors")
    return found[0]


def check_lora(file: Path, source: str, spec: ModelSpec, dims: ModelDims, warnings_out: list | None = None) -> int:
    """Refuse a LoRA made for another model, naming both, from the file's header alone; returns
    its parameter count (for the memory plan). Doubts that are no proof go to `warnings_out`."""
    import struct

    warnings_out = [] if warnings_out is None else warnings_out
    try:
        header = read_safetensors_header(file)
    except (OSError, ValueError, struct.error):
        raise UsageError(f"{file}: not a readable .safetensors file") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    keys = [k for k in tensors if k.startswith(LORA_KEY_PREFIXES) and (".lora_A." in k or ".lora_B." in k)]
    if not keys:
        raise UsageError(f"--lora {source}: no LoRA weights in a layout diffusers loads (expected keys like "
                         "transformer.transformer_blocks.0.attn1.to_q.lora_A.weight, or ComfyUI's diffusion_model.…)")
    adapts_audio = any(k.split(".", 1)[1].startswith(("audio", "av_")) or ".audio_" in k for k in keys)
    if adapts_audio and not spec.family.audio:
        raise UsageError(f"--lora {source}: made for LTX-2 (it adapts audio layers); {spec.alias} is "
                         f"{spec.family.label}, which makes no sound")
    blocks = {int(m.group(1)) for k in keys if (m := re.search(r"transformer_blocks\.(\d+)\.", k))}
    widths = {tensors[k]["shape"][1] for k in keys if ".attn1.to_q.lora_A." in k and len(tensors[k]["shape"]) == 2}
    width = widths.pop() if len(widths) == 1 else None
    if (width and width != dims.hidden) or (blocks and max(blocks) >= dims.layers):
        def base(h, n):
            return LORA_BASES.get((h, n), f"a model with hidden size {h} and {n} blocks")
        made_for = base(width or dims.hidden, max(blocks) + 1 if blocks else dims.layers)
        raise UsageError(f"--lora {source}: made for {made_for}; {spec.alias} is {base(dims.hidden, dims.layers)}. "
                         "Use a LoRA trained on this model")
    if spec.family.audio and not adapts_audio:
        warnings_out.append(f"--lora {source} adapts no audio layer: if it was made for LTX-Video 13B (the same width "
                            "and depth as LTX-2's video stream) it loads, but it was not trained on this model")
    return sum(math.prod(t.get("shape", [0])) for t in tensors.values())


def resolve_loras(request: Request, spec: ModelSpec, dims: ModelDims, two_stage: bool, log: Log) -> tuple[Lora, ...]:
    loras = []
    for text in request.lora:
        source, scale, passes = parse_lora(text)
        if "lora_passes" not in spec.family.supports and passes != "all":
            raise UsageError(f"--lora {text}: {spec.family.label} runs one pass; leave out @{passes}")
        if not two_stage and passes == "half":
            raise UsageError(f"--lora {text}: @half is the first of two stages; this run has one full pass")
        file = lora_file(source, log)
        doubts: list[str] = []
        params = check_lora(file, source, spec, dims, doubts)
        for doubt in doubts:
            log.warn(doubt)
        loras.append(Lora(source, file.resolve(), scale, passes, params, file_sha256(file)))
        if re.search(r"ic[-_]?lora", source, re.I):
            log.warn(f"--lora {text}: an IC-LoRA expects a reference video as conditioning (depth, pose, the "
                     "low-res pass), which this tool does not feed; expect a result unlike its card's")
        if request.draft and passes == "full":
            log.warn(f"--lora {text} does nothing for a draft (stage 1 only); its final will use it")
    return tuple(loras)


def draft_shaping(job: Job) -> dict:
    """Everything that decides a fast job's stage-1 latents. A final reuses a draft's latents only
    when these are equal, so its composition is the draft's and nothing else changed."""
    first = job.stages[0]
    return {"model": job.model_source, "image_sha256": file_sha256(job.request.image),
            "prompt": job.request.prompt, "negative_prompt": job.negative_prompt, "seed": job.seed,
            "stage1_size": [first.width, first.height], "num_frames": job.num_frames, "fps": job.fps,
            "guidance_scale": job.guidance_scale, "timesteps": list(first.timesteps or ()),
            "image_cond_noise_scale": job.spec.image_cond_noise_scale,
            "image_blur_sigma": job.spec.image_blur_sigma, "image_crf": job.spec.image_crf,
            "stage1_loras": [[lora.sha256, lora.scale] for lora in job.loras if lora.applies("stage1")],
            "conditions": [[c.sha256, c.frame, c.strength] for c in job.conditions],
            **({"soundtrack_sha256": job.soundtrack.sha256} if job.soundtrack else {}),
            **({"enhance_prompt": True} if job.request.enhance_prompt else {})}


def read_draft(path: Path) -> dict:
    """A draft's sidecar, checked to be one."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"--from-draft {path}: cannot read it ({e.__class__.__name__}); give the .json "
                         "a --draft run wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("draft"), dict):
        raise UsageError(f"--from-draft {path}: not the sidecar of a draft (made with --draft)")
    return data


def fill_from_draft(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """--from-draft: every setting the draft was made with, unless given here (then it must
    match, checked by attach_draft once planned)."""
    path = Path(ns.from_draft).expanduser()
    data = read_draft(path)
    try:
        given = draft_settings(data)
    except (TypeError, KeyError, AttributeError, IndexError, ValueError) as e:  # a hand-edited sidecar
        raise UsageError(f"--from-draft {path}: its settings are damaged ({e.__class__.__name__}: {first_line(e)}); "
                         "make the draft again") from None
    actions = {a.dest: a for a in parser._actions}
    for key, value in given.items():
        if getattr(ns, key, None) in (None, actions[key].default) and value is not None:
            setattr(ns, key, checked_by_parser(actions[key], value, f"--from-draft {path}: {key}"))


def checked_by_parser(action: argparse.Action, value, what: str):
    """A value read from a file of the user's, checked by the option's own parser type (the one
    validator the command line and jobs files go through): UsageError if it would not parse."""
    convert = action.type or str
    if isinstance(action, argparse._StoreTrueAction) or isinstance(value, bool):  # true/false: for flags only
        if isinstance(action, argparse._StoreTrueAction) and isinstance(value, bool):
            return value
        raise UsageError(f"{what}: {json.dumps(value)[:40]} is not a value it takes")
    try:
        if isinstance(value, list):
            return [convert(str(v)) for v in value]
        return convert(str(value))
    except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
        raise UsageError(f"{what}: {e}") from None


def draft_settings(data: dict) -> dict:
    """The settings a draft's sidecar records, by option name."""
    info = data["draft"]
    negative = data.get("negative_prompt")
    return {"image": [data["image"]] if data.get("image") else None, "prompt": data.get("prompt"),
             "negative_prompt": None if negative == DEFAULT_PROMPT_NEGATIVE else negative,
             "seed": data.get("seed"), "model": data.get("model"), "upsampler": info.get("final_upsampler"),
             "width": (info.get("final_size") or [None, None])[0], "height": (info.get("final_size") or [None, None])[1],
             "num_frames": data.get("num_frames"), "fps": data.get("fps"), "preset": "fast",
             "lora": [lora_arg(x["source"], x["scale"], x["passes"]) for x in data.get("loras") or []] or None,
             "keyframe": [f"{c['image']}@#{c['frame_index']}" for c in data.get("conditions") or []] or None,
             "audio": (data.get("soundtrack") or {}).get("file"), "enhance_prompt": data.get("enhanced_prompt") is not None}


def attach_draft(job: Job) -> Job:
    """A final: check the draft's latents belong to exactly this job's stage 1, then plan to
    start from them (stage 1 costs nothing)."""
    sidecar = Path(job.request.from_draft).expanduser()
    info = read_draft(sidecar)["draft"]
    latents = sidecar.parent / str(info.get("latents"))
    if not latents.is_file():
        raise UsageError(f"--from-draft: {latents} is missing (a draft keeps its latents beside its video); "
                         "make the draft again")
    if file_sha256(latents) != info.get("latents_sha256"):
        raise UsageError(f"--from-draft: {latents} changed since the draft was made; make the draft again")
    mine, theirs = draft_shaping(job), info.get("shaping") if isinstance(info.get("shaping"), dict) else {}
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            def short(v):
                return json.dumps(v)[:60]
            raise UsageError(f"--from-draft: {key.replace('_', ' ')} differs from the draft's ({short(mine.get(key))} "
                             f"here, {short(theirs.get(key))} in the draft); a final keeps everything that shaped "
                             "its draft (leave the option out, or make a new draft)")
    first = dataclasses.replace(job.stages[0], tflop=0.0, reused=str(latents))
    return dataclasses.replace(job, stages=(first, *job.stages[1:]), reuse=latents)


def expand_variations(job: Job) -> list[Job]:
    """--variations N: N jobs with consecutive seeds, named <output>-s<seed>.mp4."""
    r = job.request
    if r.variations == 1:
        return [job]
    jobs = []
    for k in range(r.variations):
        seed = (job.seed + k) % (MAX_SEED + 1)
        output = job.output.with_name(f"{job.output.stem}-s{seed}.mp4")
        # Planned as if --overwrite: a variation made before is judged by made_before, once planned
        planned = plan_job(dataclasses.replace(r, seed=seed, output=output, variations=1, overwrite=True),
                           Log(LOG_QUIET))
        jobs.append(dataclasses.replace(planned, request=dataclasses.replace(planned.request, overwrite=r.overwrite)))
    return jobs


# ----------------------------------------------------------------------------------------------
# 6. Memory and time: which savings to switch on, decided before anything loads; the time estimate

# Measured at real sizes (tests/benchmarks/real_size.py: LTX 2B blocks at full width, bf16, CPU):
# a transformer forward holds ~24.4 x elem bytes per token and hidden unit besides attention
# (per-token timestep embeddings of 6 x hidden, fp32 RoPE tables, fp32 q/k during RoPE, the
# feed-forward's 4x expansion), plus a fixed ~0.25 GiB; a chunk of attention ~13 bytes per score
# (fp32 scores and softmax, bf16 probabilities, allocator slack). T5 encoding two 256-token
# prompts adds ~0.17 GiB: ~130 x elem bytes per token and ~6 bytes per attention score of 64 heads.
SCORE_BYTES = 13  # per attention score in a chunk
MPS_MAX_ARRAY = 2**32  # bytes: MPS refuses any single array larger (pytorch#149261)
ACTIVATION_FACTOR = 24  # live activations per token and hidden unit, in units of the element size
FORWARD_FIXED = 0.25 * 2**30  # bytes a forward holds whatever its length
T5_BYTES_PER_TOKEN = 130 * 1024  # x elem: T5-XXL activations per prompt token, besides attention
T5_HEADS = 64  # T5-XXL, the text encoder of every model here
DECODE_FIXED = 0.1 * 2**30  # bytes a VAE decode holds whatever the tile


@dataclass(frozen=True)
class Savings:
    """One setting of the memory options the plan tries (cheapest first)."""

    chunk: int | None = None  # query rows per attention chunk; None: the whole matrix at once
    spatial_tiling: bool = False  # VAE decode in 512 px tiles
    temporal_tiling: bool = False  # and in 17-frame tiles
    offload: str = "none"  # none / model / sequential
    quantize: str = "none"  # the spec's quantizable parts: none / int8 / int4
    conv3d: str = "stock"  # the decoder's conv3d path (already chosen: pick_conv3d)
    tile: int = LTX_VAE_SPATIAL_TILE  # px of a spatial tile


def stage_loads(job: Job, dims: ModelDims) -> list[tuple[int, int]]:
    """(batch, tokens) of each stage's forwards: a batch of 2 where classifier-free guidance runs
    (STG's and modality guidance's forwards are separate, batch 1)."""
    return [(2 if job.cfg and s.guided else 1, latent_tokens(s.width, s.height, job.num_frames, dims))
            for s in job.stages]


def estimate_memory(job: Job, dims: ModelDims, elem: int, savings: Savings,
                    unified: bool) -> tuple[dict[str, float], float, float]:
    """(GiB by part, peak GiB, largest single array GiB) for one setting of the options; `unified`:
    host and device share one memory (a Mac, the CPU)."""
    chunk, spatial_tiling, temporal_tiling = savings.chunk, savings.spatial_tiling, savings.temporal_tiling
    offload, quantize, conv3d = savings.offload, savings.quantize, savings.conv3d
    w, h = max((s.width, s.height) for s in job.stages)
    batch = 2 if job.cfg else 1  # prompts encoded: the negative too with CFG
    weights = {k: v * elem for k, v in dims.params.items()}
    if quantize != "none":
        for k in job.spec.quantizable:
            kept = min(job.spec.unquantized_b.get(k, 0.0) * 1e9, dims.params.get(k, 0))
            weights[k] = (dims.params.get(k, 0) - kept) * QUANT_BYTES[quantize] + kept * elem
    text_len = job.family.max_sequence_length  # prompts are padded to it
    t5 = weights.pop("text_encoder", 0) + batch * text_len * (T5_BYTES_PER_TOKEN * elem + T5_HEADS * text_len * 6)
    if job.request.enhance_prompt:  # the enhancer's KV cache, beside the text encoder it runs on
        t5 += ENHANCE_CONTEXT_TOKENS * job.family.enhancer_kv_per_token * elem
    # the stage that holds most: a full model's guided stage 1 runs CFG's batch of 2 at a quarter of
    # the tokens of its unguided stage 2
    loads = stage_loads(job, dims)
    attention, activations = max(((1 if chunk else b) * dims.heads * (chunk or t) * t * (SCORE_BYTES if chunk else elem),
                                  FORWARD_FIXED + b * t * dims.hidden * ACTIVATION_FACTOR * elem) for b, t in loads)
    tw, th = (min(w, savings.tile), min(h, savings.tile)) if spatial_tiling else (w, h)
    tile_frames = 17 if temporal_tiling or dims.framewise_builtin else job.num_frames
    decode_array = dims.vae_channels * tile_frames * (th // 4) * (tw // 4) * elem
    # live activations + float frames out + ~0.1 GiB of fixed workspace (real_size.py); the conv3d
    # as conv2d path holds a frame-major copy of a layer's input and a second output besides
    decode = (5 if conv3d == "conv2d" else 3) * decode_array + 3 * tile_frames * th * tw * 4 + DECODE_FIXED
    if temporal_tiling:  # two 17-frame float tiles of the full frame in flight (blended)
        decode += 3 * min(job.num_frames, 2 * 17) * h * w * 4
    elif spatial_tiling:  # tiled_decode_uint8: the uint8 video, and float blend edges above and left
        decode += job.num_frames * h * w * 3 + 2 * job.num_frames * (savings.tile // 8) * w * 3 * elem
    parts = {
        "transformer": weights.get("transformer", 0),
        "text_encoder": t5,
        "vae": weights.get("vae", 0),
        "upsampler": weights.get("latent_upsampler", weights.get("upsampler", 0))
        if job.upsampler_source and not job.draft else 0,
        # the user's LoRAs, and a full model's stage-2 distilled LoRA (its recipe's)
        "lora": sum(lora.params for lora in job.loras) * elem + (weights.get("stage2_lora", 0) if job.stage2_lora
                                                                  else 0),
        "attention": attention,
        "activations": activations,
        "decode": decode,
    }
    denoise_weights = parts["transformer"] + parts["vae"] + parts["upsampler"] + parts["lora"]
    # T5 is loaded, used and freed before the rest loads (run_group), so it never adds to them.
    if offload == "none":
        device_peak = max(t5, denoise_weights + attention + activations, denoise_weights + decode)
    elif offload == "model":  # one component on the device at a time
        device_peak = max(t5, parts["transformer"] + attention + activations, parts["vae"] + decode)
    else:  # sequential: one layer at a time, T5 included
        device_peak = max(t5 / 24, max(attention + activations, decode) + denoise_weights / 24)
    host = 0 if offload == "none" else denoise_weights
    peak = device_peak + host if unified else device_peak
    largest = max([decode_array] + [dims.heads * (chunk or t) * t * (SCORE_BYTES if chunk else elem) for _, t in loads])
    return {k: round(gib(v), 2) for k, v in parts.items()}, gib(peak), gib(largest)


def widest_tile(job: Job, dims: ModelDims, elem: int, plan: MemoryPlan, device: str) -> MemoryPlan:
    """The plan with the largest spatial tile its family's VAE takes (VAE_TILE_SIZES) that keeps
    the plan in budget (every array under MPS's limit) and the decoder's largest convolution under
    TILE_OP_SECONDS at the conv rate the conv3d check measured here; without a measured rate, as
    it was (the VAE's own tile)."""
    rate = measured_decode_tflops(plan)
    if not (plan.vae_spatial_tiling and job.family.vae_tiles and rate):
        return plan
    savings = Savings(plan.attention_chunk, True, plan.vae_temporal_tiling, plan.offload, plan.quantize, plan.conv3d)
    frames = 17 if plan.vae_temporal_tiling or dims.framewise_builtin else job.num_frames
    for tile in sorted(job.family.vae_tiles[1:], reverse=True):
        # the decoder's full-resolution convolutions: 3x3x3 over tile/4 px (LTX's 4x4 patches), channels in and out
        conv_tflop = 2 * 27 * dims.vae_channels**2 * frames * (tile // 4) ** 2 / 1e12
        if conv_tflop / rate > TILE_OP_SECONDS:
            continue
        parts, peak, largest = estimate_memory(job, dims, elem, dataclasses.replace(savings, tile=tile),
                                               device in ("mps", "cpu"))
        if peak * 2**30 <= plan.budget_bytes and (device != "mps" or largest * 2**30 <= MPS_MAX_ARRAY / 2):
            return dataclasses.replace(plan, vae_tile=tile, estimate=parts, peak_gib=round(peak, 2))
    return plan


MAC_MEMORY_GB = (16, 18, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512)  # unified memory sizes Apple sells


def mac_that_fits(peak_gib: float) -> int | None:
    """The smallest Mac whose default budget (MPS_WORKING_SET of its memory) holds `peak_gib`."""
    return next((gb for gb in MAC_MEMORY_GB if gb * MPS_WORKING_SET >= peak_gib), None)


def attention_chunk_rows(tokens: int, heads: int, budget_bytes: int) -> int:
    """Query rows per chunk so heads x rows x keys x SCORE_BYTES stays in budget; a fixed
    size (multiple of 256 when large) so MPSGraph sees the same shapes every step."""
    rows = max(1, budget_bytes // (heads * max(tokens, 1) * SCORE_BYTES))
    return rows // 256 * 256 if rows >= 512 else rows


def memory_budget(request: Request, device: str) -> int:
    if request.memory_budget_gb is not None:
        return int(request.memory_budget_gb * 2**30)
    if device == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory * 0.95)
    share = MPS_WORKING_SET if device == "mps" else 0.85
    return int(total_memory_bytes() * share)


def plan_memory(job: Job, dims: ModelDims, device: str, elem: int, budget_bytes: int,
                attention_budget: int, request: Request, conv3d: str = "stock") -> MemoryPlan:
    """Cheapest settings that fit the budget: chunked attention, then tiling, then offload
    (`conv3d`: the decoder's conv3d path, already chosen: pick_conv3d)."""
    unified = device in ("mps", "cpu")
    loads = stage_loads(job, dims)
    tokens = max(t for _, t in loads)
    full_matrix = max(b * dims.heads * t * t * elem for b, t in loads)
    chunk_opts: list[int | None]
    if not job.family.own_attention:  # its pipeline's own attention: the whole matrix
        chunk_opts = [None]
    elif request.attention_slicing == "on":
        chunk_opts = [attention_chunk_rows(tokens, dims.heads, attention_budget)]
    elif request.attention_slicing == "off":
        chunk_opts = [None]
    elif request.attention_slicing.isdigit():
        chunk_opts = [int(request.attention_slicing)]
    else:
        chunk_opts = [None] if full_matrix <= attention_budget else [
            attention_chunk_rows(tokens, dims.heads, attention_budget)]
    above_720p = min(job.width, job.height) > 720
    spatial_opts = {"on": [True], "off": [False]}.get(request.vae_tiling, [above_720p, True])
    temporal_opts = {"on": [True], "off": [False]}.get(request.vae_tiling, [False, True])
    if dims.framewise_builtin:  # CogVideoX's VAE decodes 2 latent frames at a time, always
        temporal_opts = [False]
    if device == "cpu":
        offload_opts = ["none"]
    elif request.offload != "auto":
        offload_opts = [request.offload]
    else:
        offload_opts = ["none", "model", "sequential"]
    if not job.spec.quantizable or request.quantize == "none":
        quant_opts = ["none"]
    elif job.loras or job.spec.stage2_lora:  # measured: a LoRA loaded onto quanto's layers changes nothing
        if request.quantize != "auto":
            what, fix = ("with --lora", "leave out one of them") if job.loras else (
                f"for {job.spec.alias}, whose second stage runs its distilled LoRA,",
                "leave out --quantize, or use --preset fast (its distilled model quantizes)")
            raise UsageError(f"--quantize {request.quantize} {what}: a LoRA needs the unquantized transformer (on "
                             f"quantized layers it would do nothing); {fix}")
        quant_opts = ["none"]
    elif not _dist_version("optimum-quanto"):
        if request.quantize != "auto":
            raise UsageError(f"--quantize {request.quantize} needs optimum-quanto: pip install -r requirements.txt")
        quant_opts = ["none"]
    else:
        quant_opts = ["none", "int8", "int4"] if request.quantize == "auto" else [request.quantize]
    # Unified memory (a Mac): offloading moves weights within the same memory, so smaller
    # weights come first; a discrete GPU keeps full precision in host memory before it quantizes.
    combos = [(o, q) for q in quant_opts for o in offload_opts] if unified else \
        [(o, q) for o in offload_opts for q in quant_opts]
    tried = []
    for offload, quant in combos:
        for spatial in dict.fromkeys(spatial_opts):
            for temporal in dict.fromkeys(temporal_opts):
                if temporal and not spatial and request.vae_tiling == "auto":
                    continue
                for chunk in chunk_opts:
                    parts, peak, largest = estimate_memory(
                        job, dims, elem, Savings(chunk, spatial, temporal, offload, quant, conv3d), unified)
                    limit_ok = device != "mps" or largest * 2**30 <= MPS_MAX_ARRAY / 2
                    tried.append((peak, offload, spatial, temporal, chunk, parts))
                    if peak * 2**30 <= budget_bytes and limit_ok:
                        return MemoryPlan(budget_bytes, chunk, spatial, temporal, offload, parts,
                                          round(peak, 2), tokens, quantize=quant, conv3d=conv3d)
    best = min(tried, key=lambda t: t[0])
    weights_gib = sum(v for k, v in best[5].items() if k in ("transformer", "vae", "upsampler"))
    fits = mac_that_fits(best[0])
    fits = f" (a Mac with {fits} GB or more runs it)" if fits and device in ("mps", "cpu") else ""
    if weights_gib * 2**30 > budget_bytes:
        raise UsageError(f"the model's weights alone need {weights_gib:.1f} GiB in this dtype, more than the "
                         f"{gib(budget_bytes):.1f} GiB budget{fits}; use "
                         + ("--dtype bfloat16, " if elem > 2 else "")
                         + "a smaller model, or --memory-budget if this machine has more memory free")
    raise UsageError(
        f"this job needs about {best[0]:.1f} GiB even with every saving on, more than the "
        f"{gib(budget_bytes):.1f} GiB budget{fits}; make it fit with a smaller size or fewer frames "
        f"(e.g. --resolution 720p or --num-frames {max(job.spec.frame_step + 1, job.num_frames // 2 // job.spec.frame_step * job.spec.frame_step + 1)})"
        f", or raise --memory-budget if this machine has more memory free"
    )


# Time estimate: the FLOP plan over a matmul rate measured on this device, in this dtype, times
# each part's efficiency. The efficiencies are assumptions (no Mac was at hand to measure them)
# except where a kernel's self-check measured a ratio on this machine: a trusted attention kernel
# runs at ATTENTION_EFFICIENCY x its measured speed-up over chunked attention, and the VAE decode
# at the conv3d rate the conv3d check measured. Every sidecar records estimate, basis and actual.
DENSE_EFFICIENCY = 0.5  # share of the matmul rate the transformer's linear layers and norms sustain
ATTENTION_EFFICIENCY = 0.5  # chunked (or stock) attention's share of the matmul rate
DECODE_EFFICIENCY = 0.25  # PyTorch's conv3d unchecked (slow on older torch for MPS: pytorch#192213)
DECODE_FLOP_PER_PIXEL = 1.6e6  # LTX VAE decode per output pixel and frame, tile overlap included
SLOW_SECONDS = 3600  # an estimate above this on the CPU says: use a Mac or a GPU


def decode_tflop(job: Job) -> float:
    return job.num_frames * job.gen_width * job.gen_height * DECODE_FLOP_PER_PIXEL / 1e12


def measured_decode_tflops(plan: MemoryPlan | None) -> float | None:
    """The VAE decode's conv rate the conv3d check measured here for the path the plan takes
    (PyTorch's conv3d, or as conv2d), if it ran and was right; else None."""
    conv = plan.conv3d_verdict if plan and plan.conv3d_verdict and plan.conv3d_verdict.get("correct") else None
    rate = conv and conv.get("tflops" if plan.conv3d == "conv2d" else "stock_tflops")
    return rate if rate and rate > 0 else None


def estimate_basis(tflops: float, plan: MemoryPlan | None = None) -> dict:
    """The rates (TFLOPS) the estimate divides each part's FLOP by, and which are assumed."""
    speedup = (plan.kernel_verdict or {}).get("speedup", 1.0) if plan and plan.attention_kernel else 1.0
    speedup = max(speedup or 0.0, 0.01)  # a kernel asked for by name may be slower: never a rate of 0
    decode = measured_decode_tflops(plan)
    assumed = [f"dense {DENSE_EFFICIENCY:g} of the matmul rate",
               f"attention {ATTENTION_EFFICIENCY:g}" + (f" x {speedup:g} (measured here for {plan.attention_kernel})"
                                                        if speedup != 1.0 else "")]
    if not decode:
        assumed.append(f"decode {DECODE_EFFICIENCY:g}")

    def rate(x: float) -> float:  # 4 significant digits: a slow CPU's rate never rounds to 0
        return float(f"{x:.4g}")

    return {"matmul_tflops": rate(tflops), "dense_tflops": rate(tflops * DENSE_EFFICIENCY),
            "attention_tflops": rate(tflops * min(1.0, ATTENTION_EFFICIENCY * speedup)),
            "decode_tflops": rate(decode or tflops * DECODE_EFFICIENCY),
            "decode_measured": bool(decode), "assumed": assumed}


def estimate_seconds(job: Job, tflops: float, plan: MemoryPlan | None = None, runs: Sequence[dict] = ()) -> float:
    """Wall time: from this machine's earlier runs of the model (`runs`, timing_runs: each part's
    seconds per unit of work, median), else denoising + decoding at a measured matmul rate (TFLOPS)."""
    if runs:
        rates = median_rates(runs)
        return sum(units * rates.get(part, 0.0) for part, units in job_work(job).items()) + rates.get("other", 0.0)
    basis = estimate_basis(tflops, plan)
    attention = sum(s.attention_tflop for s in job.stages)
    denoise = (sum(s.tflop for s in job.stages) - attention) / basis["dense_tflops"] + \
        attention / basis["attention_tflops"]
    return job.windows * (denoise + decode_tflop(job) / basis["decode_tflops"]) + \
        enhance_tflop(job) / (tflops * GENERATE_EFFICIENCY)


def enhance_tflop(job: Job) -> float:
    """--enhance-prompt: the text encoder's forwards over the enhancer's context (2 FLOP per
    weight per token); token-by-token generation, so run at GENERATE_EFFICIENCY."""
    if not job.request.enhance_prompt or job.dims is None:
        return 0.0
    return 2 * job.dims.params.get("text_encoder", 0) * ENHANCE_CONTEXT_TOKENS / 1e12


def describe_duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(10, int(seconds / 10 + 0.5) * 10)} s"
    if seconds < 5400:
        return f"about {int(seconds / 60 + 0.5)} min"
    return f"about {int(seconds / 3600 + 0.5)} hours" if seconds >= 7200 else "about 1.5-2 hours"


def describe_estimate(job: Job, device: str, tflops: float, plan: MemoryPlan | None = None,
                      runs: Sequence[dict] = ()) -> str:
    seconds = estimate_seconds(job, tflops, plan, runs)
    advice = ": use a Mac with Apple Silicon or a CUDA GPU" if device == "cpu" and seconds > SLOW_SECONDS else ""
    where = f"{describe_duration(seconds)} on this {device.upper() if device != 'cpu' else 'CPU'}{advice}"
    if runs:
        return f"{where} (from {len(runs)} earlier run(s) of {job.spec.alias} here, each part at its measured pace)"
    total = sum(s.tflop for s in job.stages) + decode_tflop(job)
    basis = estimate_basis(tflops, plan)
    measured = (f", attention at {basis['attention_tflops'] / tflops:.2g} of it with {plan.attention_kernel}"
                if plan and plan.attention_kernel else "") + \
        (f", conv3d at a measured {basis['decode_tflops']:.3g} TFLOPS" if basis["decode_measured"] else "")
    return f"{where} (an estimate: ~{total:,.0f} TFLOP at a measured {tflops:.2f} TFLOPS matmul rate{measured})"


# The estimate learns: each finished video records, for this machine (chip, device, dtype, torch)
# and model, what each part took per unit of the plan's work; the next estimate takes the median of
# the last TIMING_RUNS runs; without any, the matmul probe (measured once per machine) and the
# planner's FLOP.
TIMING_RUNS = 5


def job_work(job: Job) -> dict[str, float]:
    """The plan's units of work per part: TFLOP denoised and decoded, GiB of weights loaded (at 2
    bytes a parameter) and of text encoder loaded and run, frames written."""
    params = job.dims.params if job.dims else {}
    text = params.get("text_encoder", 0) * 2 / 2**30
    return {"denoise": job.windows * sum(s.tflop for s in job.stages if not s.reused),
            "decode": job.windows * decode_tflop(job), "load": sum(params.values()) * 2 / 2**30 - text,
            "encode_prompt": text, "write": job.out_frames}


def median_rates(runs: Sequence[dict]) -> dict[str, float]:
    import statistics

    return {part: statistics.median(r[part] for r in runs if part in r) for part in {p for r in runs for p in r}}


def timings_path() -> Path:
    return verdict_cache_path().with_name("timings.json")


def timing_key(device: str, dtype_name: str) -> str:
    import torch

    return f"{chip_name()}|{device}|{dtype_name}|torch {torch.__version__}"


def read_timings(device: str, dtype_name: str) -> dict:
    """This machine's entry of the timing history ({} when none or unreadable)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        entry = read_json(timings_path()).get(timing_key(device, dtype_name))
        return entry if isinstance(entry, dict) else {}
    return {}


def update_timings(device: str, dtype_name: str, change: Callable[[dict], None]) -> None:
    """change(this machine's entry), written atomically (two runs at once never leave half a file)."""
    path = timings_path()
    with contextlib.suppress(OSError, ValueError):
        data: Any = {}
        with contextlib.suppress(OSError, ValueError):
            data = read_json(path)
        data = data if isinstance(data, dict) else {}
        entry = data.get(timing_key(device, dtype_name))
        if not isinstance(entry, dict):  # a hand-edited or damaged file: this machine's entry anew
            entry = data[timing_key(device, dtype_name)] = {}
        change(entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path, "json")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)


def pace_key(job: Job, plan: MemoryPlan) -> str:
    """Runs that share a pace: the model, and the paths its plan takes (attention, conv3d, weights)."""
    attention = plan.attention_kernel or ("chunked" if plan.attention_chunk else "stock")
    return f"{job.spec.alias}|{attention}|{plan.conv3d}|{plan.quantize}"


def timing_runs(job: Job, plan: MemoryPlan, device: str, dtype_name: str) -> list[dict]:
    """Earlier runs' paces for this job's pace key; what is not a run of finite rates is ignored."""
    runs = read_timings(device, dtype_name).get("runs")
    runs = runs.get(pace_key(job, plan)) if isinstance(runs, dict) else None
    return [r for r in runs if is_rates(r)] if isinstance(runs, list) else []


def is_rates(run: Any) -> bool:
    """A run as record_run writes it: {part: seconds per unit}, finite and not negative."""
    return isinstance(run, dict) and all(is_amount(v, 1e9) for v in run.values())


def record_run(rt: Runtime, job: Job, plan: MemoryPlan, wall: float) -> None:
    """A finished video's pace per part, for the next estimate of this model on this machine."""
    timings, work = rt.stats.timings, job_work(job)
    rates = {part: timings[part] / units for part, units in work.items() if units > 0 and part in timings}
    rates["other"] = max(0.0, wall - sum(timings[part] for part in work if part in timings))

    def change(entry: dict) -> None:
        runs = entry["runs"] = entry["runs"] if isinstance(entry.get("runs"), dict) else {}
        key = pace_key(job, plan)
        earlier = runs.get(key) if isinstance(runs.get(key), list) else []
        runs[key] = ([r for r in earlier if is_rates(r)] + [rates])[-TIMING_RUNS:]

    update_timings(rt.device, rt.dtype_name, change)


def probe_rate(device: str, dtype) -> float:
    """The matmul rate (TFLOPS) of this machine, measured once and kept with the timing history
    (measured again each run it swung by half: 0.09 to 0.13 on one CPU within minutes)."""
    name = dtype_label(dtype)
    rate = read_timings(device, name).get("matmul_tflops")
    if type(rate) in (int, float) and 0 < rate < MAX_TFLOPS:
        return float(rate)
    rate = matmul_tflops(device, dtype)
    update_timings(device, name, lambda entry: entry.update(matmul_tflops=rate))
    return rate


def device_sync(device: str) -> Callable[[], None]:
    """Waits for the device's queued work (GPU calls return before it is done): for timing."""
    import torch

    return {"mps": getattr(torch.mps, "synchronize", None), "cuda": torch.cuda.synchronize}.get(device) or \
        (lambda: None)


def matmul_tflops(device: str, dtype, seconds: float = 0.3) -> float:
    """Sustained matmul rate of this device in this dtype, measured for about `seconds`."""
    import torch

    n = 1024 if device == "cpu" else 4096
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = device_sync(device)
    (a @ b).sum().item()  # warm-up (kernel selection, lazy init)
    count, t0 = 0, time.perf_counter()
    while count < 2 or time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
        sync()
    return 2 * n**3 * count / (time.perf_counter() - t0) / 1e12


def resume_bytes(job: Job) -> int:
    """The resume state's size at its largest: a stage's latents beside the stage before's output
    (float32), and a long clip's finished windows."""
    d = job.dims or model_dims(None, job.spec)
    sizes = [latent_tokens(s.width, s.height, job.num_frames, d) * d.patch**2 * d.latent_channels * 4
             for s in job.stages]
    return max(a + b for a, b in zip(sizes, [0, *sizes])) + sizes[-1] * (job.windows - 1)


def describe_plan(job: Job, plan: MemoryPlan, device: str, dtype_name: str) -> list[str]:
    made = "" if job.out_frames == job.num_frames else f" ({job.num_frames} generated a window)" if job.segments \
        else f" ({job.num_frames} generated, {job.extend.context} of them the original's last)" if job.extend else ""
    lines = [f"plan: {job.spec.alias} ({job.preset} preset) on {device}/{dtype_name}: "
             f"{job.width}x{job.height}, {job.out_frames} frames at {job.fps} fps "
             f"({job.out_frames / job.fps:.2f} s){made}, seed {job.seed}"]
    for s in job.stages:
        sched = f"timesteps {list(s.timesteps)}" if s.timesteps else f"{s.steps} steps"
        if s.timesteps and len(s.timesteps) > 8:  # a full model's schedule: its ends
            sched = f"{len(s.timesteps)} timesteps, {s.timesteps[0]:.0f} to {s.timesteps[-1]:.0f}"
        if s.reused:
            sched = f"reused from the draft ({Path(s.reused).name})"
        guidance = "" if s.guided or job.spec.distilled else (
            ", no guidance" + (", its distilled LoRA" if job.spec.stage2_lora else ""))
        lines.append(f"  {s.name}: {s.width}x{s.height}, {sched}{guidance}, ~{s.tflop:,.0f} TFLOP")
    if job.segments:
        lines.append(f"  segments: {job.windows} windows of {job.num_frames} frames (the stages above, each): "
                     + " | ".join(p[:30] for p in job.segments))
    if job.conditions:
        lines.append("  keyframes: " + ", ".join(f"{c.path.name} at frame {c.frame} ({c.frame / job.fps:.2f} s)"
                                                 for c in job.conditions))
    if job.loras:
        lines.append("  LoRA: " + ", ".join(f"{lora.arg} ({lora.params / 1e6:.1f}M params)" for lora in job.loras))
    if job.request.enhance_prompt:
        lines.append(f"  prompt: first rewritten by {job.family.text_encoder_label} from the image (--enhance-prompt: "
                     f"up to {ENHANCE_NEW_TOKENS} new tokens, ~{enhance_tflop(job):,.1f} TFLOP)")
    if job.draft:
        lines.append(f"  draft: stage 1 only, written at {job.width}x{job.height} with its latents; "
                     f"its final is {job.final_size[0]}x{job.final_size[1]}")
    if not Path(job.model_source).exists() and model_folder(job.model_source) is None:
        stored = job.spec.download_gb * 1e9 if job.spec.download_gb else sum(
            v for k, v in (job.dims.params if job.dims else {}).items()
            if k != "stage2_lora" or job.stage2_lora) * HUB_BYTES_PER_PARAM
        lines.append(f"  download: ~{describe_bytes(stored)} the first time (then kept in {hub_cache_dir()})")
    lines.append(f"  if stopped: the same command resumes (its state, ~{describe_bytes(resume_bytes(job))}, is kept "
                 f"beside the video every {RESUME_SAVE_SECONDS:.0f} s)")
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in plan.estimate.items() if v >= 0.05)
    lines.append(f"  memory: at most about {plan.peak_gib:.1f} GiB at once, of the {gib(plan.budget_bytes):.1f} GiB "
                 f"this run may use (GiB: {parts}; {plan.tokens:,} tokens a pass)")
    attention = f"Metal {plan.attention_kernel} ({plan.kernel_verdict['reason']})" if plan.attention_kernel else \
        f"chunked {plan.attention_chunk} rows" if plan.attention_chunk else "stock"
    conv3d = CONV3D_NAME if plan.conv3d == "conv2d" else "PyTorch's conv3d"
    if plan.conv3d_verdict:
        conv3d += f" ({'' if plan.conv3d == 'conv2d' else 'as conv2d: '}{plan.conv3d_verdict['reason']})"
    lines.append(f"  savings: attention {attention}, "
                 f"VAE tiling {'spatial' if plan.vae_spatial_tiling else 'no spatial'}"
                 f"/{'temporal' if plan.vae_temporal_tiling else 'no temporal'}"
                 + (f" in {plan.vae_tile} px tiles" if plan.vae_tile else "") + f", {conv3d}, offload {plan.offload}"
                 + (f", {plan.quantize} weights for the {' and '.join(job.spec.quantizable).replace('_', ' ')}"
                    if plan.quantize != "none" else ""))
    return lines


# ----------------------------------------------------------------------------------------------
# 7. Weights and loading: device, dtype, downloads, the two-phase load, LoRAs, placement
# Weights are read from safetensors only and no remote code is ever run.


def macos_version() -> tuple[int, ...] | None:
    import platform

    if sys.platform != "darwin":
        return None
    with contextlib.suppress(ValueError):
        return tuple(int(x) for x in platform.mac_ver()[0].split(".") if x)
    return None


def pick_device(name: str) -> str:
    import torch

    mps_ok = torch.backends.mps.is_available()
    if name == "auto":
        return "mps" if mps_ok else "cuda" if torch.cuda.is_available() else "cpu"
    if name == "mps" and not mps_ok:
        built = torch.backends.mps.is_built()
        raise UsageError("--device mps: MPS is not available here ("
                         + ("needs an Apple Silicon Mac with macOS 12.3 or newer" if built else
                            "this torch was built without MPS; install the macOS arm64 torch wheel")
                         + "); use --device auto")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available; use --device auto")
    return name


def pick_dtype(name: str, device: str):
    """The compute dtype. auto: bf16 on MPS (macOS 14+) and CUDA, fp32 on CPU."""
    import torch

    if name == "auto":
        if device == "mps":
            version = macos_version()
            return torch.bfloat16 if version is None or version >= (14,) else torch.float32
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
    if dtype == torch.bfloat16 and device == "mps" and (macos_version() or (99,)) < (14,):
        raise UsageError("--dtype bfloat16 needs macOS 14 or newer on MPS; use --dtype float32")
    return dtype


def text_encoder_dtype(dtype):
    """T5 overflows in float16 (transformers#4586): it runs in bf16 (or fp32) instead."""
    import torch

    if dtype != torch.float16:
        return dtype
    return torch.bfloat16 if (macos_version() or (99,)) >= (14,) else torch.float32


@dataclass(frozen=True)
class Weights:
    """Where a job's weights are on disk, once fetched; what load_pipeline reads."""

    pipeline_class: str
    folder: Path  # diffusers folder (model_index.json); its transformer/ may be replaced below
    revision: str | None  # Hub commit, None for a local folder
    transformer_file: Path | None = None  # original-format single file
    transformer_config: Path | None = None  # folder with transformer/config.json for it
    upsampler_folder: Path | None = None
    stage2_lora: Path | None = None  # a full model's distilled LoRA for its second stage (its recipe's)
    processor: Path | None = None  # --enhance-prompt: the folder its enhancer's processor loads from
    transformer_folder: str | None = None  # the folder of `folder` its transformer loads from, if not the index's

    @property
    def family(self) -> type[Family]:
        return FAMILIES[self.pipeline_class]


def snapshot_components(repo: str, only: Sequence[str] | None = None, skip: Sequence[str] = (),
                        log: Log | None = None) -> tuple[Path, str]:
    """The parts of a diffusers repo that its model_index.json names (or the folders `only` names:
    LTX-2 keeps its upscaler in latent_upsampler/, which its index does not list), nothing else:
    model_index.json first, then each folder's configs, tokenizer files and weight indexes, then
    exactly the safetensors those name."""
    if only is None:
        folder, _ = _snapshot(repo, ["model_index.json"], log)
        index = read_model_index(folder, check_folders=False)  # the folders come next
        names = [k for k, v in index.items() if isinstance(v, list) and len(v) == 2 and v[0] is not None]
    else:
        names = list(only)
    names = [n for n in names if n not in skip]
    small = ["model_index.json"] + [f"{n}/{f}" for n in names
                                    for f in HUB_CONFIG_FILES + HUB_TOKENIZER_FILES + HUB_WEIGHT_INDEXES]
    folder, revision = _snapshot(repo, small, log)
    weights = []
    for n in names:
        shards = set()
        for idx in HUB_WEIGHT_INDEXES:
            if (folder / n / idx).is_file():
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    shards |= set(read_json(folder / n / idx)["weight_map"].values())
        weights += [f"{n}/{s}" for s in sorted(shards) if s.endswith(".safetensors") and "/" not in s]
        if not shards:
            weights += [f"{n}/{w}" for w in HUB_WEIGHT_FILES]
    return _snapshot(repo, small + weights, log)


def check_model_available(job: Job) -> None:
    """Cheap, before loading: offline runs need every Hub repo in the cache already."""
    if not hub_offline():
        return
    needed = []
    spec = job.spec
    if not Path(job.model_source).exists():
        needed.append((job.model_source, "model_index.json"))
        if spec.single_file and job.model_source == spec.repo:
            name, repo = spec.single_file.split("@")
            needed += [(repo, name), (spec.config_repo, "transformer/config.json"), (spec.config_repo, "vae/config.json")]
    if job.upsampler_source and not Path(job.upsampler_source).exists():
        needed.append((job.upsampler_source, "latent_upsampler/config.json"))
    if job.stage2_lora:
        needed.append(tuple(reversed(job.stage2_lora.split("@"))))
    if job.request.enhance_prompt:
        name, repo = job.family.enhancer_processor.split("@")
        needed.append((repo, f"{name}/processor_config.json"))
    for repo, filename in needed:
        if not hub_cached(repo, filename):
            option = "--upsampler" if repo == job.upsampler_source else "--model"
            # exit 1 like an unreachable Hub (RunError in _snapshot): the same missing model either way
            raise RunError(f"{repo} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 is set; "
                             f"run once without HF_HUB_OFFLINE to download it, or use {option} with a "
                             f"local folder")


def safetensors_in(where: Path) -> list[Path]:
    """The .safetensors files a weights location holds: the file itself, or every one in the folder."""
    return [where] if where.is_file() else sorted(where.rglob("*.safetensors"))


def check_weight_files(where: Path) -> None:
    """Every .safetensors file here (a folder, or one file) readable and as long as its header says
    (its last tensor's end): a download cut short outside this tool, a file of another user's, a
    disk error, each named with its fix instead of failing deep inside the load."""
    import struct

    for path in safetensors_in(where):
        real = path.resolve()
        try:
            header, header_len, size = safetensors_layout(path)
        except PermissionError:
            raise RunError(f"cannot read {path} (permission denied): make it readable (chmod a+r {real}) "
                           "or set HF_HOME to a cache of your own") from None
        except (OSError, ValueError, struct.error) as e:
            raise RunError(f"{path} is damaged ({first_line(e, 'unreadable')}): delete {real} and run again "
                           "to fetch it again") from None
        length = max((t["data_offsets"][1] for k, t in header.items()
                      if k != "__metadata__" and isinstance(t, dict) and len(t.get("data_offsets") or ()) == 2),
                     default=0)
        if size < 8 + header_len + length:  # cut short: fewer bytes than its own tensors need
            raise RunError(f"{path} is cut short ({size:,} of {8 + header_len + length:,} bytes: a download "
                           f"stopped outside this tool?); delete {real} and run again to fetch it again")


def fetch_weights(job: Job, log: Log) -> Weights:
    """Download (or find in the cache) what the job needs; never pickles, never remote code."""
    spec, source = job.spec, job.model_source
    single = spec.single_file is not None and source == spec.repo
    if Path(source).exists():
        folder, revision = Path(source), None
    else:
        # Only what model_index.json names. Single file: the big transformer and the VAE come from it
        # (the repo's own transformer may even be another size; its VAE would be 2.5 GB more to fetch,
        # where Lightricks loads the file's).
        unused = spec.family.unused_components  # prompt enhancers and such: never run here
        own = ("transformer", "vae") if single else ("transformer",) if spec.transformer_folder else ()
        folder, revision = snapshot_components(source, skip=unused + own, log=log)
        if spec.transformer_folder:  # the full model beside the index's distilled one (LTX-2.5)
            snapshot_components(source, only=(spec.transformer_folder,), log=log)
    pipeline_class = model_family_from_folder(folder)
    if FAMILIES[pipeline_class] is not spec.family:
        # An unknown Hub repo was planned as stock LTX before its model_index.json was cached.
        raise RunError(f"{source} turned out to be a {pipeline_class} checkpoint; it is cached now, "
                       "so run the same command again to plan for it")
    transformer_file = transformer_config = None
    if single:
        name, repo = spec.single_file.split("@")
        file_folder, file_rev = _snapshot(repo, [name], log)
        transformer_file = file_folder / name
        transformer_config, _ = _snapshot(spec.config_repo, ["transformer/config.json", "vae/config.json"], log)
        revision = f"{revision} + {repo}@{file_rev}"
    else:
        require_safetensors(folder)
    upsampler = None
    if job.upsampler_source and not job.draft:  # a draft stops before the upscale
        if Path(job.upsampler_source).exists():
            upsampler = Path(job.upsampler_source)
        else:
            upsampler, _ = snapshot_components(job.upsampler_source, only=("latent_upsampler",), log=log)
        require_safetensors(upsampler, components=("latent_upsampler",))
    lora = None
    if job.stage2_lora:  # the recipe's stage-2 LoRA, one file of the maker's repo
        name, repo = job.stage2_lora.split("@")
        lora = _snapshot(repo, [name], log)[0] / name
    own_folder = spec.transformer_folder if spec.transformer_folder and (folder / spec.transformer_folder).is_dir() \
        else None
    for where in (folder, upsampler, transformer_file, lora):
        if where is not None:
            check_weight_files(Path(where))
    return Weights(pipeline_class, folder, revision, transformer_file, transformer_config, upsampler, lora,
                   fetch_processor(job, log), own_folder)


def fetch_processor(job: Job, log: Log) -> Path | None:
    """--enhance-prompt: the folder of configs, tokenizer and chat template the family's enhancer
    reads with (no weights: the enhancer is the text encoder already fetched)."""
    if not job.request.enhance_prompt:
        return None
    name, repo = job.family.enhancer_processor.split("@")
    return _snapshot(repo, [f"{name}/{pattern}" for pattern in PROCESSOR_FILES], log)[0] / name


def require_safetensors(folder: Path, components: Sequence[str] | None = None) -> None:
    """Refuse weights in pickle formats: only .safetensors are ever loaded."""
    if components is None:
        index = read_model_index(folder, check_folders=False)  # a fast path's transformer is a single file
        components = [k for k, v in index.items() if isinstance(v, list) and v[0] in ("diffusers", "transformers")]
    for name in components:
        sub = folder / name
        if not sub.is_dir() or name in ("tokenizer", "scheduler"):
            continue
        pickles = [p for p in sub.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
        if pickles and not any(sub.glob("*.safetensors")):
            raise UsageError(f"{sub} holds weights only as {pickles[0].name}: this tool loads "
                             "safetensors only (pickles can run code); convert the checkpoint with "
                             "save_pretrained(..., safe_serialization=True)")


@contextlib.contextmanager
def quiet_libraries(log: Log, bars: bool = False):
    """Library warnings (and loading bars) only with -v; `bars` keeps the denoising bars."""
    if log.level >= LOG_VERBOSE:
        yield
        return
    import warnings

    import transformers
    from diffusers.utils import logging as dlog

    old = dlog.get_verbosity(), transformers.logging.get_verbosity()
    dlog.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    if not bars:
        transformers.logging.disable_progress_bar()
        dlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        dlog.set_verbosity(old[0])
        transformers.logging.set_verbosity(old[1])
        transformers.logging.enable_progress_bar()
        dlog.enable_progress_bar()


def return_freed_memory() -> None:
    """Quantizing as weights load frees each bf16 tensor once it is quantized. glibc keeps freed
    blocks of up to 32 MB for reuse (its mmap threshold rises as blocks are freed), which doubled
    the load's peak (tests/benchmarks/quantize_load.py); a fixed threshold hands them back at once,
    as macOS's allocator does for large blocks anyway."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD, bytes


def contiguous_quantized_inputs(model) -> None:
    """Quantized linear layers get contiguous inputs: torch's int8 matmul (CPU and MPS) refuses a
    strided view, which LTX-2's packed latents are."""
    def hook(module, args):
        return (args[0].contiguous(), *args[1:])

    for module in model.modules():
        if type(module).__name__ == "QLinear":
            module.register_forward_pre_hook(hook)


def load_text_encoder(weights: Weights, dtype, log: Log, quantize: str = "none"):
    """Only the tokenizer and the text encoder (T5, Gemma: the class model_index.json names), in a
    pipeline object of the model's class (so its own encode_prompt runs): phase one of loading, so
    the text encoder and the denoiser never share memory."""
    import transformers
    from transformers import AutoTokenizer

    family = weights.family
    index = read_model_index(weights.folder, check_folders=False)
    name = (index.get("text_encoder") or [None, family.text_encoders[0]])[1]
    if name not in family.text_encoders:
        raise RunError(f"{weights.folder}: text encoder {name} is not one this tool runs for {family.label} "
                       f"({', '.join(family.text_encoders)})")
    try:
        with quiet_libraries(log):
            tokenizer = AutoTokenizer.from_pretrained(str(weights.folder / "tokenizer"), local_files_only=True)
            family.prepare_tokenizer(tokenizer)
            extra = {} if quantize == "none" else {"quantization_config": transformers.QuantoConfig(weights=quantize)}
            if extra:
                return_freed_memory()
            text_encoder = getattr(transformers, name).from_pretrained(
                str(weights.folder / "text_encoder"), dtype=text_encoder_dtype(dtype), use_safetensors=True,
                local_files_only=True, **extra)
    except (OSError, ValueError) as e:
        raise RunError(f"could not load the text encoder from {weights.folder}: {first_line(e)}") from None
    contiguous_quantized_inputs(text_encoder)
    others = [k for k, v in index.items() if isinstance(v, list) and k not in ("tokenizer", "text_encoder")]
    return family.pipeline_class()(tokenizer=tokenizer, text_encoder=text_encoder.eval(), **dict.fromkeys(others))


def load_pipeline(weights: Weights, dtype, log: Log, text_encoder: bool = True, quantize: str = "none"):
    """The diffusers pipeline (and latent upsampler, if any) for these weights, on the CPU;
    without T5 when `text_encoder` is False (phase two, after the prompts are encoded)."""
    import diffusers

    family = weights.family
    torch_dtype = {"default": dtype, "text_encoder": text_encoder_dtype(dtype)}
    kwargs: dict[str, Any] = dict.fromkeys(family.unused_components)
    if not text_encoder:
        kwargs["text_encoder"] = None
    if quantize != "none":  # the transformer's linear layers, quantized as they load (optimum-quanto)
        return_freed_memory()
        with quiet_libraries(log):  # diffusers marks its quanto backend for removal in 1.0 (README)
            kwargs["quantization_config"] = diffusers.PipelineQuantizationConfig(
                quant_mapping={"transformer": diffusers.QuantoConfig(weights_dtype=quantize)})
    if weights.transformer_file is not None:  # the transformer and the VAE from one original-format file
        with quiet_libraries(log):  # diffusers warns on every such load ("modules ... kept in float32: []")
            kwargs["transformer"] = family.load_single_file(weights, dtype)
            kwargs["vae"] = family.load_single_file_vae(weights, dtype)
    if weights.transformer_folder:  # the index names another transformer (LTX-2.5's distilled one)
        kwargs["transformer"] = load_transformer_folder(weights, dtype, log, kwargs.pop("quantization_config", None))
    try:
        with quiet_libraries(log):
            pipe = family.pipeline_class().from_pretrained(str(weights.folder), dtype=torch_dtype, use_safetensors=True,
                                       local_files_only=True, **kwargs)
    except (OSError, ValueError, EnvironmentError) as e:
        raise RunError(f"could not load the model from {weights.folder}: {e}") from None
    if getattr(pipe, "transformer", None) is not None:
        contiguous_quantized_inputs(pipe.transformer)
    upsampler = None
    if weights.upsampler_folder is not None:
        import importlib

        module, name = family.upsampler_class
        upsampler = getattr(importlib.import_module(module), name).from_pretrained(
            str(weights.upsampler_folder), subfolder="latent_upsampler", dtype=dtype,
            use_safetensors=True, local_files_only=True)
    return pipe, upsampler


def load_transformer_folder(weights: Weights, dtype, log: Log, quantization=None):
    """The transformer from weights.transformer_folder, of the class the index names for the
    transformer, quantized as it loads if the plan says so."""
    import diffusers

    index = read_model_index(weights.folder, check_folders=False)
    cls = getattr(diffusers, index["transformer"][1])
    extra = {"quantization_config": quantization.quant_mapping["transformer"]} if quantization else {}
    try:
        with quiet_libraries(log):
            return cls.from_pretrained(str(weights.folder), subfolder=weights.transformer_folder, dtype=dtype,
                                       use_safetensors=True, local_files_only=True, **extra)
    except (OSError, ValueError, EnvironmentError) as e:
        raise RunError(f"could not load {weights.transformer_folder}/ from {weights.folder}: {first_line(e)}") from None


def apply_loras(pipe, loras: Sequence[Lora], log: Log) -> bool:
    """Load the job's LoRAs into the denoiser. Returns True when they were fused into the weights:
    done when every LoRA applies to every pass, because then each forward costs exactly the base
    model's FLOPs and kernel launches (unfused, every adapted linear adds two small matmuls, each
    a separate Metal dispatch on a Mac). When a LoRA is for some passes only they stay unfused and
    are switched per pass (set_lora_pass): unfusing bf16 weights would not give the same back."""
    if not loras:
        return False
    from safetensors.torch import load_file

    if not hasattr(pipe, "load_lora_weights"):
        raise RunError(f"{type(pipe).__name__} has no LoRA loader in diffusers")
    try:
        import peft  # noqa: F401  (diffusers' LoRA loaders need it)
    except ImportError:
        raise RunError("LoRAs need the peft package: pip install -r requirements.txt") from None
    names = [f"lora{i}" for i in range(len(loras))]
    with quiet_libraries(log):
        for name, lora in zip(names, loras):
            try:
                pipe.load_lora_weights(load_file(str(lora.file)), adapter_name=name)
            except (ValueError, RuntimeError, KeyError) as e:
                raise RunError(f"--lora {lora.source} did not load into {type(pipe).__name__}: "
                               f"{first_line(e)[:200]}") from None
        pipe.set_adapters(names, [lora.scale for lora in loras])
        fused = all(lora.passes == "all" for lora in loras)
        if fused:
            pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
            pipe.unload_lora_weights()  # the fused weights stay; the adapters go
    log.info(f"  LoRA: {', '.join(lora.arg for lora in loras)} ({'fused' if fused else 'switched per pass'})")
    return fused


def set_lora_pass(pipe, loras: Sequence[Lora], stage: str) -> None:
    """Unfused LoRAs: on for the passes they were made for, off (scale 0) for the others."""
    if loras and any(lora.passes != "all" for lora in loras):
        pipe.set_adapters([f"lora{i}" for i in range(len(loras))],
                          [lora.scale if lora.applies(stage) else 0.0 for lora in loras])


def recipe_lora(weights: Weights, spec: ModelSpec) -> tuple[Lora, ...]:
    """A full model's distilled LoRA, on for its second stage only at strength 1.0 (its recipe:
    LTX2_STAGE2_LORA), as a Lora like the user's; () when the job runs without it."""
    if weights.stage2_lora is None:
        return ()
    name, repo = spec.stage2_lora.split("@")
    file = weights.stage2_lora
    return (Lora(f"{repo}/{name}", file, 1.0, "full", safetensors_params(file), file_sha256(file)),)


def place_pipeline(pipe, upsampler, offload: str, device: str, family: type[Family]) -> None:
    """Once per loaded model: onto the device, or offloaded onto it."""
    family.prepare_loaded(pipe, device)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    if upsampler is not None:
        # LTXLatentUpsamplePipeline has no offload sequence: the upsampler moves by hand.
        upsampler.to(device if offload == "none" else "cpu")


def release_text_encoder(pipe, device: str) -> None:
    """The T5 encoder (~9 GiB in bf16) is useless once the prompts are encoded: free it before
    the denoiser moves in, whatever the offload mode (it is never part of an offload chain)."""
    import gc

    if getattr(pipe, "text_encoder", None) is None:
        return
    with contextlib.suppress(Exception):  # accelerate hooks from sequential offload, if any
        from accelerate.hooks import remove_hook_from_module

        remove_hook_from_module(pipe.text_encoder, recurse=True)
    pipe.text_encoder.to("meta")  # drops the storage; the module object may still be referenced
    pipe.register_modules(text_encoder=None)
    gc.collect()
    empty_device_cache(device)


def empty_device_cache(device: str) -> None:
    import torch

    if device == "mps":
        torch.mps.empty_cache()
    elif device == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# 8. Kernels, trusted only once proven here: Metal attention, chunked attention, conv3d as conv2d
# Each is used by auto only after it matched the reference (our chunked attention; PyTorch's
# conv3d) on random inputs of the model's shapes, in the job's dtype, on this machine, and was
# faster; the verdict is cached per (package or tool version, torch, macOS, chip, dtype, shapes).


def chunked_attention(query, key, value, mask, rows: int):
    """softmax(q k^T / sqrt(d) + mask) v for q, k, v of shape [B, H, L, D], `rows` queries at a
    time, softmax in float32: never more than H x rows x S scores live (MPS materialises the
    whole [B, H, L, S] matrix otherwise, and crashes past 4 GiB per array)."""
    import torch

    out = torch.empty_like(query)
    scale = query.shape[-1] ** -0.5
    for b in range(query.shape[0]):
        k_t = key[b].float().transpose(-1, -2)
        v_b = value[b]
        m_b = None if mask is None else mask[b if mask.shape[0] > 1 else 0]
        for start in range(0, query.shape[2], rows):
            scores = torch.matmul(query[b, :, start:start + rows].float(), k_t).mul_(scale)
            if m_b is not None:
                m = m_b[..., start:start + rows, :] if m_b.shape[-2] > 1 else m_b
                if m.dtype == torch.bool:
                    scores.masked_fill_(~m, float("-inf"))
                else:
                    scores.add_(m.float())
            probs = torch.softmax(scores, dim=-1)
            del scores
            out[b, :, start:start + rows] = torch.matmul(probs.to(v_b.dtype), v_b)
    return out


@dataclass(frozen=True)
class Kernel:
    package: str  # on PyPI
    module: str  # its import name
    call: Callable  # (module, q, k, v, mask) -> out; [B, H, L, D] in and out, PyTorch's mask meaning
    unready: Callable = lambda module: None  # (module) -> why it cannot be trusted before any test, or None


def _mps_sdpa(module, q, k, v, mask):
    # Apple's MPSGraph SDPA silently returns garbage past ~15k query rows on M2/M3 Ultra (Apple
    # FB24605554): there, queries go in blocks of 2,048 rows.
    if "Ultra" in chip_name() and q.shape[2] > 2048:
        import torch

        return torch.cat([module.sdpa_opt(q[:, :, i:i + 2048], k, v, attn_mask=None if mask is None else
                                          mask[..., i:i + 2048, :] if mask.shape[-2] > 1 else mask)
                          for i in range(0, q.shape[2], 2048)], dim=2)
    return module.sdpa_opt(q, k, v, attn_mask=mask)


def _mps_sdpa_unready(module) -> str | None:
    """mps-sdpa's fast path is a zero-copy C++ bridge compiled on first import; without Xcode's
    command-line tools it drops to a pyobjc backend that leaks Metal memory on every call (long
    generations run out of memory, per Lightricks' LTX-2 app), so only the bridge is trusted."""
    status = getattr(module, "backend_status", None)
    if status is None:
        return None
    try:
        picked = status().get("picked")
    except Exception as e:
        return f"backend_status() failed ({e.__class__.__name__})"
    if picked != "mpsgraph_zc":
        return (f"its zero-copy backend is not active (it would use {picked}); install Xcode's command-line "
                "tools (xcode-select --install) and run again")
    return None


def _mps_flash_attn(module, q, k, v, mask):
    if mask is not None and mask.dtype.is_floating_point:
        raise NotImplementedError("mps-flash-attn takes boolean masks only")
    return module.flash_attention(q, k, v, attn_mask=None if mask is None else ~mask)  # its True: masked out


# In order of preference (README: why).
ATTENTION_KERNELS = (Kernel("mps-sdpa", "mps_sdpa", _mps_sdpa, _mps_sdpa_unready),
                     Kernel("mps-flash-attn", "mps_flash_attn", _mps_flash_attn))
KERNEL_TOLERANCE = {"float32": 2e-3, "float16": 2e-2, "bfloat16": 5e-2}  # max |kernel - chunked|, unit-variance inputs
KERNEL_CHECK_SHAPE = (32, 64)  # heads x head dim of LTX's attention
KERNEL_CHECK_TOKENS = (1024, 4096)  # and the job's own length, capped at KERNEL_CHECK_MAX
KERNEL_CHECK_TEXT = (128, 1024)  # key lengths of cross-attention: LTX's prompt (128), LTX-2's (1024)

# A 1080p x 121-frame stage has 32,640 tokens: checked at the job's own length up to that, since
# a kernel's size-dependent bugs (Apple's past ~15k rows on Ultras; 32-bit indices past 2^31
# scores) show only at the real size. At 32k tokens x 64 dims a reference call is 8.8 TFLOP (~1 s on
# an M4 Max by the FLOP count, unmeasured), once per machine: the verdict is cached.
KERNEL_CHECK_MAX = 32768
CHECK_REVISION = 2  # in every verdict's key; 2: cross-attention under masks, lengths to 32k, conv3d


def machine_identity(dtype_name: str, device: str = "mps") -> str:
    """The part of every verdict's key that is this machine's: torch, macOS, chip, device, dtype,
    and which revision of the self-checks judged (a stricter check does not reuse older verdicts)."""
    import torch

    mac = macos_version()
    return f"torch {torch.__version__}|macOS {'.'.join(map(str, mac)) if mac else 'none'}|{chip_name()}|" \
           f"{device}|{dtype_name}|check {CHECK_REVISION}"


def kernel_identity(kernel: Kernel, module, dtype_name: str, head_dims: tuple[int, ...] = (),
                    device: str = "mps") -> str:
    """What a verdict holds for: a new package, torch, macOS or chip checks again."""
    version = getattr(module, "__version__", None)
    if version is None:
        with contextlib.suppress(Exception):
            from importlib.metadata import version as package_version

            version = package_version(kernel.package)
    dims = "" if head_dims in ((), (KERNEL_CHECK_SHAPE[1],)) else f"|head dims {','.join(map(str, head_dims))}"
    return f"{kernel.package} {version or '?'}|{machine_identity(dtype_name, device)}{dims}"


def timed_call(fn: Callable, device: str):
    """(fn(), seconds of its second call): the first warms up (kernels compile, caches fill)."""
    sync = device_sync(device)
    fn()
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def judged(verdict: dict, dtype_name: str, reference: str, truth: str | None = None) -> dict:
    """A self-check's measurements with its verdict: `correct` (no NaN was seen before this, and
    the max error is within KERNEL_TOLERANCE) and `ok` (correct and faster: what auto uses)."""
    worst, speedup = verdict["max_error"], verdict["speedup"]
    tolerance = KERNEL_TOLERANCE.get(dtype_name, 2e-3)
    verdict = dict(verdict, tolerance=tolerance)
    if worst > tolerance:
        where = f" ({verdict['worst_at']})" if verdict.get("worst_at") else ""
        return dict(verdict, ok=False, correct=False,
                    reason=f"max error {worst:.3g} > {tolerance:g} against {truth or reference}{where}")
    if speedup < 1.0:
        return dict(verdict, ok=False, correct=True, reason=f"slower than {reference} here ({speedup:.2f}x)")
    return dict(verdict, ok=True, correct=True, reason=f"max error {worst:.3g}, {speedup:.2f}x {reference}'s speed")


def is_verdict(entry: Any) -> bool:
    """A cached verdict as this tool writes it (a hand-edited or damaged one is checked again)."""
    return (isinstance(entry, dict) and isinstance(entry.get("ok"), bool) and isinstance(entry.get("reason"), str)
            and isinstance(entry.get("identity"), str) and is_amount(entry.get("checked_tokens", 0))
            and all(is_amount(entry[k]) for k in ("max_error", "speedup", "tolerance") if k in entry))


def cached_verdict(key: str, check: Callable[[], dict], extent: int = 0, log: Log | None = None) -> dict:
    """The verdict cached under `key` if it covered at least `extent` (tokens checked), else
    check() now, said aloud (seconds, once), and cached (written atomically: two runs at once
    never leave half a file)."""
    path = verdict_cache_path()
    cache: dict = {}
    with contextlib.suppress(OSError, ValueError):
        cache = read_json(path)
    entry = cache.get(key) if isinstance(cache, dict) else None
    if is_verdict(entry) and entry.get("checked_tokens", 0) >= extent and not entry.get("retry"):
        return entry
    if log is not None:
        log.info(f"checking {key.split('|')[0]} on this machine (once for this torch, macOS, chip and dtype)")
    verdict = dict(check(), checked_tokens=extent, identity=key)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = cache if isinstance(cache, dict) else {}
        cache[key] = verdict
        tmp = temp_path(path.with_suffix(".json"), "json")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    return verdict


def check_kernel(kernel: Kernel, module, device: str, dtype, tokens: int, head_dims: tuple[int, ...] = ()) -> dict:
    """The kernel against chunked_attention on random [1, 32, L, D] inputs, for each of the
    model's head sizes D (LTX 2B: 64; 13B: 128; LTX-2: 128 video, 64 audio): self-attention at a
    few lengths up to the job's; cross-attention from the job's length onto text-length keys
    under the additive padding mask the transformers pass (diffusers: -10000 on padded tokens),
    and the reverse (LTX-2's audio queries onto video). No NaN, max error within
    KERNEL_TOLERANCE, and the speed ratio (chunked time over the kernel's, self-attention at the
    longest length). A kernel that declines masks (NotImplementedError) leaves them to chunked
    attention at run time, as apply_savings does."""
    import torch

    dtype_name = dtype_label(dtype)
    reason = kernel.unready(module)
    if reason:
        return {"ok": False, "reason": reason}
    heads = KERNEL_CHECK_SHAPE[0]
    lengths = sorted({*KERNEL_CHECK_TOKENS, min(max(tokens, 1), KERNEL_CHECK_MAX)})
    dims = head_dims or (KERNEL_CHECK_SHAPE[1],)
    g = torch.Generator(device="cpu").manual_seed(0)
    worst, worst_at, speedup, masks = 0.0, "", 0.0, "checked"

    def randn(length: int, dim: int):
        return torch.randn(1, heads, length, dim, generator=g).to(device=device, dtype=dtype)

    cases = [(d, n, n, False) for d in dims for n in lengths]  # self-attention; the last one is timed
    cross = [(d, lengths[-1], text, True) for d in dims for text in KERNEL_CHECK_TEXT] + \
        [(d, text, lengths[-1], False) for d in dims for text in KERNEL_CHECK_TEXT[:1]]
    try:
        for index, (dim, q_len, kv_len, masked) in enumerate(cases + cross):
            q, k, v = randn(q_len, dim), randn(kv_len, dim), randn(kv_len, dim)
            mask = None
            if masked:  # a prompt a quarter of the padded length
                mask = torch.zeros(1, 1, 1, kv_len)
                mask[..., kv_len // 4:] = -10000.0
                mask = mask.to(device=device, dtype=dtype).repeat(1, heads, 1, 1)  # as prepare_attention_mask
            rows = attention_chunk_rows(max(q_len, kv_len), heads, 2**29)
            what = (f"{'masked cross-' if masked else 'cross-' if q_len != kv_len else ''}attention, "
                    f"{q_len} x {kv_len} tokens, head size {dim}")
            with torch.inference_mode():
                ref, t_ref = timed_call(lambda: chunked_attention(q, k, v, mask, rows), device)
                try:
                    out, t_kernel = timed_call(lambda: kernel.call(module, q, k, v, mask), device)
                except NotImplementedError:
                    if mask is None:
                        raise
                    masks = "left to chunked attention (the kernel takes no float mask)"
                    continue
            if out.shape != ref.shape:
                return {"ok": False, "reason": f"output of shape {tuple(out.shape)} for {tuple(ref.shape)} ({what})"}
            if not torch.isfinite(ref).all():
                return {"ok": False, "reason": f"chunked attention gave NaN/inf ({what}; no reference to judge by)"}
            if not torch.isfinite(out).all():
                return {"ok": False, "reason": f"NaN/inf ({what})"}
            error = float((out.float() - ref.float()).abs().max())
            if error > worst:
                worst, worst_at = error, what
            if index == len(cases) - 1:
                speedup = t_ref / max(t_kernel, 1e-9)
    except Exception as e:  # a kernel that crashes is a failed check, never our crash (checked again next
        # run: an out-of-memory moment is not a verdict)
        return {"ok": False, "retry": True, "reason": f"{e.__class__.__name__}: {first_line(e)[:120]}"}
    verdict = {"max_error": round(worst, 6), "worst_at": worst_at, "speedup": float(f"{speedup:.3g}"),
               "lengths": lengths, "head_dims": list(dims), "text_lengths": list(KERNEL_CHECK_TEXT),
               "masks": masks}
    return judged(verdict, dtype_name, "chunked attention")


def kernel_verdict(kernel: Kernel, module, device: str, dtype, tokens: int, head_dims: tuple[int, ...] = (),
                   log: Log | None = None) -> dict:
    """The cached verdict for this kernel here, or a new self-check (then cached)."""
    key = kernel_identity(kernel, module, dtype_label(dtype), head_dims, device)
    return cached_verdict(key, lambda: check_kernel(kernel, module, device, dtype, tokens, head_dims),
                          min(tokens, KERNEL_CHECK_MAX), log)


def pick_attention_kernel(mode: str, device: str, dtype, tokens: int, log: Log,
                          kernels: Sequence[Kernel] = ATTENTION_KERNELS, on_mac: bool | None = None,
                          head_dims: tuple[int, ...] = ()):
    """(kernel, module, verdict) for --attention auto/metal, or None (chunked or stock then).
    Off a Mac auto never looks; `metal` there, or with no kernel that passes, is refused."""
    import importlib

    on_mac = device == "mps" if on_mac is None else on_mac
    if not on_mac:
        if mode == "metal":
            raise UsageError("--attention metal needs a Mac's GPU (MPS); use auto, chunked or stock here")
        return None
    checked = []
    for kernel in kernels:
        try:
            module = importlib.import_module(kernel.module)
        except Exception:  # not installed, or it failed to build: not a candidate
            continue
        verdict = kernel_verdict(kernel, module, device, dtype, tokens, head_dims, log)
        if verdict.get("ok"):
            return kernel, module, verdict
        checked.append((kernel, module, verdict))
    failures = [f"{kernel.package}: {verdict.get('reason')}" for kernel, _, verdict in checked]
    if mode == "metal":
        for kernel, module, verdict in checked:  # asked for by name: right but slower is used, said aloud
            if verdict.get("correct"):
                log.info(f"note: --attention metal: {kernel.package} is right here but {verdict['reason']}; "
                         "used as asked (auto would not)")
                return kernel, module, verdict
        raise UsageError("--attention metal: " + ("; ".join(failures) if failures else
                         "no Metal attention kernel installed (pip install mps-sdpa)") +
                         "; use --attention chunked")
    if failures:
        log.info(f"note: using chunked attention; Metal kernel not trusted here ({'; '.join(failures)})")
    return None


# The LTX decoders' weight shapes (out, in, t, h, w) and how many layers have each: what the check
# runs when the VAE's own header is not at hand yet (a model not downloaded).
CONV3D_CHECK_SHAPES = (((1024, 1024, 3, 3, 3), 10), ((512, 512, 3, 3, 3), 10), ((256, 256, 3, 3, 3), 10),
                       ((128, 128, 3, 3, 3), 10))
CONV3D_CHECK_FRAMES = 8  # output frames per checked input
CONV3D_CHECK_AREA = 2**14  # channels x side: the side each layer sees in a 512 px tile (1024 ch: 16 px)


def conv3d_as_conv2d(x, weight, bias, stride, padding, dilation, groups):
    """F.conv3d(x, weight, bias, stride, padding, dilation, groups) for x [N, C, T, H, W] and
    numeric padding, as kt conv2d's over the frames (batched as images), summed. Each tap's
    result is rounded to x's dtype before the sum (bf16: ~1.5-2x PyTorch's own error against the
    float32 result; a float32 sum would not remove it, as the taps are rounded already). Memory:
    one frame-major copy of x and two of the output at most (native conv3d: one of each)."""
    import torch.nn.functional as F

    kt = weight.shape[2]
    (st, sh, sw), (pt, ph, pw), (dt, dh, dw) = stride, padding, dilation
    if pt:
        x = F.pad(x, (0, 0, 0, 0, pt, pt))
    n, c, t, h, w = x.shape
    t_out = (t - dt * (kt - 1) - 1) // st + 1
    frames = x.transpose(1, 2).reshape(n, t, c, h, w)  # one copy: every frame an image
    out = None
    for i in range(kt):
        taps = frames[:, i * dt:i * dt + (t_out - 1) * st + 1:st].reshape(n * t_out, c, h, w)
        y = F.conv2d(taps, weight[:, :, i], bias if i == 0 else None, (sh, sw), (ph, pw), (dh, dw), groups)
        y = y.unflatten(0, (n, t_out)).transpose(1, 2)  # [N, O, T', H', W'], a view
        if out is None:
            out = y.contiguous()
        else:
            out.add_(y)
        del y, taps
    return out


def _conv3d_forward(self, x, weight, bias):
    """nn.Conv3d._conv_forward through conv3d_as_conv2d (set on a module's instance)."""
    import torch
    import torch.nn.functional as F

    if isinstance(self.padding, str) or x.dim() != 5:  # "same"/"valid", or unbatched: PyTorch's own
        return torch.nn.Conv3d._conv_forward(self, x, weight, bias)
    padding = self.padding
    if self.padding_mode != "zeros":  # as nn.Conv3d does: pad by mode first, then no padding
        x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        padding = (0, 0, 0)
    return conv3d_as_conv2d(x, weight, bias, self.stride, padding, self.dilation, self.groups)


def use_conv3d(model, mode: str) -> int:
    """Every nn.Conv3d in `model` on the built-in path (mode "conv2d") or PyTorch's own (any
    other); the number of layers switched."""
    import types

    import torch

    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d):
            if mode == "conv2d":
                module._conv_forward = types.MethodType(_conv3d_forward, module)
            else:
                module.__dict__.pop("_conv_forward", None)
            count += 1
    return count


def vae_conv3d_shapes(folder: Path | None) -> tuple[tuple[tuple[int, ...], int], ...]:
    """The VAE decoder's conv3d weight shapes and how many layers have each, from its
    safetensors headers (no weight is read); the LTX decoders' when the VAE is not at hand."""
    import collections

    counts: collections.Counter = collections.Counter()
    for f in sorted((folder / "vae").glob("*.safetensors")) if folder is not None else ():
        with contextlib.suppress(OSError, ValueError, KeyError):
            counts.update(tuple(t["shape"]) for k, t in read_safetensors_header(f).items()
                          if k.startswith("decoder.") and k.endswith(".weight") and len(t.get("shape", ())) == 5)
    return tuple(sorted(counts.items(), reverse=True)) or CONV3D_CHECK_SHAPES


def check_conv3d(device: str, dtype, shapes) -> dict:
    """conv3d_as_conv2d against PyTorch's conv3d, in the job's dtype on this device, for each of
    the decoder's weight shapes (unit-variance inputs and outputs; padding 1 in space, as the
    decoders pad) at two sizes: half and whole the side such a layer sees in a 512 px tile. No
    NaN; max error against PyTorch's conv3d in float32 (the true result: both paths round to the
    dtype, so comparing them with each other would count both roundings) within
    KERNEL_TOLERANCE, PyTorch's own error beside it; speed: the decoder's time (each shape's time
    at the whole side x its layers) natively over the built-in path's, both rates in TFLOPS."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator(device="cpu").manual_seed(0)
    worst, native, times, flop = 0.0, 0.0, [0.0, 0.0], 0.0
    try:
        for (o, i, kt, kh, kw), layers in shapes:
            side = max(8, min(128, CONV3D_CHECK_AREA // i // 8 * 8))
            for s in (side // 2, side):
                x = torch.randn(1, i, CONV3D_CHECK_FRAMES + kt - 1, s, s, generator=g).to(device, dtype)
                w = (torch.randn(o, i, kt, kh, kw, generator=g) / math.sqrt(i * kt * kh * kw)).to(device, dtype)
                b = torch.randn(o, generator=g).mul_(0.1).to(device, dtype)
                args = ((1, 1, 1), (0, kh // 2, kw // 2), (1, 1, 1), 1)
                with torch.inference_mode():
                    ref, t_ref = timed_call(lambda: F.conv3d(x, w, b, *args), device)
                    out, t_out = timed_call(lambda: conv3d_as_conv2d(x, w, b, *args), device)
                    truth = ref if dtype == torch.float32 else F.conv3d(x.float(), w.float(), b.float(), *args)
                if out.shape != ref.shape:
                    return {"ok": False, "reason": f"output of shape {tuple(out.shape)} for {tuple(ref.shape)}"}
                if not (torch.isfinite(ref).all() and torch.isfinite(truth).all()):
                    return {"ok": False, "reason": f"PyTorch's conv3d gave NaN/inf for weights {o}x{i}x{kt}x{kh}x{kw} "
                                                   "(no reference to judge by)"}
                if not torch.isfinite(out).all():
                    return {"ok": False, "reason": f"NaN/inf for weights {o}x{i}x{kt}x{kh}x{kw}"}
                worst = max(worst, float((out.float() - truth).abs().max()))
                native = max(native, float((ref.float() - truth).abs().max()))
                del truth
            times[0] += t_ref * layers
            times[1] += t_out * layers
            flop += 2 * o * i * kt * kh * kw * CONV3D_CHECK_FRAMES * s * s * layers
            del x, w, b, ref, out
    except Exception as e:  # a path that crashes here is a failed check, never our crash (checked again)
        return {"ok": False, "retry": True, "reason": f"{e.__class__.__name__}: {first_line(e)[:120]}"}
    verdict = {"max_error": round(worst, 6), "stock_max_error": round(native, 6),
               "speedup": float(f"{times[0] / max(times[1], 1e-9):.3g}"),
               "stock_tflops": float(f"{flop / max(times[0], 1e-9) / 1e12:.4g}"),
               "tflops": float(f"{flop / max(times[1], 1e-9) / 1e12:.4g}"), "shapes": len(shapes)}
    return judged(verdict, dtype_label(dtype), "PyTorch's conv3d", "float32 conv3d")


def conv3d_identity(dtype_name: str, shapes, device: str = "mps") -> str:
    """What a conv3d verdict holds for: this tool's version (the path is its code), torch, macOS,
    chip, dtype and the decoder's shapes."""
    import hashlib

    digest = hashlib.sha256(repr(shapes).encode()).hexdigest()[:8]
    return f"{CONV3D_NAME} {__version__}|{machine_identity(dtype_name, device)}|shapes {digest}"


def pick_conv3d(mode: str, device: str, dtype, shapes, log: Log, on_mac: bool | None = None) -> tuple[str, dict | None]:
    """("conv2d", verdict) or ("stock", verdict or None). auto: the built-in path only on a Mac,
    where it matched PyTorch's conv3d and was faster (a wrong one is named in a notice); conv2d
    (by name): where it is right, even if slower (said aloud), else refused; stock: PyTorch's,
    unchecked."""
    on_mac = device == "mps" if on_mac is None else on_mac
    if mode == "stock" or (mode == "auto" and not on_mac):
        return "stock", None
    verdict = cached_verdict(conv3d_identity(dtype_label(dtype), shapes, device), lambda: check_conv3d(device, dtype, shapes),
                             log=log)
    if verdict.get("ok"):
        return "conv2d", verdict
    if mode == "conv2d":
        if not verdict.get("correct"):
            raise UsageError(f"--conv3d conv2d: not right here ({verdict.get('reason')}); use --conv3d stock")
        log.info(f"note: --conv3d conv2d is right here but {verdict['reason']}; used as asked (auto would not)")
        return "conv2d", verdict
    if not verdict.get("correct"):  # merely slower is the good news of a newer torch: the plan says it
        log.info(f"note: the VAE uses PyTorch's conv3d ({CONV3D_NAME} not used here: {verdict.get('reason')})")
    return "stock", verdict


def apply_savings(pipe, plan: MemoryPlan, family: type[Family], kernel: tuple | None = None) -> None:
    """Per job: the attention the plan chose (a trusted Metal kernel: `kernel`, (Kernel, module),
    with chunked attention for the calls it declines; chunks of rows; or stock), through the
    family's processors, and the VAE's tiling and conv3d path."""
    attend = None
    if kernel is not None:
        impl, module = kernel

        def attend(q, k, v, mask):
            try:
                return impl.call(module, q, k, v, mask)
            except NotImplementedError:  # a call the kernel does not take (a float mask): ours
                return chunked_attention(q, k, v, mask, plan.attention_chunk)

    # a kernel's plan always has rows too: its fallback
    processors = family.attention_processors(pipe, attend, plan.attention_chunk)
    if processors is not None:
        pipe.transformer.set_attn_processor(processors)
    vae = pipe.vae
    use_conv3d(vae.decoder, plan.conv3d)  # what the check checked (the encoder runs once, on one image)
    if plan.vae_spatial_tiling:
        vae.enable_tiling(**vae_tile_sizes(plan.vae_tile or (family.vae_tiles or (None,))[0]))
    else:
        vae.use_tiling = False
    if hasattr(vae, "use_framewise_decoding"):
        vae.use_framewise_decoding = plan.vae_temporal_tiling


def vae_tile_sizes(tile: int | None) -> dict:
    """enable_tiling's options for square `tile` px tiles sharing LTX_VAE_TILE_BLEND px (set
    every time: a group's model keeps the last job's); None: the VAE's own defaults."""
    if tile is None:
        return {}
    return dict(tile_sample_min_height=tile, tile_sample_min_width=tile, tile_sample_stride_height=tile - LTX_VAE_TILE_BLEND,
                tile_sample_stride_width=tile - LTX_VAE_TILE_BLEND)


# ----------------------------------------------------------------------------------------------
# 9. Families: one class of facts and hooks per family of pipelines, registered by pipeline class
# The core calls these hooks and never names a family; the hooks' bodies use the stage and
# decode helpers below.


class Family:
    """A family's facts and hooks. The defaults fit a plain diffusers image-to-video pipeline
    (a T5 prompt, one pass of `steps`, latents out, its VAE's decode); each family overrides what
    differs. Hooks are class methods: a family holds no state."""

    pipeline = ""  # the diffusers class that runs it (set by register)
    label = "this model"  # how messages name the family
    generic_alias: str | None = None  # the MODELS row that plans a checkpoint of it not in the table
    text_encoders = ("T5EncoderModel",)  # classes model_index.json may name for its text_encoder
    text_encoder_label = "T5"
    max_sequence_length = 226  # prompt tokens: the pipeline's own default, so we equal a direct call
    embed_names = ("prompt_embeds", "negative_prompt_embeds")  # what encode_prompt returns, in order
    negative_prompt = DEFAULT_PROMPT_NEGATIVE  # used when --negative-prompt is not given
    supports: frozenset[str] = frozenset()  # of FEATURES
    audio = False  # makes a soundtrack with the frames
    fps_input = True  # the pipeline takes the frame rate (else --fps only changes playback)
    own_attention = False  # attention_processors gives ours (chunked, a Metal kernel); else stock only
    image_noise_input = False  # takes image_cond_noise_scale (recorded in the sidecar)
    # Sizes before the configs are read: heads, hidden, decoder channels, blocks, VAE compression
    # (space, time), patch. The default: a transformer of LTX-Video 2B's shape.
    default_dims = (32, 2048, 128, 28, 32, 8, 1)
    framewise_vae = False  # the VAE always decodes a few latent frames at a time
    folded_components: dict[str, str] = {}  # parts the memory plan counts with another
    upsampler_class: tuple[str, str] | None = None  # (module, class) of the 2x latent upscaler
    upsample_pipeline: tuple[str, dict] | None = None  # (diffusers class, its options) that runs it
    unused_components: tuple[str, ...] = ()  # optional pipeline parts this tool never runs: not fetched
    stage_note = ""  # after each stage's log line
    fallback_alias: str | None = None  # a model to suggest when this one fails on a Mac
    enhancer_processor: str | None = None  # "folder@repo" of the processor its prompt enhancer reads with
    enhancer_kv_per_token = 0  # elements of the enhancer's KV cache per token (memory plan)
    vae_tiles: tuple[int, ...] = ()  # px of spatial tiles its VAE decodes in, its own first; () its own only
    step_tensors = ("latents",)  # what a stage carries from step to step (the pipeline's names): resume keeps them
    latent_channels = 128  # per latent pixel, until the transformer's config is read (ModelDims)

    @classmethod
    def generic_spec(cls, source: str) -> ModelSpec:
        """Settings for a checkpoint of this family that MODELS does not list."""
        base = MODELS[cls.generic_alias] if cls.generic_alias else ModelSpec(source, source, cls.pipeline)
        return dataclasses.replace(base, alias=source, repo=source, single_file=None, config_repo=None,
                                   note="checkpoint not in the model table")

    @classmethod
    def refine(cls, spec: ModelSpec, folder: Path) -> ModelSpec:
        """The spec adjusted to a checkpoint on disk (rules its configs state)."""
        return spec

    @classmethod
    def dims(cls, spec: ModelSpec) -> ModelDims:
        heads, hidden, vae_channels, layers, spatial, temporal, patch = cls.default_dims
        return ModelDims({}, heads, hidden, vae_channels, spatial, temporal, patch,
                         framewise_builtin=cls.framewise_vae, layers=layers, latent_channels=cls.latent_channels)

    @classmethod
    def dims_from_configs(cls, dims: ModelDims, transformer: dict, vae: dict) -> ModelDims:
        """`dims` with what the transformer's and VAE's config.json say ({} when unreadable)."""
        heads = transformer.get("num_attention_heads", dims.heads)
        channels = vae.get("decoder_block_out_channels") or vae.get("block_out_channels")
        return dataclasses.replace(
            dims, heads=heads, hidden=heads * transformer.get("attention_head_dim", dims.hidden // heads),
            layers=transformer.get("num_layers", dims.layers), patch=transformer.get("patch_size", dims.patch),
            vae_channels=channels[0] if channels else dims.vae_channels,
            latent_channels=transformer.get("out_channels") or dims.latent_channels)

    @classmethod
    def pipeline_class(cls) -> type:
        import diffusers

        return getattr(diffusers, cls.pipeline)

    @classmethod
    def load_single_file(cls, weights: Weights, dtype):
        raise RunError(f"{cls.label} has no single-file transformer format here")

    @classmethod
    def load_single_file_vae(cls, weights: Weights, dtype):
        raise RunError(f"{cls.label} has no single-file VAE format here")

    @staticmethod
    def prepare_loaded(pipe, device: str) -> None:
        """Adjust a freshly loaded pipeline for the device."""

    @staticmethod
    def prepare_tokenizer(tokenizer) -> None:
        """Adjust the tokenizer as its maker's code reads prompts."""

    @staticmethod
    def pipeline_for(pipe, job: Job, log: Log):
        """The pipeline object a stage of this job runs (a sibling sharing the loaded modules)."""
        return pipe

    @classmethod
    def attention_processors(cls, pipe, attend: Callable | None, rows: int | None) -> Any:
        """The transformer's attention processor(s): ours (`attend`, or chunks of `rows`) or the
        stock ones. Only for a family with `own_attention`; None leaves the pipeline's own."""
        return None

    @classmethod
    def stage_call(cls, pipe, job: Job, stage: Stage, embeds: dict, image, generator) -> dict:
        """The pipeline's keyword arguments for one stage (latents out, not decoded)."""
        return dict(embeds, image=image, width=stage.width, height=stage.height, num_frames=job.num_frames,
                    guidance_scale=job.guidance_scale, generator=generator, num_inference_steps=stage.steps,
                    output_type="latent", return_dict=False)

    @classmethod
    def schedule(cls, steps: int) -> tuple[float, ...] | None:
        """A full model's stage-1 timesteps (sigmas x 1000) for `steps` steps as its maker builds
        them, or None: the pipeline's own scheduler decides."""
        return None

    @classmethod
    def continue_from(cls, pipe, kwargs: dict, stage: Stage, carried: dict) -> None:
        """A later stage starts from the (upscaled) latents of the one before."""
        kwargs["latents"] = carried["latents"]

    @classmethod
    def stage_result(cls, pipe, out, job: Job, stage: Stage) -> dict:
        """What a stage hands on, from the pipeline's output: {"latents": ...} at least."""
        return {"latents": out[0]}

    @classmethod
    def finish(cls, pipe, carried: dict, job: Job, rt: Runtime):
        """The last stage's latents, ready for decode (rt.stats.audio: a soundtrack, if any)."""
        return carried["latents"]

    @staticmethod
    def window_job(job: Job, window: int, sound: AudioTrack | None) -> Job:
        """The job a long clip's window runs as: after the first, it continues the window before
        (`sound`: that window's soundtrack, for a family that makes sound)."""
        return dataclasses.replace(job, window=window) if window else job

    @staticmethod
    def skipped_pass(transformer, inputs: dict) -> tuple:
        """What the transformer answers for a step replayed on resume (Replay; its result is
        replaced by the saved state): its input, shaped as its output, at no cost."""
        return tuple(inputs[k].clone() for k in ("hidden_states", "audio_hidden_states") if inputs.get(k) is not None)

    @classmethod
    def decode(cls, pipe, latents, job: Job, generator, rt: Runtime, progress) -> Iterator:
        """uint8 [f, H, W, 3] chunks of the decoded video at generation size, in order."""
        video = pipe.vae.decode(latents.to(rt.device, rt.dtype), return_dict=False)[0]
        progress(1.0, "")
        yield from uint8_chunks(video[0])


@register("LTXImageToVideoPipeline", "LTXPipeline")
class LTX(Family):
    """LTX-Video's image-to-video pipeline (0.9.0, 0.9.1): T5, packed latents, the LTX VAE
    (timestep-conditioned from 0.9.1), decoded as diffusers does but streamed (decode_ltx)."""

    label = "LTX-Video"
    generic_alias = "ltx"
    own_attention = True
    max_sequence_length = 128
    embed_names = ("prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
                   "negative_prompt_attention_mask")
    supports = frozenset({"draft", "lora", "lora_passes"})
    large_dims = (32, 4096, 128, 48, 32, 8, 1)  # 13B: 48 blocks of 32 x 128 (2B: 28 of 32 x 64)
    upsampler_class = ("diffusers.pipelines.ltx.modeling_latent_upsampler", "LTXLatentUpsamplerModel")
    # The 2x upscale between the stages. No tone mapping here: Lightricks applies it (13B only)
    # just before decoding.
    upsample_pipeline = ("LTXLatentUpsamplePipeline", {"adain_factor": 1.0, "tone_map_compression_ratio": 0.0})
    fallback_alias = "cogvideox"
    vae_tiles = VAE_TILE_SIZES  # decode_ltx tiles with the VAE's own tile attributes, at any size

    @classmethod
    def dims(cls, spec: ModelSpec) -> ModelDims:
        dims = super().dims(spec)
        if cls.large_dims and spec.params_b.get("transformer", 0) > 5:  # billions
            heads, hidden, vae_channels, layers, spatial, temporal, patch = cls.large_dims
            dims = dataclasses.replace(dims, heads=heads, hidden=hidden, vae_channels=vae_channels, layers=layers)
        return dims

    @classmethod
    def dims_from_configs(cls, dims: ModelDims, transformer: dict, vae: dict) -> ModelDims:
        dims = super().dims_from_configs(dims, transformer, vae)
        if not vae:
            return dims
        # diffusers' own rule: the declared ratios win. The 0.9.5+ VAE declares 32x/8x while its
        # four scaling flags would say 64x/16x (its "temporal" block keeps space).
        scaled = sum(vae.get("spatio_temporal_scaling", [1, 1, 1]))
        return dataclasses.replace(
            dims, spatial=vae.get("spatial_compression_ratio") or vae.get("patch_size", 4) * 2 ** scaled,
            temporal=vae.get("temporal_compression_ratio") or vae.get("patch_size_t", 1) * 2 ** scaled)

    @classmethod
    def load_single_file(cls, weights: Weights, dtype):
        """Lightricks' original-format transformer file, with a diffusers config beside it."""
        import diffusers

        return diffusers.LTXVideoTransformer3DModel.from_single_file(
            str(weights.transformer_file), config=str(weights.transformer_config), subfolder="transformer",
            dtype=dtype, local_files_only=True)

    @classmethod
    def load_single_file_vae(cls, weights: Weights, dtype):
        """The VAE bundled in the same file (its vae.* keys), as Lightricks loads it
        (CausalVideoAutoencoder.from_pretrained(ckpt_path)), with the config repo's vae/config.json.
        Keys are renamed by diffusers' own converter, told the 0.9.5+ layout that every single file
        in the table has (it tells by a 2048-channel encoder output, which the real files have)."""
        import diffusers
        import torch
        from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers
        from safetensors import safe_open

        with safe_open(str(weights.transformer_file), "pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys() if k.startswith("vae.")}
        conv_out = state.get("vae.encoder.conv_out.conv.weight")
        if conv_out is None:
            raise RunError(f"{weights.transformer_file.name} holds no VAE (vae.* keys); download it again")
        state["vae.encoder.conv_out.conv.weight"] = torch.empty((conv_out.shape[0], 2048, 1, 1, 1), device="meta")
        state = convert_ltx_vae_checkpoint_to_diffusers(state)
        state["encoder.conv_out.conv.weight"] = conv_out
        config = diffusers.AutoencoderKLLTXVideo.load_config(str(weights.transformer_config), subfolder="vae")
        with torch.device("meta"):
            vae = diffusers.AutoencoderKLLTXVideo.from_config(config)
        try:
            vae.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as e:
            raise RunError(f"the VAE in {weights.transformer_file.name} does not fit {weights.transformer_config}'s "
                           f"vae/config.json: {first_line(e)[:160]}") from None
        return vae.to(dtype).eval()

    @classmethod
    def attention_processors(cls, pipe, attend: Callable | None, rows: int | None) -> Any:
        if rows:
            return ltx_chunked_processor(rows, attend)()
        from diffusers.models.transformers.transformer_ltx import LTXVideoAttnProcessor

        return LTXVideoAttnProcessor()

    @classmethod
    def stage_call(cls, pipe, job: Job, stage: Stage, embeds: dict, image, generator) -> dict:
        kwargs = dict(super().stage_call(pipe, job, stage, embeds, image, generator), frame_rate=job.fps,
                      **(job.spec.guidance_extras if stage.guided else {}))  # 0.9.1: guidance_rescale 0.7
        if stage.timesteps:
            del kwargs["num_inference_steps"]
            kwargs["timesteps"] = list(stage.timesteps)
            if stage.denoise_strength < 1:  # see plan_stages: the skipped head of the schedule
                kwargs["timesteps"] = [1000.0] + kwargs["timesteps"]
            use_fixed_schedule(pipe)
        return kwargs

    @classmethod
    def stage_result(cls, pipe, out, job: Job, stage: Stage) -> dict:
        """The image-to-video pipeline returns packed [B, tokens, C] latents: unpacked here."""
        return {"latents": pipe._unpack_latents(
            out[0], (job.num_frames - 1) // pipe.vae_temporal_compression_ratio + 1,
            stage.height // pipe.vae_spatial_compression_ratio, stage.width // pipe.vae_spatial_compression_ratio,
            pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size)}

    @classmethod
    def decode(cls, pipe, latents, job: Job, generator, rt: Runtime, progress) -> Iterator:
        yield from decode_ltx(pipe, latents, job, generator, rt, progress)


@register("LTXConditionPipeline")
class LTXCondition(LTX):
    """LTX-Video's condition pipeline (0.9.5+, the distilled fast path): images or video at any
    frame (keyframes, an end image, --extend, long clips' windows), a later stage denoising given
    latents from part way."""

    generic_alias = "ltx-distilled"
    max_sequence_length = 256
    supports = LTX.supports | {"conditions", "keyframes", "extend", "segments"}
    image_noise_input = True

    @classmethod
    def stage_call(cls, pipe, job: Job, stage: Stage, embeds: dict, image, generator) -> dict:
        kwargs = super().stage_call(pipe, job, stage, embeds, image, generator)
        kwargs["image_cond_noise_scale"] = job.spec.image_cond_noise_scale
        if isinstance(image, list):  # frame 0's image (or video), then each pinned image
            # As LTXVideoCondition items: diffusers 0.42.1's list form (image=[...],
            # frame_index=[...]) zips the images with video=[None] and keeps only the first.
            from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

            frames_at = [(0, 1.0)] + [(c.frame, c.strength) for c in job.conditions]
            kwargs["conditions"] = [
                LTXVideoCondition(video=item, frame_index=f, strength=st) if isinstance(item, list) else
                LTXVideoCondition(image=item, frame_index=f, strength=st)
                for item, (f, st) in zip(kwargs.pop("image"), frames_at)]
        return kwargs

    @classmethod
    def continue_from(cls, pipe, kwargs: dict, stage: Stage, carried: dict) -> None:
        kwargs.update(latents=carried["latents"], denoise_strength=stage.denoise_strength)

    @classmethod
    def stage_result(cls, pipe, out, job: Job, stage: Stage) -> dict:
        return {"latents": out[0]}  # unpacked already


@register("CogVideoXImageToVideoPipeline")
class CogVideoX(Family):
    """CogVideoX image-to-video, the fallback: T5, THUDM's DPM scheduler with cosine-ramped
    guidance, a VAE that decodes two latent frames at a time; 1.0 at its learned size only."""

    label = "CogVideoX"
    generic_alias = "cogvideox1.5"
    own_attention = True
    negative_prompt = ""  # THUDM's inference/cli_demo.py passes none: the pipeline encodes ""
    supports = frozenset({"draft", "lora"})
    fps_input = False
    default_dims = (48, 3072, 128, 42, 8, 4, 2)
    framewise_vae = True
    step_tensors = ("latents", "old_pred_original_sample")  # DPM is a two-step sampler: its last x0 too
    latent_channels = 16

    @staticmethod
    def skipped_pass(transformer, inputs: dict) -> tuple:
        """The input is the latents with the image's beside them (channels): the latents' part."""
        return (inputs["hidden_states"][:, :, :transformer.config.out_channels].clone(),)

    @classmethod
    def refine(cls, spec: ModelSpec, folder: Path) -> ModelSpec:
        """Rules read from the checkpoint's own configs: 1.0 (learned positions) only runs at its
        sample size and frame count; 1.5 (temporal patches) at sizes in multiples of 16."""
        try:
            cfg = read_json(folder / "transformer" / "config.json")
            scale = 2 ** (len(read_json(folder / "vae" / "config.json")["block_out_channels"]) - 1)
        except (OSError, ValueError, KeyError):
            return spec
        if cfg.get("use_learned_positional_embeddings"):
            frames = cfg.get("sample_frames", spec.max_frames)
            return dataclasses.replace(spec, native_size=(cfg["sample_width"] * scale, cfg["sample_height"] * scale),
                                       native_frames=frames, max_frames=frames, fps=8, size_multiple=scale,
                                       frame_step=8, short_side=None, max_long_side=None)
        # Latents are decoded in pairs and, with temporal patches, padded to a multiple of
        # patch_size_t: 8k+1 frames, 16N+1 for 1.5 (patch_size_t 2), as its model card says.
        patch_t = cfg.get("patch_size_t") or 1
        return dataclasses.replace(spec, native_size=None, native_frames=None,
                                   size_multiple=scale * cfg.get("patch_size", 2),
                                   fps=16 if cfg.get("patch_size_t") else 8, frame_step=8 * patch_t)

    @classmethod
    def attention_processors(cls, pipe, attend: Callable | None, rows: int | None) -> Any:
        if rows:
            return cogvideox_chunked_processor(rows, attend)()
        from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

        return CogVideoXAttnProcessor2_0()

    @classmethod
    def stage_call(cls, pipe, job: Job, stage: Stage, embeds: dict, image, generator) -> dict:
        use_scheduler(pipe, job.spec.scheduler)
        return dict(super().stage_call(pipe, job, stage, embeds, image, generator),
                    use_dynamic_cfg=job.spec.dynamic_cfg)

    @classmethod
    def decode(cls, pipe, latents, job: Job, generator, rt: Runtime, progress) -> Iterator:
        padding = latents.shape[1] - ((job.num_frames - 1) // pipe.vae_scale_factor_temporal + 1)
        video = pipe.decode_latents(latents[:, padding:].to(rt.device))[0]
        progress(1.0, "")
        yield from uint8_chunks(video)


@register("LTX2ImageToVideoPipeline", "LTX2Pipeline")
class LTX2(LTX):
    """LTX-2: one transformer denoises video and audio latents together (Gemma 3 reads the
    prompt); the audio VAE and vocoder turn the audio latents into a waveform."""

    label = "LTX-2"
    generic_alias = "ltx2-dev"
    text_encoders = ("Gemma3ForConditionalGeneration", "Gemma4UnifiedForConditionalGeneration")  # 2.0/2.3, 2.5
    text_encoder_label = "Gemma"
    max_sequence_length = 1024
    negative_prompt = LTX2_NEGATIVE_PROMPT
    supports = frozenset({"draft", "lora", "lora_passes", "enhance_prompt", "keyframes", "extend", "segments",
                          "soundtrack"})
    audio = True
    default_dims = (32, 4096, 256, 48, 32, 8, 1)
    large_dims = None
    # Its text connectors run with the transformer, its audio VAE and vocoder decode with the video VAE.
    folded_components = {"connectors": "transformer", "audio_vae": "vae", "vocoder": "vae"}
    upsampler_class = ("diffusers.pipelines.ltx2", "LTX2LatentUpsamplerModel")
    upsample_pipeline = ("LTX2LatentUpsamplePipeline", {})  # on the denormalized latents stage 1 returns
    unused_components = ("processor", "prompt_enhancer", "duration_head")
    stage_note = " (video and audio)"
    step_tensors = ("latents", "audio_latents")
    fallback_alias = None
    enhancer_processor = LTX2_ENHANCER_PROCESSOR
    enhancer_kv_per_token = GEMMA_KV_PER_TOKEN

    @classmethod
    def dims(cls, spec: ModelSpec) -> ModelDims:
        return dataclasses.replace(super().dims(spec), audio_hidden=2048, audio_head_dim=64)

    @classmethod
    def dims_from_configs(cls, dims: ModelDims, transformer: dict, vae: dict) -> ModelDims:
        dims = super().dims_from_configs(dims, transformer, vae)
        if not transformer:
            return dims
        head_dim = transformer.get("audio_attention_head_dim", dims.audio_head_dim)
        return dataclasses.replace(dims, audio_head_dim=head_dim,
                                   audio_hidden=transformer.get("audio_num_attention_heads", 32) * head_dim)

    @classmethod
    def generic_spec(cls, source: str) -> ModelSpec:
        """An LTX-2 checkpoint not in the table runs the full model's guided pass alone: the
        two-stage recipe's distilled LoRA and upscaler are made for one version each."""
        return dataclasses.replace(super().generic_spec(source), upsampler=None, stage2_timesteps=None,
                                   stage2_lora=None, params_b=LTX2_PARAMS, call_options={})

    @classmethod
    def schedule(cls, steps: int) -> tuple[float, ...]:
        """Lightricks' LTX2Scheduler (ltx-core components/schedulers.py), as its two-stage pipeline
        runs it (no latent passed: as if 4,096 tokens, whatever the size): shift 2.05 on
        linspace(1, 0, steps + 1), stretched so the last non-zero sigma is 0.1. diffusers derives
        the shift from the real token count instead (at 1080p, mu 12.3: most sigmas near 1)."""
        shift, terminal = 2.05, 0.1  # max_shift at MAX_SHIFT_ANCHOR = 4096 tokens; terminal
        sigmas = [1 - i / steps for i in range(steps)]  # without the final 0
        sigmas = [math.exp(shift) / (math.exp(shift) + (1 / s - 1)) for s in sigmas]
        scale = (1 - sigmas[-1]) / (1 - terminal)
        return tuple(1000 * (1 - (1 - s) / scale) for s in sigmas)

    @classmethod
    def stage_call(cls, pipe, job: Job, stage: Stage, embeds: dict, image, generator) -> dict:
        # A full model's stage 2 runs no guidance of any kind (its distilled LoRA instead)
        guidance, extras = (job.guidance_scale, job.spec.guidance_extras) if stage.guided else (
            1.0, LTX2_DISTILLED_GUIDANCE)
        kwargs = dict(embeds, image=image, width=stage.width, height=stage.height, num_frames=job.num_frames,
                      frame_rate=job.fps, guidance_scale=guidance, generator=generator,
                      image_crf=0,  # the CRF round trip was ours (prepare_image): no PyAV needed
                      output_type="latent", return_dict=False, **extras, **job.spec.call_options)
        if cls.conditioned(job):  # the condition pipeline (pipeline_for)
            cls.as_conditions(pipe, job, stage, kwargs)
        if stage.timesteps:
            kwargs["sigmas"] = [t / 1000 for t in stage.timesteps]
            use_fixed_schedule(pipe)
            if job.spec.stage1_sampler == "ancestral" and stage is job.stages[0]:
                pipe.scheduler = ancestral_scheduler(pipe.scheduler.config, job.seed + ANCESTRAL_NOISE_SEED_OFFSET)
        else:
            kwargs["num_inference_steps"] = stage.steps
        return kwargs

    @staticmethod
    def window_job(job: Job, window: int, sound: AudioTrack | None) -> Job:
        """A later window holds the sound of the frames it starts from, as --extend holds the
        original's: the window before's soundtrack over its last EXTEND_CONTEXT frames."""
        if not window:
            return job
        held = None
        if sound is not None:
            tail = sound.samples[:, -round(EXTEND_CONTEXT / job.fps * sound.rate):]
            held = resample(tail, sound.rate, SOUNDTRACK_RATE)
        return dataclasses.replace(job, window=window, held_sound=held)

    @staticmethod
    def conditioned(job: Job) -> bool:
        """Runs the condition pipeline: images pinned after frame 0, a soundtrack, a video (or a
        long clip's window before) to continue."""
        return bool(job.conditions or job.soundtrack or job.extend or job.window)

    @staticmethod
    def as_conditions(pipe, job: Job, stage: Stage, kwargs: dict) -> None:
        """The condition pipeline's form of a stage's inputs: the image replacing frame 0 and each
        pinned image appended (CRF ours: 0 to the pipeline), and in stage 1 the soundtrack's latents
        (stage 2 gets them carried, unchanged)."""
        from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

        del kwargs["image_crf"]
        images = kwargs.pop("image")
        images = images if isinstance(images, list) else [images]
        strengths = [1.0] + [c.strength for c in job.conditions]
        kwargs["conditions"] = [LTX2VideoCondition(frames=image, index=min(k, 1), strength=strength, crf=0)
                                for k, (image, strength) in enumerate(zip(images, strengths))]
        if stage is not job.stages[0]:
            return
        if job.soundtrack:  # the video's length of it
            kwargs["audio_latents"] = sound_latents(pipe, read_audio(job.soundtrack.path, SOUNDTRACK_RATE),
                                                    job.num_frames / job.fps)
        elif job.extend or job.held_sound is not None:  # the sound of the frames continued, then room
            wave = context_sound(job)
            if wave.shape[1]:
                kwargs["audio_latents"] = sound_latents(pipe, wave, job.num_frames / job.fps)

    @staticmethod
    def pipeline_for(pipe, job: Job, log: Log):
        """Images pinned after frame 0, a soundtrack, or a video to extend: diffusers' LTX2ConditionPipeline on the
        same modules. Each appended image is placed at its exact frame (diffusers places one at the
        first frame of a latent frame, (index - 1) x 8 + 1: an end image 7 frames early; Lightricks'
        keyframe conditions take the pixel frame, ltx-core conditioning/types/keyframe_cond.py)."""
        pipe.transformer.audio_prefix = None
        if not LTX2.conditioned(job):
            return pipe
        from diffusers import LTX2ConditionPipeline

        with quiet_libraries(log):  # from_pipe casts every module: a warning each ("kept in float32: []")
            runner = LTX2ConditionPipeline.from_pipe(pipe)
        runner.set_progress_bar_config(disable=True)
        wave = context_sound(job) if job.extend or job.held_sound is not None else None
        if wave is not None and wave.shape[1]:  # held in every pass by hold_audio_prefix
            held = runner._pack_audio_latents(sound_latents(pipe, wave, context_frames(job) / job.fps))
            pipe.transformer.audio_prefix = runner._normalize_audio_latents(
                held, pipe.audio_vae.latents_mean, pipe.audio_vae.latents_std)
        if job.soundtrack:  # the sound held as given: timestep 0, no noise, no step
            runner.audio_scheduler = frozen_audio_scheduler(pipe.scheduler.config)
            prepare = type(runner).prepare_audio_latents.__get__(runner)
            runner.prepare_audio_latents = lambda *a, **k: prepare(*a, **dict(k, noise_scale=0.0))
        place = type(runner)._prepare_keyframe_coords.__get__(runner)
        frames = iter([c.frame for c in job.conditions])  # called once per appended image, in order

        def at_frame(**kwargs):
            return place(**dict(kwargs, pixel_frame_idx=next(frames)))

        runner._prepare_keyframe_coords = at_frame
        return runner

    @classmethod
    def continue_from(cls, pipe, kwargs: dict, stage: Stage, carried: dict) -> None:
        """Lightricks' stage 2 (distilled.py, ti2vid_two_stages.py): latent frame 0 replaced by the
        image encoded at full size (diffusers' image-to-video pipeline never encodes `image` once
        latents are given, and keeps frame 0 as it finds it; its condition pipeline encodes every
        condition again at this size itself), the rest renoised to the schedule's first sigma."""
        if "conditions" in kwargs:
            kwargs.update(latents=carried["latents"], audio_latents=carried["audio"], noise_scale=kwargs["sigmas"][0])
            return
        latents = carried["latents"].clone()
        latents[:, :, :1] = cls.encode_image(pipe, kwargs["image"], stage.height, stage.width).to(latents)
        kwargs.update(latents=latents, audio_latents=carried["audio"], noise_scale=kwargs["sigmas"][0])

    @staticmethod
    def encode_image(pipe, image, height: int, width: int):
        """The conditioning image as one latent frame, un-normalized (as stage latents are): the
        pipeline's own encode (video_processor, then the VAE's mode, "argmax")."""
        import torch

        vae = pipe.vae
        if getattr(vae, "_hf_hook", None) is not None:  # model offload: bring the VAE in
            vae._hf_hook.pre_forward(vae)
        device = next(vae.parameters()).device
        pixels = pipe.video_processor.preprocess(image, height=height, width=width).to(device, vae.dtype)
        with torch.no_grad():
            return vae.encode(pixels.unsqueeze(2)).latent_dist.mode()

    @staticmethod
    def enhance(pipe, prompt: str, image, seed: int, device: str) -> str:
        """The prompt rewritten by Gemma 3 itself (LTX-2's text encoder doubles as its enhancer):
        diffusers' port of ltx-core's enhance_i2v (its chat template, sampling, reply cleaning),
        with Lightricks' image-to-video system prompt, seeded with the video's seed."""
        import torch
        from diffusers.pipelines.ltx2.utils import I2V_DEFAULT_SYSTEM_PROMPT

        with torch.random.fork_rng(devices=[]):  # it seeds torch's global generator: keep ours as it was
            return pipe.enhance_prompt(prompt, I2V_DEFAULT_SYSTEM_PROMPT, max_new_tokens=ENHANCE_NEW_TOKENS,
                                       seed=seed, device=torch.device(device), image=image)[0]

    @classmethod
    def stage_result(cls, pipe, out, job: Job, stage: Stage) -> dict:
        latents, audio = out  # both denormalized; audio [B, C, frames, mel bins]
        return {"latents": latents, "audio": audio}

    @classmethod
    def finish(cls, pipe, carried: dict, job: Job, rt: Runtime):
        if job.soundtrack:  # the sound it was made to, as given (a2vid_two_stage.py muxes the input's)
            rt.stats.audio = AudioTrack(read_audio(job.soundtrack.path, SOUNDTRACK_OUT_RATE), SOUNDTRACK_OUT_RATE)
        elif job.extend and not job.request.no_audio:
            rt.stats.audio = cls.continued_sound(cls.soundtrack(pipe, carried["audio"], rt.stats), job)
        elif not job.request.no_audio:
            rt.stats.audio = cls.soundtrack(pipe, carried["audio"], rt.stats)
        vae = pipe.vae
        return pipe._normalize_latents(carried["latents"], vae.latents_mean, vae.latents_std,
                                       vae.config.scaling_factor)

    @staticmethod
    def continued_sound(made: AudioTrack, job: Job) -> AudioTrack:
        """--extend: the original's own sound (silence if it had none; not with --extend-only),
        then the new sound from where the new frames start (the generation's first `context`
        frames re-make the original's last: their sound is the original's, held)."""
        import numpy as np

        rate = made.rate
        new = made.samples[:, round(job.extend.context / job.fps * rate):]
        if job.extend.only:
            return AudioTrack(new, rate)
        old = read_audio(job.extend.video, rate)
        length = round(job.extend.frames / job.fps * rate)
        old = np.pad(old[:, :length], ((0, 0), (0, max(0, length - old.shape[1]))))
        return AudioTrack(np.concatenate([old.astype(new.dtype), new], axis=1), rate)

    @staticmethod
    def soundtrack(pipe, audio_latents, stats: RunStats) -> AudioTrack:
        """Audio latents -> mel spectrogram (audio VAE) -> waveform (vocoder, in float32: Lightricks
        keeps it so on MPS, which has no float32 autocast)."""
        import torch

        t0 = time.perf_counter()
        vae, vocoder = pipe.audio_vae, pipe.vocoder
        with torch.inference_mode():
            for module in (vae, vocoder):  # model offload: bring each in
                if getattr(module, "_hf_hook", None) is not None:
                    module._hf_hook.pre_forward(module)
            mel = vae.decode(audio_latents.to(next(vae.parameters()).device, vae.dtype), return_dict=False)[0]
            wave = vocoder.float()(mel.float().to(next(vocoder.parameters()).device))
        stats.add("decode_audio", time.perf_counter() - t0)
        return AudioTrack(wave[0].float().cpu().numpy(), int(vocoder.config.output_sampling_rate))

    @staticmethod
    def prepare_loaded(pipe, device: str) -> None:
        # MPS has no float64: diffusers builds LTX-2's RoPE tables in float64 by default
        # (rope_double_precision), which fails there. Lightricks builds them in float64 on the
        # host and casts to float32; float32 throughout is the nearest diffusers allows.
        if device == "mps":
            for part in (pipe.transformer, pipe.connectors):
                for module in part.modules():
                    if getattr(module, "double_precision", False):
                        module.double_precision = False
        if getattr(pipe.transformer.config, "use_keyframes_abs_pos_embedding", False):
            pipe.transformer.register_forward_pre_hook(mark_first_latent_frame, with_kwargs=True)
        pipe.transformer.audio_prefix = None  # --extend: the original's sound, held (pipeline_for sets it)
        pipe.transformer.register_forward_pre_hook(hold_audio_prefix, with_kwargs=True)

    @staticmethod
    def prepare_tokenizer(tokenizer) -> None:
        """Every prompt starts with <bos>, as Lightricks' LTXGemmaTokenizer makes sure (ltx-core
        text_encoders/gemma/tokenizer.py: Gemma 3's tokenizer adds it, Gemma 4's does not, so it
        prepends it); diffusers' pipelines pass Gemma 4's tokens as the tokenizer gives them."""
        if tokenizer.bos_token_id is not None and tokenizer("a").input_ids[:1] != [tokenizer.bos_token_id]:
            tokenizer.add_bos_token = True

    @classmethod
    def attention_processors(cls, pipe, attend: Callable | None, rows: int | None) -> Any:
        """Per attention module: its own processor class (plain or perturbed, for STG), run with
        our attention in place of diffusers' dispatcher when chunking or a kernel is planned."""
        procs = {}
        for name, proc in pipe.transformer.attn_processors.items():
            stock = getattr(type(proc), "stock", type(proc))
            procs[name] = ltx2_processor(stock, rows, attend)() if rows else stock()
        return procs


# The families' attention processors and schedulers.


def mark_first_latent_frame(module, args, kwargs):
    """LTX-2.5's transformer learned a marker for the latent frames that hold a single pixel frame;
    ltx-core adds it to the first latent frame's tokens in every generation (tools.py), diffusers'
    image-to-video pipeline never passes the mask (only its DFR pipelines do): passed here."""
    if kwargs.get("video_keyframes_mask") is None:
        hidden = kwargs["hidden_states"]
        mask = hidden.new_zeros(hidden.shape[0], hidden.shape[1], 1)
        mask[:, :kwargs["height"] * kwargs["width"]] = 1.0  # tokens are frame-major: frame 0 comes first
        kwargs["video_keyframes_mask"] = mask
    return args, kwargs


def log_mel(wave, mel_bins: int):
    """ltx-core's AudioProcessor with torch alone (torchaudio's MelSpectrogram: hann window, centred
    with reflect padding, magnitude, slaney mel filters), then log(max(x, 1e-5)): [1, 2, frames, bins]."""
    import numpy as np
    import torch

    spec = torch.stft(wave.float(), MEL_FFT, MEL_HOP, MEL_FFT, torch.hann_window(MEL_FFT), center=True,
                      pad_mode="reflect", return_complex=True).abs()  # [2, freqs, frames]
    fb = torch.from_numpy(slaney_mel_filters(SOUNDTRACK_RATE, MEL_FFT, mel_bins)).float()
    return torch.log(torch.clamp(torch.einsum("mf,cft->ctm", fb, spec), min=MEL_FLOOR))[None]


def slaney_mel_filters(rate: int, n_fft: int, bins: int):
    """[bins, n_fft // 2 + 1] triangular filters on the slaney mel scale (linear below 1 kHz,
    logarithmic above), each normalized to unit area (norm="slaney"), 0 Hz to rate / 2."""
    import numpy as np

    step, log_step = 200 / 3, np.log(6.4) / 27

    def to_mel(hz):
        return np.where(hz >= 1000, 15 + np.log(np.maximum(hz, 1e-10) / 1000) / log_step, hz / step)

    def to_hz(mel):
        return np.where(mel >= 15, 1000 * np.exp(log_step * (mel - 15)), mel * step)

    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.float64(0)), to_mel(np.float64(rate / 2)), bins + 2))
    ramps = edges[:, None] - freqs[None]
    widths = np.diff(edges)
    filters = np.maximum(0, np.minimum(-ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def frozen_audio_scheduler(config):
    """The audio side of Lightricks' audio-to-video ("frozen": ltx-pipelines utils/blocks.py
    zeroes its denoise mask, helpers.py its sigma): every pass sees the sound at timestep 0 and no
    step changes it. As the condition pipeline's audio_scheduler; its noise is 0 (prepare_audio_latents)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    class Frozen(FlowMatchEulerDiscreteScheduler):
        def set_timesteps(self, num_inference_steps=None, device=None, sigmas=None, mu=None, timesteps=None):
            super().set_timesteps(num_inference_steps=num_inference_steps, device=device, sigmas=sigmas, mu=mu,
                                  timesteps=timesteps)
            self.timesteps = torch.zeros_like(self.timesteps)  # the transformer's audio timestep and sigma: 0
            self.sigmas = torch.ones_like(self.sigmas)  # keeps the pipeline's x0 <-> velocity conversions finite

        def step(self, model_output, timestep, sample, *args, return_dict=True, **kwargs):
            return (sample,)

    return Frozen.from_config(flow_match_config(config))


def context_frames(job: Job) -> int:
    """Frames a continuation starts from: an extension's context, a long clip's window overlap."""
    return job.extend.context if job.extend else EXTEND_CONTEXT


def context_sound(job: Job):
    """--extend: the original's sound over its last `context` frames, 16 kHz stereo (empty when
    the original is silent); a long clip's later window: the window before's, over its last frames."""
    if job.held_sound is not None:
        return job.held_sound
    wave = read_audio(job.extend.video, SOUNDTRACK_RATE)
    start = round((job.extend.frames - job.extend.context) / job.fps * SOUNDTRACK_RATE)
    return wave[:, start:start + round(job.extend.context / job.fps * SOUNDTRACK_RATE)]


def hold_audio_prefix(module, args, kwargs):
    """--extend on LTX-2: the audio tokens of the context frames are the original's sound, clean
    and at timestep 0 in every pass, as Lightricks keep audio they do not regenerate (retake.py:
    a per-token denoise mask of 0); the pipeline would noise and step them with the rest."""
    prefix = getattr(module, "audio_prefix", None)
    if prefix is None:
        return args, kwargs
    audio = kwargs["audio_hidden_states"].clone()
    audio[:, :prefix.shape[1]] = prefix.to(audio)
    t = kwargs["audio_timestep"]
    t = (t.view(-1, 1) if t.dim() == 1 else t).expand(audio.shape[0], audio.shape[1]).clone()
    t[:, :prefix.shape[1]] = 0
    return args, dict(kwargs, audio_hidden_states=audio, audio_timestep=t)


def sound_latents(pipe, wave, seconds: float):
    """16 kHz stereo sound as the audio VAE's un-normalized latents, exactly `seconds` long (25
    a second; a short sound padded with the latents' mean, which is silence's 0 once normalized,
    as Lightricks pad)."""
    import torch

    vae = pipe.audio_vae
    if getattr(vae, "_hf_hook", None) is not None:  # model offload: bring it in
        vae._hf_hook.pre_forward(vae)
    # the pipelines' own count: sampling rate / hop / the audio VAE's temporal compression
    need = round(seconds * SOUNDTRACK_RATE / MEL_HOP / vae.temporal_compression_ratio)
    with torch.no_grad():
        mel = log_mel(torch.from_numpy(wave), vae.config.mel_bins).to(next(vae.parameters()).device, vae.dtype)
        latents = vae.encode(mel).latent_dist.mode()  # [1, channels, frames / 4, mel_bins / 4]
    if latents.shape[2] < need:  # packed as [.., channel x mel bin]: the mean's layout (pipelines' _pack_audio_latents)
        _, channels, _, bins = latents.shape
        mean = vae.latents_mean.view(1, channels, 1, bins) if vae.latents_mean.numel() == channels * bins else \
            latents.new_zeros(1, channels, 1, bins)
        fill = mean.to(latents).expand(1, channels, need - latents.shape[2], bins)
        latents = torch.cat([latents, fill], dim=2)
    return latents[:, :, :need]


def ancestral_scheduler(config, seed: int):
    """Lightricks' ancestral Euler step for a distilled stage 1 (ltx-core diffusion_steps.py
    EulerAncestralDiffusionStep, eta ANCESTRAL_ETA): diffusers' LTXEulerAncestralRFScheduler, given
    the sigmas without their final 0 as every stage here is (it wants the 0: added, and no pass run
    at it), and its fresh noise from a generator of its own seeded `seed` (the pipeline steps it
    without one: torch's global generator otherwise)."""
    import torch
    from diffusers import LTXEulerAncestralRFScheduler

    class Seeded(LTXEulerAncestralRFScheduler):
        noise = None

        def set_timesteps(self, num_inference_steps=None, device=None, sigmas=None, **kwargs):
            sigmas = [float(x) for x in sigmas] + [0.0]
            super().set_timesteps(device=device, sigmas=sigmas)
            self.timesteps = self.timesteps[:-1]  # the pipeline runs one pass per timestep: none at sigma 0
            self.num_inference_steps = len(self.timesteps)

        def step(self, model_output, timestep, sample, generator=None, return_dict=True):
            if self.noise is None or self.noise.device != sample.device:
                self.noise = torch.Generator(sample.device).manual_seed(seed)
            return super().step(model_output, timestep, sample, generator=self.noise, return_dict=return_dict)

    return Seeded.from_config(config, eta=ANCESTRAL_ETA, s_noise=1.0)


def use_scheduler(pipe, name: str | None) -> None:
    """The scheduler the model's authors run it with (THUDM's demo: DPM, trailing spacing)."""
    if name and type(pipe.scheduler).__name__ != name:
        import diffusers

        pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config, timestep_spacing="trailing")


def use_fixed_schedule(pipe) -> None:
    """Custom (distilled) timesteps are the sigmas themselves: no dynamic shift (diffusers would
    demand `mu`), no static shift, no stretch to a terminal value (0.9.0/0.9.1 configs say 0.1)."""
    cfg = pipe.scheduler.config
    if cfg.get("use_dynamic_shifting") or cfg.get("shift", 1.0) != 1.0 or cfg.get("shift_terminal") or \
            type(pipe.scheduler).__name__ != "FlowMatchEulerDiscreteScheduler":  # a previous stage's sampler
        from diffusers import FlowMatchEulerDiscreteScheduler

        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(
            flow_match_config(cfg), use_dynamic_shifting=False, shift=1.0, shift_terminal=None)


def flow_match_config(config) -> dict:
    """A scheduler's config as FlowMatchEulerDiscreteScheduler takes it (without the ancestral
    sampler's eta and s_noise, which it would warn about)."""
    import inspect

    from diffusers import FlowMatchEulerDiscreteScheduler

    known = inspect.signature(FlowMatchEulerDiscreteScheduler.__init__).parameters
    return {k: v for k, v in config.items() if k in known}


def attention_fn(rows: int, attend: Callable | None) -> Callable:
    """q, k, v, mask -> out ([B, H, L, D]): `attend` (a Metal kernel), else chunks of `rows`."""
    if attend is not None:
        return attend
    return lambda q, k, v, mask: chunked_attention(q, k, v, mask, rows)


def ltx_chunked_processor(rows: int, attend: Callable | None = None) -> type:
    """LTX-Video's attention processor with chunked_attention (or `attend`) in place of SDPA."""
    from diffusers.models.transformers.transformer_ltx import LTXVideoAttnProcessor, apply_rotary_emb

    attend = attention_fn(rows, attend)

    class ChunkedLTXAttnProcessor(LTXVideoAttnProcessor):
        chunk_rows = rows

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                     image_rotary_emb=None):
            batch_size, sequence_length, _ = (
                hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape)
            if attention_mask is not None:
                attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
                attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
            if encoder_hidden_states is None:
                encoder_hidden_states = hidden_states
            query = attn.norm_q(attn.to_q(hidden_states))
            key = attn.norm_k(attn.to_k(encoder_hidden_states))
            value = attn.to_v(encoder_hidden_states)
            if image_rotary_emb is not None:
                query = apply_rotary_emb(query, image_rotary_emb)
                key = apply_rotary_emb(key, image_rotary_emb)
            # [B, L, H*D] -> [B, H, L, D]
            query, key, value = (t.unflatten(2, (attn.heads, -1)).transpose(1, 2) for t in (query, key, value))
            hidden_states = attend(query, key, value, attention_mask)
            hidden_states = hidden_states.transpose(1, 2).flatten(2, 3).to(query.dtype)
            return attn.to_out[1](attn.to_out[0](hidden_states))

    return ChunkedLTXAttnProcessor


def cogvideox_chunked_processor(rows: int, attend: Callable | None = None) -> type:
    """CogVideoX's attention processor with chunked_attention (or `attend`) in place of SDPA."""
    import torch
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
    from diffusers.models.embeddings import apply_rotary_emb as cog_rotary

    attend = attention_fn(rows, attend)

    class ChunkedCogVideoXAttnProcessor(CogVideoXAttnProcessor2_0):
        chunk_rows = rows

        def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None,
                     image_rotary_emb=None):
            text_len = encoder_hidden_states.size(1)
            hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
            batch_size, sequence_length, _ = hidden_states.shape
            if attention_mask is not None:
                attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
                attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
            head_dim = key.shape[-1] // attn.heads
            query, key, value = (t.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
                                 for t in (query, key, value))
            if attn.norm_q is not None:
                query = attn.norm_q(query)
            if attn.norm_k is not None:
                key = attn.norm_k(key)
            if image_rotary_emb is not None:
                query[:, :, text_len:] = cog_rotary(query[:, :, text_len:], image_rotary_emb)
                if not attn.is_cross_attention:
                    key[:, :, text_len:] = cog_rotary(key[:, :, text_len:], image_rotary_emb)
            hidden_states = attend(query, key, value, attention_mask)
            hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
            hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
            encoder_out, video_out = hidden_states.split([text_len, hidden_states.size(1) - text_len], dim=1)
            return video_out, encoder_out

    return ChunkedCogVideoXAttnProcessor


def ltx2_processor(stock: type, rows: int, attend: Callable | None) -> type:
    """`stock`'s own __call__ with `dispatch_attention_fn` (q, k, v as [B, L, H, D]) bound to
    chunked_attention or a kernel: no copy of diffusers' processor code to drift from it."""
    import types

    attend = attention_fn(rows, attend)

    def dispatch(query, key, value, attn_mask=None, **_):
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))
        out = attend(q, k, v, attn_mask)
        return out.transpose(1, 2)

    call = stock.__call__
    patched = types.FunctionType(call.__code__, dict(call.__globals__, dispatch_attention_fn=dispatch),
                                 call.__name__, call.__defaults__, call.__closure__)
    return type(f"Chunked{stock.__name__}", (stock,), {"__call__": patched, "stock": stock})


# ----------------------------------------------------------------------------------------------
# 10. Stages: the image, the prompts, the denoising stages through the family's hooks


def prepare_image(path: Path, width: int, height: int, blur_sigma: float = 0.0, crf: int = 0):
    """The conditioning image: RGB, center-cropped to width:height (never stretched), then as
    Lightricks' load_image_to_tensor_with_resize_and_crop does for LTX: at the cropped source
    resolution a 3x3 gaussian blur and an H.264 encode/decode at `crf`; then resized to exactly
    width x height (Lanczos; Lightricks resizes bilinearly without antialiasing)."""
    return condition_frame(read_rgb(path), width, height, blur_sigma, crf)


def read_rgb(path: Path):
    """The image file as the user sees it: upright (EXIF), transparency flattened onto white, 8-bit RGB."""
    from PIL import Image, ImageOps

    with open_image(path) as im:
        im = ImageOps.exif_transpose(im)  # phone photos: honour the orientation tag
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            base = Image.new("RGB", im.size, (255, 255, 255))  # flatten transparency onto white
            base.paste(im.convert("RGBA"), mask=im.convert("RGBA").split()[-1])
            im = base
        return to_rgb8(im)


def condition_frame(im, width: int, height: int, blur_sigma: float = 0.0, crf: int = 0):
    """One RGB picture prepared for conditioning as Lightricks prepares every conditioning frame
    (an image, or each frame of a video: ltx_video/inference.py's load_media_file runs every frame
    through load_image_to_tensor_with_resize_and_crop): center crop to width:height at the source
    resolution, 3x3 gaussian blur, H.264 round trip at `crf`, then resized to width x height."""
    from PIL import Image

    im = crop_to_aspect(im, width / height)
    if blur_sigma or crf:
        pixels = gaussian_blur_3x3(im, blur_sigma) if blur_sigma else im
        if crf:
            pixels = h264_roundtrip(pixels, crf)
        else:
            pixels = (pixels * 255).round().astype("uint8")
        im = Image.fromarray(pixels)
    return im if im.size == (width, height) else im.resize((width, height), Image.Resampling.LANCZOS)


def to_rgb8(im):
    """8-bit RGB. High-bit-depth images are scaled by their real range: PIL's own conversion
    clips 16- and 32-bit integers at 255 (an almost white picture) and floats at 0..255 (black)."""
    import numpy as np
    from PIL import Image

    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return im.convert("RGB")
    a = np.asarray(im, dtype=np.float64)
    lo, hi = min(float(a.min()), 0.0), float(a.max())
    if im.mode == "F":
        top = 1.0 if lo == 0 and hi <= 1.0 else hi  # floats: 0..1 by convention, else their span
    else:
        top = next((v for v in (255, 65535, 2**31 - 1) if hi <= v), hi)  # 8-, 16- or 32-bit data
    scaled = (a - lo) / max(top - lo, 1e-12) * 255.0
    return Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")


def crop_to_aspect(im, aspect: float):
    """Center crop to width/height = aspect, at the source resolution (Lightricks' arithmetic)."""
    w, h = im.size
    if w / h > aspect:
        new_w = int(h * aspect)
        left = (w - new_w) // 2
        return im.crop((left, 0, left + new_w, h))
    new_h = int(w / aspect)
    top = (h - new_h) // 2
    return im.crop((0, top, w, top + new_h))


def gaussian_blur_3x3(im, sigma: float):
    """torchvision's gaussian_blur(kernel_size=3, sigma) on [0, 1] floats, reflect padding:
    float32 [H, W, 3]."""
    import numpy as np

    x = np.asarray(im, dtype=np.float32) / 255.0
    k = np.exp(-0.5 * (np.array([-1.0, 0.0, 1.0]) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    rows = k[0] * p[:-2] + k[1] * p[1:-1] + k[2] * p[2:]  # vertical pass
    return k[0] * rows[:, :-2] + k[1] * rows[:, 1:-1] + k[2] * rows[:, 2:]


def h264_roundtrip(pixels, crf: int):
    """One frame through libx264 (yuv420p, preset veryfast) and back, as Lightricks'
    crf_compressor does with PyAV: floats are truncated to uint8 first, odd sizes lose their
    last row/column. Returns uint8 [H, W, 3]."""
    import tempfile

    import imageio_ffmpeg
    import numpy as np

    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        a = (a * 255.0).astype(np.uint8)  # torch's .byte(): truncation
    a = np.ascontiguousarray(a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2])
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "frame.mp4")
        try:
            writer = imageio_ffmpeg.write_frames(
                path, (a.shape[1], a.shape[0]), fps=1, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                quality=None, macro_block_size=1, ffmpeg_log_level="error",
                output_params=["-crf", str(crf), "-preset", "veryfast"])
            writer.send(None)
            writer.send(a)
            writer.close()
            reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
            meta = next(reader)
            frame = np.frombuffer(next(reader), np.uint8).reshape(meta["size"][1], meta["size"][0], 3).copy()
            reader.close()
        except (OSError, StopIteration) as e:  # a full temp disk, a file size limit
            raise RunError(f"preparing the image (its H.264 round trip in {tmp}) failed: "
                           f"{first_line(e, 'ffmpeg stopped')}") from None
    return frame


def video_condition(frames, size: tuple[int, int], spec: ModelSpec) -> list:
    """uint8 [H, W, 3] frames (the end of a video to continue) as a video condition: each
    prepared as a conditioning image is (condition_frame: crop, the model's blur and CRF, resize
    to the generation size)."""
    from PIL import Image

    return [condition_frame(Image.fromarray(f), *size, spec.image_blur_sigma, spec.image_crf) for f in frames]


def make_generator(device: str, seed: int):
    """A generator on the execution device. On CPU this is torch.Generator("cpu"), so frames equal
    a direct diffusers call; on MPS a CPU generator would break LTX's decode noise, which is drawn
    with torch.randn(generator=..., device=device) (NOTES.md)."""
    import torch

    return torch.Generator(device=device).manual_seed(seed)


def warn_long_prompts(pipe, jobs: Sequence[Job], limit: int, log: Log) -> None:
    """One short line per prompt longer than the model reads (diffusers' own warning prints the
    whole cut-off tail, 60 KB for a long paste)."""
    for prompt in dict.fromkeys(t for j in jobs for t in (*(j.segments or (j.request.prompt,)), j.negative_prompt)):
        ids = pipe.tokenizer(prompt, add_special_tokens=True, verbose=False).input_ids
        if len(ids) > limit:
            kept = pipe.tokenizer.decode(ids[:limit - 1], skip_special_tokens=True)
            log.warn(f"a prompt is {len(ids)} tokens and the model reads the first {limit}: "
                     f"everything after \"...{kept[-40:]}\" is ignored")


class Prompts(dict):
    """{prompt_key: the pipeline's prompt embeddings}; `rewritten`: {prompt_key: the enhancer's
    rewrite} for jobs with --enhance-prompt."""

    rewritten: dict[tuple, str]


def prompt_key(job: Job, prompt: str) -> tuple:
    """What one encoding serves: the prompt, negative prompt and guidance; under --enhance-prompt
    also what the rewrite depends on (the image, the seed)."""
    return (prompt, job.negative_prompt, job.cfg) + ((str(job.request.image), job.seed)
                                                      if job.request.enhance_prompt else ())


def encode_prompts(rt: Runtime, pipe, jobs: Sequence[Job], offload: str = "none",
                   processor: Path | None = None) -> Prompts:
    """Every distinct prompt_key once, with the text encoder on the device (layer by layer under
    sequential offload), after the enhancer's rewrites (`processor`: its folder); then the text
    encoder is freed."""
    import torch
    from diffusers.utils import logging as dlog

    family, device = jobs[0].family, rt.device
    warn_long_prompts(pipe, jobs, family.max_sequence_length, rt.log)
    cache = Prompts()
    verbosity = dlog.get_verbosity()
    if rt.log.level < LOG_VERBOSE:
        dlog.set_verbosity_error()  # the truncation warning is ours, above
    try:
        if offload == "sequential" and device != "cpu":
            from accelerate import cpu_offload

            cpu_offload(pipe.text_encoder, execution_device=torch.device(device))
        else:
            pipe.text_encoder.to(device)
        cache.rewritten = enhance_prompts(rt, pipe, jobs, processor)
        with torch.no_grad():  # not inference_mode: quanto's int4 weights fail under it
            for job, prompt in ((j, p) for j in jobs for p in (j.segments or (j.request.prompt,))):
                key = prompt_key(job, prompt)
                if key in cache:
                    continue
                out = pipe.encode_prompt(prompt=cache.rewritten.get(key, prompt), negative_prompt=job.negative_prompt,
                                         do_classifier_free_guidance=job.cfg, device=torch.device(device),
                                         max_sequence_length=family.max_sequence_length)
                cache[key] = {k: (v.to(rt.dtype) if v.is_floating_point() else v)
                              for k, v in zip(family.embed_names, out) if v is not None}
    finally:
        dlog.set_verbosity(verbosity)
    release_text_encoder(pipe, device)
    return cache


def enhance_prompts(rt: Runtime, pipe, jobs: Sequence[Job], processor: Path | None) -> dict[tuple, str]:
    """--enhance-prompt: each such job's prompt rewritten by its family's enhancer, which reads it
    with the job's image (the text encoder, already on the device, writes); each rewrite printed."""
    wanted = {prompt_key(j, j.request.prompt): j for j in jobs if j.request.enhance_prompt}
    if not wanted:
        return {}
    from transformers import AutoProcessor

    with quiet_libraries(rt.log):
        pipe.register_modules(processor=AutoProcessor.from_pretrained(processor))
    rewritten = {}
    for key, job in wanted.items():
        t0 = time.perf_counter()
        rewritten[key] = job.family.enhance(pipe, job.request.prompt, read_rgb(job.request.image), job.seed,
                                            rt.device)
        rt.log.info(f"  enhanced prompt ({describe_seconds(time.perf_counter() - t0)}, seed {job.seed}): "
                    f"{rewritten[key]}")
    pipe.register_modules(processor=None)
    return rewritten


class NonFiniteError(RuntimeError):
    def __init__(self, stage: str, step: int):
        super().__init__(f"NaN/inf latents in {stage} at step {step + 1}")


def device_memory_bytes(device: str) -> int:
    import torch

    if device == "mps":
        return int(torch.mps.driver_allocated_memory())
    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    return 0


def _step_callback(stats: RunStats, device: str, stage: Stage, progress: Progress, keep: Callable | None = None,
                   replay: Replay | None = None):
    """Per step: time it, track device memory, stop on NaN/inf latents (a broken video), show the
    stage's progress, and `keep` the state (a Resume's step_done); a resumed stage's replayed steps
    only put the saved state back (`replay`)."""
    import torch

    last, mine, steps = [time.perf_counter()], [], stage.steps

    def callback(pipe, i, t, kwargs):
        if replay is not None and replay.replaying(i, kwargs):
            last[0] = time.perf_counter()
            return {}
        latents = kwargs["latents"]
        if not bool(torch.isfinite(latents).all()):
            raise NonFiniteError(stage, i)
        now = time.perf_counter()
        stats.step_seconds.append(round(now - last[0], 4))
        mine.append(now - last[0])
        last[0] = now
        notice_throttling(stats, stage.name, mine, progress.log)
        stats.device_peak_bytes = max(stats.device_peak_bytes, device_memory_bytes(device))
        progress.update((i + 1) / steps, f"step {i + 1}/{steps}")
        if keep is not None and i + 1 < steps:  # after the last, the stage's end is saved
            keep(i + 1, kwargs)
        return {}

    return callback


THROTTLE_RATIO = 1.5  # a stage's recent steps this much slower than its first ones: the Mac is slowing down
THROTTLE_MIN_STEP = 0.5  # s: steps shorter than this vary with the scheduler's whims, not with heat


def notice_throttling(stats: RunStats, stage: str, seconds: list[float], log: Log) -> None:
    """Identical steps that get slower mean a hot Mac lowering its GPU clock (identical runs were
    reported at 517 s, then 998 s): said once, recorded in the sidecar. The median of a stage's
    3 latest steps against its 3 first after the first (which warms up)."""
    import statistics

    if stats.throttling or len(seconds) < 7:
        return
    first, latest = statistics.median(seconds[1:4]), statistics.median(seconds[-3:])
    if latest > THROTTLE_RATIO * first and latest >= THROTTLE_MIN_STEP:
        stats.throttling = {"stage": stage, "step": len(seconds), "first_steps_s": round(first, 3),
                            "latest_steps_s": round(latest, 3)}
        log.warn(f"steps are getting slower ({first:.2f} s, now {latest:.2f} s each): the Mac may be "
                 "throttling; plug it in, keep it cool, or close other apps that use the GPU")


class CpuFallbacks:
    """Operators MPS ran on the CPU (PYTORCH_ENABLE_MPS_FALLBACK=1 warns once per op): they work,
    but slowly, and a user should know where the time went."""

    def __init__(self, caught: list):
        self.caught = caught

    def ops(self) -> list[str]:
        found = set()
        for w in self.caught:
            text = str(w.message)
            if "fall back to run on the CPU" in text:
                match = re.search(r"operator '([^']+)'", text)
                found.add(match.group(1) if match else text[:80])
        return sorted(found)


@contextlib.contextmanager
def record_cpu_fallbacks(log: Log):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        fallbacks = CpuFallbacks(caught)
        try:
            yield fallbacks
        finally:
            ops = fallbacks.ops()
            if ops:
                log.warn(f"ran on the CPU (no MPS kernel, slower): {', '.join(ops)}")


def denoise(rt: Runtime, model: Loaded, job: Job, embeds: dict, image, generator):
    """Every stage of the job, through its family's hooks: the stage's call, the upscale and
    hand-over between stages, what a stage returns. Returns latents ready for decoding
    (normalized, unpacked); a family with sound leaves its soundtrack in rt.stats.audio."""
    family, pipe = job.family, model.pipe
    pipe.set_progress_bar_config(disable=True)  # our own display covers every stage (Progress)
    carried: dict = {}
    for index, stage in enumerate(job.stages):
        reseed_stage(generator, job, index)
        finished = rt.resume.finished_stage(index, generator) if rt.resume else None
        if finished is not None:  # a stopped run had finished this stage: its output is saved
            carried = {k: v.to(rt.device) for k, v in finished.items()}
            rt.stats.stage_shapes[stage.name] = list(carried["latents"].shape)
            continue
        if stage.reused:
            carried = load_draft_latents(Path(stage.reused), rt.device)
            rt.log.info(f"{stage.name}: reused from the draft ({Path(stage.reused).name}): no transformer passes")
            rt.stats.stage_shapes[stage.name] = list(carried["latents"].shape)
            continue
        set_lora_pass(pipe, model.loras, stage.name)
        kwargs = family.stage_call(pipe, job, stage, embeds, image, generator)
        rt.log.info(stage_line(stage, family.stage_note))
        if index > 0:
            if model.upsampler is not None:
                carried["latents"] = upsample_latents(rt, model, carried["latents"])
            family.continue_from(pipe, kwargs, stage, carried)
        out = run_stage(rt, family.pipeline_for(pipe, job, rt.log), kwargs, stage, index, family)
        carried = family.stage_result(pipe, out, job, stage)
        rt.stats.stage_shapes[stage.name] = list(carried["latents"].shape)
        if rt.resume:
            rt.resume.stage_done(index, carried, generator)
    if job.draft:  # what stage 2 of its final starts from (LTX-2: the sound's latents too)
        save_draft_latents(carried, job, rt.stats)
    return family.finish(pipe, carried, job, rt)


def denoise_window(rt: Runtime, model: Loaded, job: Job, window: int, run: Callable, generator):
    """One window's latents ready for decoding: `run()` (denoise), or for a window a stopped run
    had finished, its saved latents and its generator as denoising left it (the decode draws)."""
    resume = rt.resume
    if resume is None:
        return run()
    resume.in_window(window)
    saved = resume.window_output(window)
    if saved is not None:
        generator.set_state(saved["rng"])
        if "sound" in saved:  # the window's soundtrack, as its family's finish made it
            rt.stats.audio = AudioTrack(saved["sound"].numpy(), int(saved["sound_rate"]))
        return saved["latents"].to(rt.device)
    latents = run()
    if job.windows > 1:
        resume.window_done(window, latents, generator, rt.stats.audio)
    return latents


def reseed_stage(generator, job: Job, index: int) -> None:
    """Each later stage starts from its own seed, not from whatever stage 1 left in the
    generator: so a final made from a draft's saved latents equals a run from scratch."""
    if index > 0:
        generator.manual_seed((job.seed + index * STAGE_SEED_STRIDE) % 2**63)


def stage_line(stage: Stage, note: str = "") -> str:
    return f"{stage.name}: {stage.width}x{stage.height}, " + (
        f"{len(stage.timesteps)} timesteps" if stage.timesteps else f"{stage.steps} steps") + note


def run_stage(rt: Runtime, pipe, kwargs: dict, stage: Stage, index: int, family: type[Family]):
    """One stage's pipeline call with our progress display and NaN guard, timed into rt.stats, its
    state kept for resuming (rt.resume; a resumed stage replays its finished steps). no_grad, not
    inference_mode: quanto's int4 weights (LTX-2) fail under inference mode."""
    import torch

    stats, resume, generator = rt.stats, rt.resume, kwargs.get("generator")
    done = resume.replayed_steps(index) if resume else 0
    keep = None
    if resume is not None:
        if family.step_tensors != ("latents",):  # the pipeline hands its callback the others too
            known = getattr(pipe, "_callback_tensor_inputs", ["latents"])
            pipe._callback_tensor_inputs = list(dict.fromkeys([*known, *family.step_tensors]))
            kwargs["callback_on_step_end_tensor_inputs"] = list(family.step_tensors)
        keep = lambda step, tensors: resume.step_done(  # noqa: E731
            index, step, {k: tensors.get(k) for k in family.step_tensors}, generator)
    replay = Replay(pipe, family, done, resume.saved_steps(), generator) if done else None
    kwargs["callback_on_step_end"] = _step_callback(stats, rt.device, stage,
                                                    Progress(rt.log, stage.name, stats.started, done / stage.steps),
                                                    keep, replay)
    t0 = time.perf_counter()
    with torch.no_grad(), quiet_libraries(rt.log, bars=True), replay or contextlib.nullcontext():
        out = pipe(**kwargs)
    stats.stage_seconds[stage.name] = round(time.perf_counter() - t0, 3)
    stats.add("denoise", time.perf_counter() - t0)
    return out


def upsample_latents(rt: Runtime, model: Loaded, latents):
    """2x spatial latent upscale between the stages (the family's upsample pipeline)."""
    import diffusers
    import torch

    name, options = model.family.upsample_pipeline
    device, stats, upsampler = rt.device, rt.stats, model.upsampler
    t0 = time.perf_counter()
    rt.log.info(f"upsample: latents {tuple(latents.shape[-2:])} -> 2x")
    moved = next(upsampler.parameters()).device.type != device
    if moved:
        upsampler.to(device)
    up = getattr(diffusers, name)(vae=model.pipe.vae, latent_upsampler=upsampler)
    with torch.inference_mode():
        out = up(latents=latents.to(device), output_type="latent", return_dict=False, **options)[0]
    if moved:
        upsampler.to("cpu")
        empty_device_cache(device)
    stats.stage_seconds["upsample"] = round(time.perf_counter() - t0, 3)
    stats.stage_shapes["upsample"] = list(out.shape)
    stats.add("denoise", time.perf_counter() - t0)
    return out


def load_draft_latents(path: Path, device: str) -> dict:
    """A draft's stage-1 output as stage 2 takes it: {"latents": ..., and the family's others}."""
    from safetensors.torch import load_file

    return {k: v.to(device) for k, v in load_file(str(path)).items()}


def save_draft_latents(carried: dict, job: Job, stats: RunStats) -> None:
    """A draft's stage-1 output (every tensor its family hands to stage 2), to a temp file
    published with its video (stats.extra_files)."""
    from safetensors.torch import save_file

    tmp = temp_path(job.latents_file, "safetensors")
    stats.extra_files.append((tmp, job.latents_file))
    save_file({k: v.detach().contiguous().cpu() for k, v in carried.items()}, str(tmp),
              metadata={"shaping_sha256": dict_sha256(draft_shaping(job))})
    stats.latents_sha256 = file_sha256(tmp)


class Resume:
    """A job's saved state while it denoises, kept in resume_path(output) so that the same command
    resumes a stopped run: the outputs of the windows and stages already finished, and inside the
    running stage its step tensors (the family's step_tensors) and its generator's state, with a
    record of everything that shaped them (resume_shaping). Written atomically at most every
    RESUME_SAVE_SECONDS (or every step, when steps are slower) and at each stage's end; removed
    when the video lands. A resumed stage replays its finished steps without transformer passes
    (family.skipped_pass), so the pipeline's own noise, scheduler and conditioning follow the
    same course, then takes the saved tensors and generator state in place: the video equals an
    uninterrupted run's."""

    def __init__(self, job: Job, shaping: dict, log: Log):
        self.job, self.shaping, self.log = job, shaping, log
        self.path = resume_path(job.output)
        self.at = (0, 0, 0)  # (window, stage, step) the saved state resumes at
        self.saved: dict = {}  # the loaded state's tensors, by name
        self.windows: dict[int, dict] = {}  # finished windows' outputs: {"latents", "rng"} each
        self.carried: dict = {}  # the current window's last finished stage's output
        self.window = 0
        self.kept: str | None = None  # where the last save of this run resumes ("stage 1 step 5/7")
        self.broken = False  # a save failed (a full disk): no more tries this run
        self.last_save = time.perf_counter()
        self.record: dict | None = None  # what was resumed from (the sidecar's "resumed")

    @classmethod
    def open(cls, job: Job, shaping: dict, log: Log) -> Resume:
        """This job's state keeper; if a stopped run of the same job left its state, loaded."""
        resume = cls(job, shaping, log)
        record = read_resume_record(job.output)
        if record is None:
            return resume
        changed = [RESUME_SHAPING_WORDS.get(k, k) for k in dict.fromkeys([*shaping, *record["shaping"]])
                   if shaping.get(k) != record["shaping"].get(k)]
        if changed:
            log.info(f"a stopped run of {job.output.name} left its state, made with other {', '.join(changed)}: "
                     "starting fresh")
            return resume
        resume.load(record)
        return resume

    def load(self, record: dict) -> None:
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(self.path))
            why = self.invalid(record, tensors)
        except Exception as e:  # a damaged file (safetensors' own error type, a cut-off file): start over
            why = f"unreadable ({e.__class__.__name__})"
        if why:
            self.log.info(f"the saved state of a stopped run ({self.path.name}) is {why}: starting fresh")
            return
        window, stage, step = (record[k] for k in ("window", "stage", "step"))
        self.at, self.saved = (window, stage, step), tensors
        self.record = {k: record.get(k) for k in ("window", "stage", "step", "saved_at")}
        for name, value in tensors.items():
            kind, _, rest = name.partition(".")
            if kind.startswith("w") and kind[1:].isdigit():  # a finished window's output
                self.windows.setdefault(int(kind[1:]), {})[rest] = value
        ended = max(0.0, self.path.stat().st_mtime - float(record["saved_at"]))
        self.log.info(f"resuming from {self.where(window, stage, step)} "
                      f"(saved {describe_seconds(ended)} before the run ended)")

    def invalid(self, record: dict, tensors: dict) -> str | None:
        """Why a saved state cannot be resumed (None: it can): not as this tool wrote it (its
        checksum), or a resume point this job does not have."""
        if record.get("sha256") != state_digest(tensors, {k: v for k, v in record.items() if k != "sha256"}):
            return "changed or damaged since it was saved"
        window, stage, step = (record.get(k) for k in ("window", "stage", "step"))
        stages = self.job.stages
        if not all(type(v) is int for v in (window, stage, step)) or not 0 <= window < self.job.windows \
                or not 0 <= stage <= len(stages) or not 0 <= step < (stages[stage].steps if stage < len(stages) else 1):
            return f"at a point this job does not have (window {window}, stage {stage}, step {step})"
        need = ["carried.latents"] * (stage > 0) + ["now.latents", "now.rng"] * (step > 0) + [
            f"w{w}.{k}" for w in range(window) for k in ("latents", "rng")]
        missing = [k for k in need if k not in tensors]
        return f"missing {', '.join(missing)}" if missing else None

    def where(self, window: int, stage: int, step: int) -> str:
        """A resume point in words: "stage 2 step 3/8", "window 2, stage 1 step 4/7", "the decode"."""
        stages = self.job.stages
        where = f"stage {stage + 1} step {step}/{stages[stage].steps}" if stage < len(stages) else "the decode"
        return f"window {window + 1}, {where}" if self.job.windows > 1 else where

    def in_window(self, window: int) -> None:
        self.window, self.carried = window, {}

    def window_output(self, window: int) -> dict | None:
        """A window finished before the stop: {"latents", "rng"} (its generator after denoising)."""
        return self.windows.get(window) if window < self.at[0] else None

    def finished_stage(self, index: int, generator) -> dict | None:
        """The output of the stage before `index + 1`, if the stopped run had finished stage `index`;
        after the last finished one the generator is as that stage left it (the decode draws)."""
        if self.window != self.at[0] or index >= self.at[1]:
            return None
        if index == self.at[1] - 1 and "now.rng" in self.saved:
            generator.set_state(self.saved["now.rng"])
        return {k.split(".", 1)[1]: v for k, v in self.saved.items() if k.startswith("carried.")}

    def replayed_steps(self, index: int) -> int:
        """Steps of stage `index` the stopped run had finished (replayed without passes)."""
        return self.at[2] if (self.window, index) == self.at[:2] else 0

    def saved_steps(self) -> dict:
        return {k.split(".", 1)[1]: v for k, v in self.saved.items() if k.startswith("now.")}

    def window_done(self, window: int, latents, generator, sound) -> None:
        import torch

        self.windows[window] = {"latents": latents, "rng": generator.get_state()}
        if sound is not None:
            self.windows[window] |= {"sound": torch.from_numpy(sound.samples.copy()), "sound_rate": torch.tensor(sound.rate)}

    def stage_done(self, index: int, carried: dict, generator) -> None:
        """Stage `index` finished: kept, and saved at once (the next stage resumes from it)."""
        self.carried = dict(carried)  # as it was: the next stage upscales carried["latents"] in place
        self.save(index + 1, 0, {}, generator)

    def step_done(self, index: int, step: int, tensors: dict, generator) -> None:
        """After a step of stage `index`: saved if RESUME_SAVE_SECONDS passed since the last save."""
        with contextlib.suppress(OSError):
            os.utime(self.path)  # the last sign of life ("saved 12 s before the run ended")
        if time.perf_counter() - self.last_save >= RESUME_SAVE_SECONDS:
            self.save(index, step, tensors, generator)

    def save(self, stage: int, step: int, tensors: dict, generator) -> None:
        """The state as it is now, written to a temp file then renamed over the last one."""
        from safetensors.torch import save_file

        if self.broken:
            return
        state = {f"now.{k}": v for k, v in tensors.items() if v is not None}
        state |= {f"carried.{k}": v for k, v in self.carried.items()}
        state |= {f"w{w}.{k}": v for w, out in self.windows.items() for k, v in out.items()}
        if generator is not None:
            state["now.rng"] = generator.get_state()
        record = {"seed": self.job.seed, "window": self.window, "stage": stage, "step": step,
                  "saved_at": time.time(), "shaping": self.shaping}
        state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        record["sha256"] = state_digest(state, record)
        try:
            tmp = temp_path(self.job.output, "safetensors")
            try:
                save_file(state, str(tmp), metadata={"resume": json.dumps(record)})
                with signals_deferred():
                    os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
        except Exception as e:  # a full disk (safetensors' own error type too): the run goes on without
            self.broken = True  # a way back; the video's own write will meet the disk, and say so
            self.log.verbose(f"the state to resume from was not saved: {first_line(e, 'write failed')}")
            return
        self.kept = self.where(self.window, stage, step)
        self.last_save = time.perf_counter()

    def remove(self) -> None:
        """The video landed: nothing left to resume."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def state_digest(tensors: dict, record: dict) -> str:
    """SHA-256 of a resume state's tensors (names, dtypes, shapes, bytes) and its record: a state
    edited by hand or damaged on disk is never resumed from."""
    import hashlib

    import torch

    h = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{list(t.shape)}".encode())
        h.update(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


RESUME_SHAPING_WORDS = {"command": "settings", "inputs": "input files", "model": "model weights", "device": "device",
                        "dtype": "precision",
                        "numerics": "attention or VAE settings", "versions": "library versions"}


class Replay:
    """A resumed stage's first `steps` steps run without the transformer (family.skipped_pass
    answers in its place); at the last of them the saved step tensors and generator state are
    put in place, and the transformer answers again."""

    def __init__(self, pipe, family: type[Family], steps: int, saved: dict, generator):
        self.transformer, self.family, self.steps = pipe.transformer, family, steps
        self.saved, self.generator = saved, generator
        self.own = self.transformer.__dict__.get("forward")  # accelerate's offload wraps forward per instance

    def __enter__(self) -> Replay:
        family, transformer = self.family, self.transformer
        transformer.forward = lambda *args, **kwargs: family.skipped_pass(transformer, kwargs)
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def restore(self) -> None:
        if self.own is not None:
            self.transformer.forward = self.own
        else:
            self.transformer.__dict__.pop("forward", None)

    def replaying(self, i: int, tensors: dict) -> bool:
        """True for a replayed step (nothing else to do for it); at the last, the state is put back."""
        if i >= self.steps:
            return False
        if i == self.steps - 1:
            for name, value in self.saved.items():
                if name == "rng":
                    self.generator.set_state(value)
                elif tensors.get(name) is not None:
                    tensors[name].copy_(value)
            self.restore()
        return True


# ----------------------------------------------------------------------------------------------
# 11. Decode and files: frames out, the MP4 and its sidecar published as one unit
# Every output is written under a temporary name beside its target, named
# .<stem>.<host>-<pid>.<random>.partial.<ext> so that a later run can tell a leftover of a killed
# run of ours (SIGKILL, power loss) from a file of anyone else's, and moved into place only when
# complete. A video and its sidecar land together or not at all.


def generate(rt: Runtime, model: Loaded, job: Job, embeds) -> Iterator:
    """Frames of the finished video as uint8 [f, height, width, 3] chunks, in order. `embeds`:
    the encoded prompt, or a function from a prompt to it (a long clip has one per window)."""
    import collections

    pick = embeds if callable(embeds) else (lambda prompt: embeds)
    size = job.image_size or (job.gen_width, job.gen_height)
    skip = 0
    if job.extend is not None:  # the original first (its own frames, untouched), then the new part
        tail = collections.deque(maxlen=job.extend.context)  # one read of the video serves both
        for chunk in video_chunks(job.extend.video):
            tail.extend(chunk)
            if not job.extend.only:
                yield fit_frames(chunk, job.width, job.height)
        image = [video_condition(tail, size, job.spec)]  # frame 0 is the original's last frames
        skip = job.extend.context  # the new part's first frames re-make the original's last: dropped
    else:
        image = prepare_image(job.request.image, *size, job.spec.image_blur_sigma, job.spec.image_crf)
    if job.conditions:  # every pinned image is prepared as the first one is
        image = (image if isinstance(image, list) else [image]) + [
            prepare_image(c.path, *size, job.spec.image_blur_sigma, job.spec.image_crf) for c in job.conditions]
    context: collections.deque = collections.deque()  # the window before's last frames (generation size)
    sounds: list[AudioTrack] = []  # each window's soundtrack (a family with sound)
    for window, prompt in enumerate(job.segments or (job.request.prompt,)):
        if window:  # a long clip: this window starts from the last frames of the one before
            rt.log.info(f"window {window + 1} of {job.windows}: {prompt[:70]}")
            image, skip = [video_condition(context, size, job.spec)], EXTEND_CONTEXT
        elif job.segments:
            rt.log.info(f"window 1 of {job.windows}: {prompt[:70]}")
        # Window k reseeds at seed + k: each window's noise is its own, and reproducible.
        generator = make_generator(rt.device, (job.seed + window) % 2**63)
        part = job.family.window_job(job, window, sounds[-1] if sounds else None)
        latents = denoise_window(rt, model, part, window,
                                 lambda: denoise(rt, model, part, pick(prompt), image, generator), generator)
        if job.segments and rt.stats.audio is not None:
            sounds.append(rt.stats.audio)
        context = collections.deque(maxlen=EXTEND_CONTEXT)
        for frames in decoded_chunks(rt, model.pipe, latents, job, generator, context if job.segments else None):
            drop = min(skip, len(frames))
            skip -= drop
            if len(frames) > drop:
                yield frames[drop:]
        del latents
        empty_device_cache(rt.device)
    if job.extend is not None and not job.family.audio and not job.extend.only:
        rt.stats.audio = original_sound(job, rt.log)
    if len(sounds) > 1:
        rt.stats.audio = joined_sound(sounds, job)


def joined_sound(sounds: Sequence[AudioTrack], job: Job) -> AudioTrack:
    """A long clip's soundtrack: the first window's, then each later window's from where its new
    frames start (its first EXTEND_CONTEXT frames' sound was the window before's, held)."""
    import numpy as np

    rate = sounds[0].rate
    skip = round(EXTEND_CONTEXT / job.fps * rate)
    return AudioTrack(np.concatenate([sounds[0].samples] + [s.samples[:, skip:] for s in sounds[1:]], axis=1), rate)


def original_sound(job: Job, log: Log) -> AudioTrack | None:
    """--extend with a model that makes no sound: the original's own sound under its part, then
    silence (None when the original has none): its sound is never dropped."""
    import numpy as np

    rate = EXTEND_SOUND_RATE
    old = read_audio(job.extend.video, rate)
    if old.shape[1] == 0:
        return None
    length = min(old.shape[1], round(job.extend.frames / job.fps * rate))
    track = np.zeros((2, round(job.out_frames / job.fps * rate)), np.float32)
    track[:, :length] = old[:, :length]
    log.info(f"sound: the original's, under its part; the new part is silent ({job.spec.alias} makes no sound)")
    return AudioTrack(track, rate)


def decoded_chunks(rt: Runtime, pipe, latents, job: Job, generator, context=None) -> Iterator:
    """One window's decoded frames at the output size, timed into rt.stats; `context` (a deque)
    keeps the generation-size frames the next window starts from."""
    stats = rt.stats
    rt.log.info(f"decode: {job.num_frames} frames at {job.gen_width}x{job.gen_height}")
    t0 = time.perf_counter()
    bar = Progress(rt.log, "decode", stats.started)
    for chunk in decode_frames(rt, pipe, latents, job, generator, bar.update):
        if context is not None:
            context.extend(chunk)
        frames = fit_frames(chunk, job.width, job.height, job.downscale)
        stats.device_peak_bytes = max(stats.device_peak_bytes, device_memory_bytes(rt.device))
        stats.add("decode", time.perf_counter() - t0)
        yield frames
        t0 = time.perf_counter()


def decode_frames(rt: Runtime, pipe, latents, job: Job, generator,
                  progress: Callable[[float, str], None] = lambda fraction, detail: None) -> Iterator:
    """The decoded video as uint8 [f, H, W, 3] chunks at generation size, in order (the
    family's decode)."""
    import torch

    # Inference mode as a decorator: torch enters it around each step of the generator. A `with`
    # around a `yield` would leak the mode into the consumer and, when an abandoned generator is
    # garbage-collected later, flip the grad mode under whatever runs then (seen: T5 init failing).
    return torch.inference_mode()(job.family.decode)(pipe, latents, job, generator, rt, progress)


def decode_ltx(pipe, latents, job: Job, generator, rt: Runtime, progress) -> Iterator:
    """The LTX VAEs' decode: the same arithmetic as diffusers' (decode noise, spatial tiles of
    512 px with 64 px blended, temporal tiles of 16 frames with 8 blended) but each finished piece
    becomes uint8 at once instead of concatenating a float copy of the whole clip."""
    import torch

    vae, device, dtype = pipe.vae, rt.device, rt.dtype
    # Lightricks' order (ltx_video/pipelines/pipeline_ltx_video.py): decode noise on the normalized
    # latents, then the tone map (13B distilled), then un-normalized for the VAE. diffusers adds
    # the noise after un-normalizing, where the channels' own scale (latents_std) weighs it.
    z = latents.to(dtype)
    temb = None
    if vae.config.timestep_conditioning:
        dt = job.spec.decode_timestep or 0.0
        dns = dt if job.spec.decode_noise_scale is None else job.spec.decode_noise_scale
        noise = torch.randn(z.shape, generator=generator, device=device, dtype=z.dtype)
        temb = torch.tensor([dt], device=device, dtype=z.dtype)
        scale = torch.tensor([dns], device=device, dtype=z.dtype)[:, None, None, None, None]
        z = (1 - scale) * z + scale * noise
    if job.spec.tone_map:
        from diffusers import LTXLatentUpsamplePipeline

        z = LTXLatentUpsamplePipeline.tone_map_latents(None, z, job.spec.tone_map)
    z = pipe._denormalize_latents(z, vae.latents_mean, vae.latents_std, vae.config.scaling_factor).to(dtype)
    if getattr(vae, "_hf_hook", None) is not None:  # model offload: bring the VAE in
        vae._hf_hook.pre_forward(vae)
    z = z.to(device)
    total = (z.shape[2] - 1) * vae.temporal_compression_ratio + 1
    min_lat = vae.tile_sample_min_num_frames // vae.temporal_compression_ratio
    if not (vae.use_framewise_decoding and z.shape[2] > min_lat):
        if spatially_tiled(vae, z):
            yield from tiled_decode_uint8(vae, z, temb, progress)
        else:
            video = vae.decoder(z, temb)[0]
            progress(1.0, "")
            yield from uint8_chunks(video)
        return
    stride_lat = vae.tile_sample_stride_num_frames // vae.temporal_compression_ratio
    stride = vae.tile_sample_stride_num_frames
    blend = vae.tile_sample_min_num_frames - vae.tile_sample_stride_num_frames
    previous, emitted = None, 0
    for i in range(0, z.shape[2], stride_lat):
        tile = z[:, :, i:i + min_lat + 1]
        if spatially_tiled(vae, tile):
            decoded = vae.tiled_decode(tile, temb, return_dict=True).sample
        else:
            decoded = vae.decoder(tile, temb)
        if previous is None:
            out = decoded[:, :, :stride + 1]
        else:
            decoded = vae.blend_t(previous, decoded[:, :, :-1], blend)
            out = decoded[:, :, :stride]
        out = out[:, :, :total - emitted]
        emitted += out.shape[2]
        progress(emitted / total, f"frame {emitted}/{total}")
        if out.shape[2]:
            yield to_uint8(out[0])
        previous = decoded


FRAME_CHUNK = 8  # frames converted to uint8 at a time: bounds the float temporaries


def uint8_chunks(video) -> Iterator:
    """[C, F, H, W] float video -> uint8 [f, H, W, 3] chunks of FRAME_CHUNK frames, in order."""
    for f in range(0, video.shape[1], FRAME_CHUNK):
        yield to_uint8(video[:, f:f + FRAME_CHUNK])


def spatially_tiled(vae, z) -> bool:
    return vae.use_tiling and (z.shape[-1] > vae.tile_sample_min_width // vae.spatial_compression_ratio
                               or z.shape[-2] > vae.tile_sample_min_height // vae.spatial_compression_ratio)


def tiled_decode_uint8(vae, z, temb, progress: Callable[[float, str], None] = lambda f, d: None) -> Iterator:
    """diffusers' AutoencoderKLLTXVideo.tiled_decode, streamed: tiles are decoded and blended in
    the same order with the same arithmetic, but only the current tile and the blend edges of
    its upper and left neighbours stay in float; finished regions go straight to uint8."""
    import numpy as np

    ratio = vae.spatial_compression_ratio
    height, width = z.shape[-2:]
    min_h, min_w = vae.tile_sample_min_height // ratio, vae.tile_sample_min_width // ratio
    step_h, step_w = vae.tile_sample_stride_height // ratio, vae.tile_sample_stride_width // ratio
    blend_h = vae.tile_sample_min_height - vae.tile_sample_stride_height
    blend_w = vae.tile_sample_min_width - vae.tile_sample_stride_width
    out_h, out_w = height * ratio, width * ratio
    frames = None
    cols = len(range(0, width, step_w))
    tiles = len(range(0, height, step_h)) * cols
    above: dict[int, Any] = {}  # column -> bottom rows of the blended tile above
    for row, i in enumerate(range(0, height, step_h)):
        left = None  # right-hand columns of the blended tile to the left
        below: dict[int, Any] = {}
        for col, j in enumerate(range(0, width, step_w)):
            tile = vae.decoder(z[:, :, :, i:i + min_h, j:j + min_w], temb)
            if row > 0:
                tile = vae.blend_v(above[col], tile, blend_h)
            if col > 0:
                tile = vae.blend_h(left, tile, blend_w)
            if frames is None:
                frames = np.empty((tile.shape[2], out_h, out_w, 3), np.uint8)
            y, x = row * vae.tile_sample_stride_height, col * vae.tile_sample_stride_width
            piece = tile[0, :, :, :vae.tile_sample_stride_height, :vae.tile_sample_stride_width]
            piece = piece[:, :, :out_h - y, :out_w - x]
            for f, chunk in zip(range(0, piece.shape[1], FRAME_CHUNK), uint8_chunks(piece)):
                frames[f:f + FRAME_CHUNK, y:y + piece.shape[2], x:x + piece.shape[3]] = chunk
            below[col] = tile[:, :, :, -blend_h:].clone()
            left = tile[:, :, :, :, -blend_w:].clone()
            del tile, piece
            done = row * cols + col + 1
            progress(done / tiles, f"tile {done}/{tiles}")
        above = below
    for f in range(0, frames.shape[0], FRAME_CHUNK):
        yield frames[f:f + FRAME_CHUNK]


def to_uint8(video):
    """[C, f, H, W] in [-1, 1] -> uint8 numpy [f, H, W, C], rounded as diffusers' PIL output."""
    import torch

    x = (video * 0.5 + 0.5).clamp(0, 1).float().mul_(255).round_().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def fit_frames(frames, width: int, height: int, downscale: bool = False):
    """Generation-size frames [f, H, W, 3] -> exactly width x height: center crop (the generation
    size rounds the target up to the model's grid), and a resize to cover first for models that
    generate at a fixed size and for `downscale` (the maker's geometry generates larger)."""
    import numpy as np
    from PIL import Image, ImageOps

    h, w = frames.shape[1:3]
    if w >= width and h >= height and not downscale:
        top, left = (h - height) // 2, (w - width) // 2
        return frames[:, top:top + height, left:left + width]
    return np.stack([np.asarray(ImageOps.fit(Image.fromarray(f), (width, height),
                                             method=Image.Resampling.LANCZOS)) for f in frames])


def video_chunks(path: Path, chunk: int = 8) -> Iterator:
    """A video's frames as uint8 [f, H, W, 3] chunks."""
    import imageio_ffmpeg
    import numpy as np

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        w, h = meta["size"]
        batch = []
        for raw in reader:
            batch.append(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
            if len(batch) == chunk:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)
    finally:
        reader.close()


PARTIAL_RE = re.compile(r"^\..*\.(?P<host>[0-9a-f]{4})-(?P<pid>\d+)\.[a-z0-9_]+\.partial\.(?:mp4|json|safetensors|wav)$")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_resume_state(entry: os.DirEntry) -> bool:
    """A stopped run's saved state nobody resumed for RESUME_KEEP_DAYS (the last run touched it
    at every step), this user's own regular file."""
    import stat as stat_mod

    if not (entry.name.startswith(".") and entry.name.endswith(RESUME_SUFFIX)):
        return False
    with contextlib.suppress(OSError):
        st = entry.stat(follow_symlinks=False)
        return (stat_mod.S_ISREG(st.st_mode) and st.st_uid == os.getuid()
                and time.time() - st.st_mtime > RESUME_KEEP_DAYS * 86400)
    return False


def remove_stale_partials(folder: Path, log: Log) -> list[str]:
    """Remove our temp files in `folder` whose run is gone (killed before it could clean up):
    only names of our pattern, owned by this user, made on this host by a process that no longer
    exists. Anything else is left alone. Returns the names removed."""
    mine = run_tag().split("-")[0]
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if stale_resume_state(entry):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(entry.name)
                continue
            m = PARTIAL_RE.match(entry.name)
            if not m or m["host"] != mine or int(m["pid"]) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                import stat as stat_mod

                if stat_mod.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not process_alive(int(m["pid"])) \
                        and not locked_by_a_live_run(entry.path):
                    os.unlink(entry.path)
                    removed.append(entry.name)
    if removed:
        log.info(f"removed {len(removed)} partial file(s) left in {folder} by runs that were killed: "
                 + ", ".join(sorted(removed)))
    return removed


@contextlib.contextmanager
def folder_lock(folder: Path):
    """An exclusive lock on the folder while outputs are moved into it: two runs publishing the
    same name take turns, and the second sees the first's files. Where locking is not possible
    the hard-link publish below still never lets a mixed pair land, only both runs lose."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def publish(pairs: Sequence[tuple[Path, Path]], overwrite: bool) -> None:
    """Move finished temp files to their final names as one unit, in order (the sidecar before the
    video, so a video in place always has its sidecar). Without overwrite nothing already there is
    touched: each name is claimed with a hard link, which fails if the name exists, and if any
    claim fails the ones made are taken back and nothing of this run lands. The temp files are
    removed either way."""
    final_dir = pairs[0][1].parent
    umask = os.umask(0)
    os.umask(umask)
    placed: list[Path] = []
    aside: list[tuple[Path, Path]] = []  # (what --overwrite replaces, moved here until all landed)
    try:
        with signals_deferred(), folder_lock(final_dir):
            for tmp, final in pairs:
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the user's usual file mode
            try:
                if overwrite:  # all or nothing: the old files move aside first, back if any step fails
                    aside = _move_aside([final for _, final in pairs])
                for tmp, final in pairs:
                    _claim(tmp, final)
                    placed.append(final)
            except BaseException:
                for final in placed:
                    with contextlib.suppress(OSError):
                        final.unlink()
                _put_back(aside)
                raise
            for old, _ in aside:
                with contextlib.suppress(OSError):
                    old.unlink()
    finally:
        for tmp, _ in pairs:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _move_aside(finals: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Each existing file among `finals` renamed to a hidden name beside it: [(aside, final)]. A
    name that cannot be moved (a folder, another user's file in a sticky folder) is a RunError,
    and what was moved goes back first."""
    aside: list[tuple[Path, Path]] = []
    for final in finals:
        if not (final.exists() or final.is_symlink()):
            continue
        if final.is_dir() and not final.is_symlink():
            _put_back(aside)
            raise RunError(f"{final} is a folder; kept it, and wrote nothing. Choose another --output name")
        hidden = final.with_name(f".{final.name[:PARTIAL_STEM_CHARS]}.{run_tag()}.replaced")
        try:
            os.replace(final, hidden)
        except OSError as e:
            _put_back(aside)
            raise RunError(f"cannot replace {final} ({first_line(e, 'not allowed')}); kept it, and wrote "
                           "nothing. Choose another --output name") from None
        aside.append((hidden, final))
    return aside


def _put_back(aside: Sequence[tuple[Path, Path]]) -> None:
    for hidden, final in reversed(aside):
        with contextlib.suppress(OSError):
            os.replace(hidden, final)


class NameTakenError(RunError):
    """The output's name was taken by another run (or the user) while this one made its video."""


def _claim(tmp: Path, final: Path) -> None:
    """Take the name `final` for `tmp` only if nothing (not even a dangling link) holds it."""
    appeared = NameTakenError(f"{final} appeared while generating (another run?); kept it, and wrote nothing. "
                        "Pass --overwrite to replace it")
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise appeared from None
    except OSError:  # file systems without hard links: check, then rename (a tiny window)
        if final.exists() or final.is_symlink():
            raise appeared from None
        os.rename(tmp, final)


def write_json_temp(final: Path, data: dict) -> Path:
    """`data` as JSON in a temp file beside `final`, ready for publish()."""
    tmp = temp_path(final, "json")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
    except BaseException:
        with signals_deferred(reraise=False):
            tmp.unlink(missing_ok=True)
        raise
    return tmp


class DiskFullError(RunError):
    """No space left where the videos go: a batch stops here instead of failing every job after."""


def write_failure(e: Exception, path: Path) -> RunError:
    """An OSError while writing, as one line (ffmpeg's own output stays out of it)."""
    import errno
    import shutil

    with contextlib.suppress(OSError):
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or \
                shutil.disk_usage(path.parent).free < 64 * 2**20:
            return DiskFullError(f"the disk holding {path.parent} is full; nothing was written. Free some space "
                                 "and run the command again")
    reason = getattr(e, "strerror", None) or first_line(e)
    return RunError(f"writing {path.name} failed ({reason}); nothing was written")


def mp4_complete(path: Path) -> bool:
    """True when the file's top-level MP4 boxes (ftyp, moov, mdat, ...) tile it exactly: a file
    cut short anywhere fails this. Reads a few headers, not the video."""
    import struct

    size = path.stat().st_size
    seen, pos = set(), 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return False
            box, kind = struct.unpack(">I", head[:4])[0], head[4:8]
            if box == 1 and len(head) == 16:
                box = struct.unpack(">Q", head[8:16])[0]
            elif box == 0:
                box = size - pos
            if box < 8 or pos + box > size:
                return False
            seen.add(kind)
            pos += box
    return {b"ftyp", b"moov", b"mdat"} <= seen


class BrokenVideoError(RuntimeError):
    pass


def write_wav(track: AudioTrack, path: Path) -> None:
    """16-bit PCM WAV (the stdlib writes it; ffmpeg encodes it to AAC from there)."""
    import wave

    import numpy as np

    pcm = (np.clip(np.nan_to_num(track.samples), -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(track.channels)
        w.setsampwidth(2)
        w.setframerate(track.rate)
        w.writeframes(np.ascontiguousarray(pcm.T).tobytes())


class VideoWriter:
    """H.264/yuv420p MP4 (with an AAC track once add_audio is called) written to a hidden temp file
    beside the target, moved into place only by commit(); abort() (or any exception, Ctrl-C
    included) removes it."""

    def __init__(self, path: Path, width: int, height: int, fps: int, overwrite: bool, crf: int = DEFAULT_CRF):
        import imageio_ffmpeg

        self.path, self.overwrite = path, overwrite
        self.size = (width, height)
        self.tmp = temp_path(path, "mp4")
        self.frames = 0
        self.seconds = 0.0
        self.published = False
        self.fps = fps
        self.audio: AudioTrack | None = None
        # macro_block_size=1: imageio would otherwise pad 1080 to 1088 rows. +faststart puts the
        # moov atom first so players start before the whole file is read.
        try:
            self._gen = imageio_ffmpeg.write_frames(
                str(self.tmp), self.size, fps=fps, codec="libx264", pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p", quality=None, macro_block_size=1, ffmpeg_log_level="quiet",  # errors: ours
                output_params=["-crf", str(crf), "-preset", "medium", "-movflags", "+faststart",
                               "-tag:v", "avc1"])
            self._gen.send(None)
        except BaseException as e:  # the writer never started (no ffmpeg, a refused size): no temp file stays
            with signals_deferred(reraise=False):
                self.tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise write_failure(e, path) from None
            if isinstance(e, RuntimeError):  # imageio-ffmpeg: no ffmpeg binary found
                raise RunError(f"the video writer could not start ({first_line(e, 'ffmpeg missing')}); "
                               "reinstall imageio-ffmpeg: pip install --force-reinstall imageio-ffmpeg") from None
            raise

    def write(self, frames) -> None:
        import numpy as np

        t0 = time.perf_counter()
        for frame in frames:
            if frame.shape[1::-1] != self.size:
                raise RunError(f"internal: frame of {frame.shape[1]}x{frame.shape[0]}, expected {self.size}")
            try:
                self._gen.send(np.ascontiguousarray(frame))
            except OSError as e:  # ffmpeg stopped: a full disk, a file size limit
                raise write_failure(e, self.path) from None
            self.frames += 1
        self.seconds += time.perf_counter() - t0

    def finish(self) -> None:
        """Close the stream and make sure the temp file is a complete MP4 (not yet in place):
        imageio-ffmpeg never looks at ffmpeg's exit status, so an ffmpeg stopped by a full disk or
        a file size limit would otherwise leave a truncated file that looks finished."""
        t0 = time.perf_counter()
        gen, self._gen = self._gen, None
        try:
            gen.close()
        except OSError as e:
            raise write_failure(e, self.path) from None
        if not mp4_complete(self.tmp):
            raise write_failure(OSError(0, "ffmpeg stopped before the file was complete"), self.path)
        if self.audio is not None:
            self._mux_audio()
        self.seconds += time.perf_counter() - t0

    def add_audio(self, track: AudioTrack) -> None:
        """Give the video a soundtrack, cut or padded to the video's exact length (muxed in finish)."""
        self.audio = track.fitted(self.frames / self.fps)

    def _mux_audio(self) -> None:
        """The finished video stream (copied, not re-encoded) plus the audio as AAC, into a new
        temp file that replaces the first: the audio exists only after denoising, long after
        ffmpeg started taking frames."""
        import subprocess

        import imageio_ffmpeg

        wav, muxed = temp_path(self.path, "wav"), temp_path(self.path, "mp4")
        try:
            write_wav(self.audio, wav)
            cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(self.tmp), "-i", str(wav),
                   "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", AUDIO_BITRATE,
                   "-movflags", "+faststart", "-f", "mp4", str(muxed)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0 or not mp4_complete(muxed):
                why = (done.stderr or "").strip().splitlines()
                raise write_failure(OSError(0, why[-1] if why else "ffmpeg could not add the audio"), self.path)
            os.replace(muxed, self.tmp)
        except OSError as e:
            raise write_failure(e, self.path) from None
        finally:
            with signals_deferred(reraise=False):
                wav.unlink(missing_ok=True)
                muxed.unlink(missing_ok=True)

    def commit(self, before: Sequence[tuple[Path, Path]] = ()) -> None:
        """Move the MP4 into place, after the finished temp files in `before` (the sidecar)."""
        if self._gen is not None:
            self.finish()
        publish([*before, (self.tmp, self.path)], self.overwrite)
        self.published = True

    def abort(self, ending: bool = True) -> None:
        """Stop ffmpeg and remove the temp file; a second Ctrl-C meanwhile cannot cut this short
        (it would leave the partial file behind while we say none was left)."""
        with signals_deferred(reraise=not ending):
            if self._gen is not None:
                import logging

                quiet = logging.getLogger("imageio_ffmpeg")  # "No frames have been written": we know
                level, quiet.level = quiet.level, logging.CRITICAL
                with contextlib.suppress(Exception):
                    self._gen.close()
                quiet.setLevel(level)
                self._gen = None
            self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or not self.published:
            self.abort(ending=exc_type is not None)
        return False


def write_video(frames: Iterator, job: Job, sidecar: Callable[[VideoWriter], dict] | None = None,
                extras: list[tuple[Path, Path]] | None = None,
                audio: Callable[[], AudioTrack | None] | None = None, log: Log | None = None) -> VideoWriter:
    """Stream uint8 frame chunks into the MP4; once it is complete, `audio()` gives its soundtrack
    (made by then, with the frames), `sidecar(writer)` the sidecar's data, and all are published as
    one unit: `extras` (temp, final) files made while the frames were (a draft's latents), the
    sidecar, then the video."""
    extras = [] if extras is None else extras
    try:
        return _write_video(frames, job, sidecar, extras, audio, log)
    finally:
        if hasattr(frames, "close"):  # an abandoned generator is finished now, not by a later GC
            frames.close()
        with signals_deferred(reraise=False):
            for tmp, _ in extras:
                tmp.unlink(missing_ok=True)


def _write_video(frames: Iterator, job: Job, sidecar, extras: list[tuple[Path, Path]], audio,
                 log: Log | None = None) -> VideoWriter:
    with VideoWriter(job.output, job.width, job.height, job.fps, job.request.overwrite) as writer:
        constant = True
        first = None
        for chunk in frames:
            if constant:
                if first is None:
                    first = chunk[0].astype("int16")
                constant = all(int(abs(f.astype("int16") - first).max()) <= 2 for f in chunk) and \
                    int(first.max()) - int(first.min()) <= 2
            writer.write(chunk)
        if writer.frames != job.out_frames:
            raise RunError(f"internal: {writer.frames} frames decoded, expected {job.out_frames}")
        if constant:
            raise BrokenVideoError("every frame is one flat colour")
        track = audio() if audio is not None else None
        with heartbeat(log, "finishing the MP4 (H.264" + (" and AAC)" if track is not None else ")")):
            if track is not None:
                writer.add_audio(track)
            writer.finish()
        if sidecar is None:
            writer.commit(before=extras)
        else:
            side_tmp = write_json_temp(job.sidecar, sidecar(writer))
            try:
                writer.commit(before=[*extras, (side_tmp, job.sidecar)])
            finally:
                side_tmp.unlink(missing_ok=True)
    return writer


def versions() -> dict[str, str]:
    import platform

    import diffusers
    import torch
    import transformers

    mac = macos_version()
    return {
        "generate_video": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "optimum-quanto": _dist_version("optimum-quanto"),
        "os": f"macOS {'.'.join(map(str, mac))}" if mac else platform.platform(),
        "machine": platform.machine(),
    }


def sidecar_data(rt: Runtime, job: Job, plan: MemoryPlan, model: Loaded, wall: float,
                 audio: AudioTrack | None = None) -> dict:
    """Everything that made the video; `audio`: the soundtrack as written (cut or padded to fit)."""
    r, stats = job.request, rt.stats
    steps = stats.step_seconds
    return {
        "output": job.output.name,
        "image": str(r.image.resolve()),
        "image_sha256": file_sha256(r.image),
        "prompt": r.prompt,
        "enhanced_prompt": stats.enhanced_prompt,  # what the model read instead, under --enhance-prompt
        "negative_prompt": job.negative_prompt,
        "seed": job.seed,
        "model": job.spec.alias if job.model_source == job.spec.repo else job.model_source,
        "model_source": job.model_source,
        "model_revision": model.weights.revision,
        "upsampler": job.upsampler_source,
        "conditions": [{"image": str(c.path), "sha256": c.sha256, "frame_index": c.frame, "seconds": round(c.frame / job.fps, 3),
                        "strength": c.strength} for c in job.conditions],
        "loras": [{"source": lora.source, "file": str(lora.file), "sha256": lora.sha256, "scale": lora.scale,
                   "passes": lora.passes, "params": lora.params} for lora in job.loras],
        "preset": job.preset,
        "width": job.width,
        "height": job.height,
        "generation_width": job.gen_width,
        "generation_height": job.gen_height,
        "num_frames": job.num_frames,
        "fps": job.fps,
        "duration_s": round(job.out_frames / job.fps, 3),
        "output_frames": job.out_frames,
        "segments": [{"prompt": p, "window_frames": job.num_frames, "seed": (job.seed + k) % 2**63,
                      "new_frames": job.num_frames - (EXTEND_CONTEXT if k else 0)} for k, p in enumerate(job.segments)],
        "soundtrack": None if job.soundtrack is None else {
            "file": str(job.soundtrack.path), "sha256": job.soundtrack.sha256, "seconds": round(job.soundtrack.seconds, 3),
            "note": "the video was made to this sound (held fixed in every pass) and carries it"},
        "extend": None if job.extend is None else {
            "video": str(job.extend.video), "sha256": job.extend.sha256, "original_frames": job.extend.frames,
            "context_frames": job.extend.context, "new_frames": job.num_frames - job.extend.context,
            "extend_only": job.extend.only},
        "guidance_scale": job.guidance_scale,
        "guidance_extras": job.spec.guidance_extras or None,
        "audio": None if audio is None else {
            "codec": "aac", "bitrate": AUDIO_BITRATE, "sample_rate": audio.rate, "channels": audio.channels,
            "duration_s": round(audio.samples.shape[1] / audio.rate, 6)},
        "stages": [dict(dataclasses.asdict(s), timesteps=list(s.timesteps) if s.timesteps else None,
                        tflop=round(s.tflop, 1), seconds=stats.stage_seconds.get(s.name),
                        latent_shape=stats.stage_shapes.get(s.name)) for s in job.stages],
        "upsample_seconds": stats.stage_seconds.get("upsample"),
        "conditioning_image": {"crop": "center", "blur_sigma": job.spec.image_blur_sigma, "h264_crf": job.spec.image_crf,
                               "resize": "lanczos", "noise_scale": job.spec.image_cond_noise_scale
                               if job.family.image_noise_input else None},
        "tone_map_compression": job.spec.tone_map,
        "scheduler": job.spec.scheduler or "the checkpoint's",
        "dynamic_cfg": job.spec.dynamic_cfg,
        "decode_timestep": job.spec.decode_timestep,
        "decode_noise_scale": job.spec.decode_noise_scale,
        "device": rt.device,
        "dtype": rt.dtype_name,
        "cpu_fallback_ops": stats.cpu_fallback_ops,
        "memory_plan": {
            "budget_gib": round(gib(plan.budget_bytes), 2), "estimated_peak_gib": plan.peak_gib,
            "attention_chunk_rows": plan.attention_chunk, "attention_kernel": plan.attention_kernel,
            "attention": ("metal" if plan.attention_kernel else "chunked" if plan.attention_chunk else "stock"),
            "kernel_verdict": plan.kernel_verdict, "vae_conv3d": CONV3D_NAME if plan.conv3d == "conv2d" else "stock",
            "conv3d_verdict": plan.conv3d_verdict, "vae_spatial_tiling": plan.vae_spatial_tiling,
            "vae_tile_px": plan.vae_tile,
            "vae_temporal_tiling": plan.vae_temporal_tiling, "offload": plan.offload,
            "quantize": plan.quantize, "quantized": list(job.spec.quantizable) if plan.quantize != "none" else [],
            "estimate_gib": plan.estimate,
        },
        "timings_s": dict(stats.timings, total=round(wall, 3)),
        "estimated_seconds": None if stats.estimated_seconds is None else round(stats.estimated_seconds, 1),
        "estimate_basis": stats.estimate_basis,
        "seconds_per_step": round(sum(steps) / len(steps), 4) if steps else None,
        "throttling": stats.throttling,
        "retried": stats.retried,
        "resumed": stats.resumed,
        "peak_memory_gib": {"process_rss": round(gib(peak_rss_bytes()), 3),
                            "device": round(gib(stats.device_peak_bytes), 3)},
        "versions": versions(),
        "command": command_for(job, plan.quantize),
        **draft_sidecar(job, stats),
        "lora_fused": model.lora_fused if model.loras else None,
        "stage2_lora": next(({"source": lora.source, "file": str(lora.file), "sha256": lora.sha256, "scale": lora.scale,
                              "passes": lora.passes, "params": lora.params}
                             for lora in model.loras[len(job.loras):]), None),
        "call_options": job.spec.call_options or None,
    }


def draft_sidecar(job: Job, stats: RunStats) -> dict:
    """What a draft keeps for its final, and what a final says it came from."""
    if job.draft:
        return {"draft": {"latents": job.latents_file.name, "latents_sha256": stats.latents_sha256,
                          "shaping": draft_shaping(job), "final_size": list(job.final_size),
                          "final_upsampler": job.upsampler_source},
                "final_command": final_command(job)}
    if job.reuse is not None:
        return {"from_draft": {"sidecar": str(Path(job.request.from_draft).resolve()), "latents": str(job.reuse),
                               "note": "stage 1 was the draft's; `command` makes this same video from scratch"}}
    return {}


def final_command(job: Job) -> str:
    return f"python generate_video.py --from-draft={_shell_quote(str(job.sidecar.resolve()))}"


def command_for(job: Job, quantize: str | None = None) -> str:
    """The command that makes this video again (with the quantization that made it, which changes
    the frames: on another Mac the plan might choose another)."""
    r = job.request
    width, height = job.final_size or (job.width, job.height)  # a draft: the size its final will have
    size = ["--width", str(width), "--height", str(height)]
    frames = job.num_frames
    if job.extend is not None:  # the original's size; --num-frames counts the new frames
        size, frames = ["--extend", str(job.extend.video)], job.num_frames - job.extend.context
    if job.segments:  # --num-frames is the whole clip's; planning it again gives the same windows
        frames = job.out_frames
        for part in r.segment_prompt:
            size += ["--segment-prompt", part]
    parts = ["python", "generate_video.py", "--image", str(r.image), "--prompt", r.prompt,
             "--model", job.model_source if job.model_source != job.spec.repo else job.spec.alias,
             "--preset", job.preset, *size,
             "--num-frames", str(frames), "--fps", str(job.fps), "--seed", str(job.seed)]
    if r.negative_prompt is not None:
        parts += ["--negative-prompt", r.negative_prompt]
    if job.soundtrack is not None:
        parts += ["--audio", str(job.soundtrack.path)]
    if not job.spec.distilled:
        parts += ["--steps", str(job.stages[0].steps)]
    if not job.spec.distilled:
        parts += ["--guidance-scale", str(job.guidance_scale)]
    if job.upsampler_source and job.upsampler_source != job.spec.upsampler:
        parts += ["--upsampler", job.upsampler_source]
    for lora in job.loras:
        parts += ["--lora", lora.arg]
    if job.spec.quantizable and quantize is not None:
        parts += ["--quantize", quantize]
    for c in job.conditions:  # the end image too: at its frame, exactly
        parts += ["--keyframe", f"{c.path}@#{c.frame}"]
    # --option=value: a value that starts with '-' (a prompt "--slow zoom") stays a value
    joined = [f"{a}={b}" for a, b in zip(parts[2::2], parts[3::2])] + (["--draft"] if job.draft else []) + (
        ["--extend-only"] if job.extend and job.extend.only else []) + (["--no-audio"] if r.no_audio else []) + (
        ["--enhance-prompt"] if r.enhance_prompt else [])
    return " ".join(_shell_quote(p) for p in parts[:2] + joined)


# ----------------------------------------------------------------------------------------------
# 12. Running jobs: one model load per group, prompts encoded once, each video written atomically


@dataclass
class Outcome:
    name: str
    status: str  # done / resumed / skipped / failed / not run
    seconds: float = 0.0
    detail: str = ""
    job: Job | None = None  # the job it is the outcome of, once one was planned


def run_jobs(jobs: list[Job], log: Log, batch: bool, outcomes: list[Outcome] | None = None,
             kept: Kept | None = None) -> list[Outcome]:
    """Group by model (and device settings) and run; in batch mode a failing job is recorded
    and the rest go on. Outcomes are appended to `outcomes` as they happen. `kept`: the web page's
    model between its runs."""
    outcomes = [] if outcomes is None else outcomes
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(group_key(job), []).append(job)
    done_before = [0]
    started = time.perf_counter()
    for folder in dict.fromkeys(job.output.parent for job in jobs):
        remove_stale_partials(folder, log)

    def progress(i: int) -> None:
        n = done_before[0] + i
        if batch:
            finished = [o.seconds for o in outcomes if o.status == "done"]
            eta = (sum(finished) / len(finished) * (len(jobs) - n)) if finished else None
            log.info(f"job {n + 1} of {len(jobs)}"
                     + (f", ETA {describe_seconds(eta)}" if eta is not None else "")
                     + f" ({describe_seconds(time.perf_counter() - started)} so far)")

    for group in groups.values():
        device = pick_device(group[0].request.device)
        try:
            run_group(Runtime(device, pick_dtype(group[0].request.dtype, device), log), group, outcomes, progress,
                      batch, kept)
        except (RunError, UsageError) as e:  # the group's model could not be had: its jobs fail
            if not batch or isinstance(e, DiskFullError):
                raise
            log.info(f"error: {e}")
            settled = {id(o.job) for o in outcomes}
            outcomes += [Outcome(j.output.name, "failed", 0.0, str(e), j) for j in group if id(j) not in settled]
        done_before[0] += len(group)
    return outcomes


def group_key(job: Job) -> tuple:
    """What jobs must share to share one model load: model, upscaler, device settings and LoRAs."""
    r = job.request
    return (job.model_source, job.upsampler_source, job.draft, r.device, r.dtype, r.offload, r.memory_budget_gb,
            tuple((lora.sha256, lora.scale, lora.passes) for lora in job.loras))  # LoRAs change the weights


def run_group(rt: Runtime, jobs: list[Job], outcomes: list[Outcome], progress: Callable[[int], None],
              batch: bool = False, kept: Kept | None = None) -> None:
    """Jobs that share a model: plan each, load the model once (the text encoder alone first,
    every prompt encoded, then freed), and make each video."""
    check_model_available(jobs[0])
    settled = settle_group(rt, jobs, outcomes, batch)
    if not settled:
        return
    tflops = probe_rate(rt.device, rt.dtype)
    shown = None
    for job, (plan, _) in settled:
        lines = plan_lines(rt, job, plan, tflops)
        same = [re.sub(r", seed \d+$", "", lines[0])] + lines[1:]
        if same == shown:  # --variations, or a batch of one job's settings: the plan once, then a line each
            rt.log.info(f"plan: as above, seed {job.seed} ({job.output.name})")
            continue
        shown = same
        for line in lines:
            rt.log.info(line)
    # One load serves the group: its most careful offload and its smallest weights.
    offload = max((p.offload for _, (p, _) in settled), key=OFFLOADS.index)
    quantize = max((p.quantize for _, (p, _) in settled), key=QUANTIZE.index)
    planned = [job for job, _ in settled]
    model, embeds, setup_seconds = load_group(rt, planned, offload, quantize,
                                              kept and kept.offer(planned, settled[0][1][0], rt))
    if kept is not None:
        kept.keep(group_key(planned[0]), model, embeds)
    for index, (job, (plan, kernel)) in enumerate(settled):
        plan = dataclasses.replace(plan, offload=offload, quantize=quantize)
        progress(index)
        runs = timing_runs(job, plan, rt.device, rt.dtype_name)
        stats = RunStats(estimated_seconds=estimate_seconds(job, tflops, plan, runs),
                         estimate_basis=dict(estimate_basis(tflops, plan), earlier_runs=len(runs),
                                             rates=median_rates(runs) if runs else None),
                         enhanced_prompt=embeds.rewritten.get(prompt_key(job, job.request.prompt)))
        if index == 0:
            for name, seconds in setup_seconds.items():
                stats.add(name, seconds)
        job_rt = dataclasses.replace(rt, stats=stats, kernel=kernel)
        try:
            outcomes.append(make_video_safely(job_rt, model, job, plan, embeds,
                                              sum(setup_seconds.values()) if index == 0 else 0.0))
        except Exception as e:
            if not batch and not isinstance(e, (NonFiniteError, BrokenVideoError, NotImplementedError, RunError)):
                raise
            error = explain_failure(e, job, rt.device, rt.dtype_name, plan.attention_kernel, plan.conv3d == "conv2d")
            for note in getattr(e, "__notes__", ()) if error is not e else ():  # how to resume it
                error.add_note(note)
            if not batch:
                raise error from None
            outcomes.append(Outcome(job.output.name, "failed", time.perf_counter() - stats.started,
                                    f"{error}{notes(error)}", job))
            if isinstance(e, DiskFullError):  # every job after it would fail too: stop here
                raise
            rt.log.info(f"error: {job.output.name}: {error}")


def settle_group(rt: Runtime, jobs: list[Job], outcomes: list[Outcome], batch: bool) -> list[tuple[Job, tuple]]:
    """(job, (plan, kernel)) for each job the memory plan admits; in a batch a job it refuses is
    that job's failure (an outcome), not its group's."""
    settled = []
    for job in jobs:
        try:
            settled.append((job, settle_job(rt, job)))
        except UsageError as e:
            if not batch:
                raise
            rt.log.info(f"skipping {job.output.name}: {e}")
            outcomes.append(Outcome(job.output.name, "skipped", 0.0, str(e), job))
    return settled


def settle_job(rt: Runtime, job: Job) -> tuple[MemoryPlan, tuple | None]:
    """The memory plan for a job on this device (printed before anything heavy happens), and the
    Metal attention kernel it trusts as (Kernel, module), if any."""
    import torch

    device, log = rt.device, rt.log
    elem = torch.tensor([], dtype=rt.dtype).element_size()
    folder = model_folder(job.model_source)  # a glob of the Hub cache: once
    dims = job.dims or model_dims(folder, job.spec)
    attention_budget = DEFAULT_ATTENTION_BUDGET_GIB * 2**30
    if job.request.attention_slicing not in (*TRISTATE, "metal") and not job.request.attention_slicing.isdigit():
        attention_budget = float(job.request.attention_slicing) * 2**30
    if device == "cpu" and job.request.offload not in ("auto", "none"):
        log.warn(f"--offload {job.request.offload} has no effect on the CPU (the weights are already in RAM)")
    # The conv3d path first: it is checked on small inputs, and the plan counts what it holds.
    conv3d, conv3d_verdict = pick_conv3d(job.request.conv3d, device, rt.dtype, vae_conv3d_shapes(folder), log)
    plan = plan_memory(job, dims, device, elem, memory_budget(job.request, device), int(attention_budget),
                       job.request, conv3d)
    plan = widest_tile(job, dims, elem, dataclasses.replace(plan, conv3d_verdict=conv3d_verdict), device)
    if job.family.framewise_vae and job.request.vae_tiling == "on":
        log.warn(f"{job.family.label}'s VAE always decodes 2 latent frames at a time; --vae-tiling on adds "
                 "spatial tiles only")
        plan = dataclasses.replace(plan, vae_temporal_tiling=False)
    if job.request.attention_slicing not in ("auto", "metal") or not job.family.own_attention:
        return plan, None
    picked = pick_attention_kernel(job.request.attention_slicing, device, rt.dtype, plan.tokens, log,
                                   head_dims=dims.head_dims)
    if not picked:
        return plan, None
    kernel, module, verdict = picked
    plan = dataclasses.replace(plan, attention_kernel=verdict["identity"].split("|")[0], kernel_verdict=verdict,
                               attention_chunk=plan.attention_chunk or attention_chunk_rows(
                                   plan.tokens, dims.heads, int(attention_budget)))  # its fallback
    return plan, (kernel, module)


def plan_lines(rt: Runtime, job: Job, plan: MemoryPlan, tflops: float) -> list[str]:
    """The plan a run prints before anything heavy happens (and the web page shows as its inputs
    change): size, stages, download, memory, savings and the time it should take."""
    runs = timing_runs(job, plan, rt.device, rt.dtype_name)
    return describe_plan(job, plan, rt.device, rt.dtype_name) + [
        f"  time: {describe_estimate(job, rt.device, tflops, plan, runs)}"]


class Kept:
    """The web page's model between its runs (a command line run loads once per group anyway):
    the next run of the same model and settings uses it again, and the prompts it encoded. A
    text encoder loads beside it only where the plan says both fit; else it is freed first and
    the model loaded again, as a run of its own would."""

    def __init__(self):
        self.key: tuple | None = None  # the group_key of the jobs it was loaded for
        self.model: Loaded | None = None
        self.embeds = Prompts()

    def offer(self, jobs: list[Job], plan: MemoryPlan, rt: Runtime) -> tuple[Loaded, Prompts] | None:
        """(model, its prompts) for these jobs of one group, or None after freeing what is kept."""
        if self.model is not None and self.key == group_key(jobs[0]):
            if all(k in self.embeds for k in group_prompt_keys(jobs)):
                return self.model, self.embeds
            e = plan.estimate
            beside = e["text_encoder"] + e["transformer"] + e["vae"] + e["upsampler"] + e["lora"]
            if beside <= gib(plan.budget_bytes):
                return self.model, self.embeds
            rt.log.info(f"  the kept model and {jobs[0].family.text_encoder_label} do not fit together "
                        f"({beside:.1f} of {gib(plan.budget_bytes):.1f} GiB): it is loaded again after the prompts")
        self.clear(rt.device)
        return None

    def keep(self, key: tuple, model: Loaded, embeds: Prompts) -> None:
        self.key, self.model, self.embeds = key, model, embeds

    def clear(self, device: str) -> None:
        import gc

        if self.model is not None:
            self.key, self.model, self.embeds = None, None, Prompts()
            gc.collect()
            empty_device_cache(device)


def group_prompt_keys(jobs: Sequence[Job]) -> dict[tuple, None]:
    """Every prompt_key a group's jobs need, in order, once."""
    return dict.fromkeys(prompt_key(j, p) for j in jobs for p in (j.segments or (j.request.prompt,)))


def load_group(rt: Runtime, jobs: list[Job], offload: str, quantize: str,
               kept: tuple[Loaded, Prompts] | None = None) -> tuple[Loaded, Prompts, dict]:
    """(model, prompt embeddings, seconds spent) for jobs of one model, in two phases so the text
    encoder (T5 ~9 GiB, Gemma ~24) and the denoiser are never in memory together: the text encoder
    alone encodes every prompt and is freed; then the rest of the model loads. `kept`: the web
    page's model still loaded, and the prompts it encoded (then only new prompts are encoded)."""
    first, log = jobs[0], rt.log
    weights = fetch_weights(first, log)
    label = first.family.text_encoder_label
    embeds, seconds = (kept[1] if kept else Prompts()), {}
    todo = [j for j in jobs if any(k not in embeds for k in group_prompt_keys([j]))]
    if todo:
        t0 = time.perf_counter()
        log.info(f"encoding {len(group_prompt_keys(todo))} prompt(s) with {label}")
        with heartbeat(log, f"loading {label} and encoding"):
            new = encode_prompts(rt, load_text_encoder(weights, rt.dtype, log, quantize), todo, offload,
                                 weights.processor)
        rewritten = {**(embeds.rewritten if kept else {}), **new.rewritten}
        embeds = Prompts({**embeds, **new})
        embeds.rewritten = rewritten
        seconds["encode_prompt"] = time.perf_counter() - t0
        log.info(f"  {label} loaded, encoded and freed in {describe_seconds(seconds['encode_prompt'])}")
    log.check()  # the page's Cancel, pressed while the prompts were encoded: before the model loads
    if kept:
        log.info(f"{first.spec.alias} is still loaded from the last run")
        return kept[0], embeds, seconds
    log.info(f"loading {first.spec.alias} ({weights.pipeline_class}) on {rt.device} in {rt.dtype_name}")
    t0 = time.perf_counter()
    with heartbeat(log, f"loading {first.spec.alias}"):
        pipe, upsampler = load_pipeline(weights, rt.dtype, log, text_encoder=False, quantize=quantize)
        place_pipeline(pipe, upsampler, offload, rt.device, weights.family)
        loras = first.loras + recipe_lora(weights, first.spec)
        fused = apply_loras(pipe, loras, log)
    seconds["load"] = time.perf_counter() - t0
    log.info(f"  loaded in {describe_seconds(seconds['load'])}")
    return Loaded(pipe, upsampler, weights, fused, loras), embeds, {"load": seconds["load"], **seconds}


def make_video(rt: Runtime, model: Loaded, job: Job, plan: MemoryPlan, embeds: dict, setup: float) -> Outcome:
    """One video on a loaded model: frames generated, written, published with its sidecar.
    `setup`: seconds of loading and encoding this job is charged with (the group's first)."""
    stats, log = rt.stats, rt.log
    apply_savings(model.pipe, plan, job.family, rt.kernel)
    rt = dataclasses.replace(rt, resume=Resume.open(job, resume_shaping(job, plan, rt, model.weights), log))
    stats.resumed = rt.resume.record
    frames = generate(rt, model, job, lambda prompt: embeds[prompt_key(job, prompt)])
    wall = 0.0

    def sidecar(writer: VideoWriter) -> dict:
        nonlocal wall
        stats.add("write", writer.seconds)
        stats.cpu_fallback_ops = fallbacks.ops()
        wall = time.perf_counter() - stats.started + setup
        return sidecar_data(rt, job, plan, model, wall, writer.audio)

    try:
        with record_cpu_fallbacks(log) as fallbacks:
            sound = write_video(frames, job, sidecar=sidecar, extras=stats.extra_files, audio=lambda: stats.audio,
                                log=log).audio
    except (NameTakenError, Cancelled):  # another run's video has the name, or the page's Cancel: no resuming
        rt.resume.remove()
        raise
    except BaseException as e:  # Ctrl-C, SIGTERM, a failure: what was saved is kept, and said
        if rt.resume.kept:
            e.add_note(f"the same command resumes {job.output.name} from {rt.resume.kept}")
        raise
    rt.resume.remove()
    record_run(rt, job, plan, wall)  # the next estimate of this model here learns from it
    used = kernels_used(plan)
    emit(f"wrote {job.output.resolve()} ({job.out_frames / job.fps:.1f} s video, {job.width}x{job.height}, "
         f"{job.out_frames} frames at {job.fps} fps" + (f", AAC sound at {sound.rate / 1000:g} kHz" if sound else "")
         + f"; made in {describe_seconds(wall)}" + (f"; {used}" if used else "") + ")")
    if job.draft:
        log.info(f"  the full video of this draft: {final_command(job)}")
    return Outcome(job.output.name, "done", wall, used, job)


def resume_shaping(job: Job, plan: MemoryPlan, rt: Runtime, weights: Weights) -> dict:
    """Everything that shapes a job's saved state: a stopped run resumes only when all are equal
    (else it starts fresh, saying which differ): the settings (the reproduce command's), the
    inputs' content, and what changes the numbers: device, precision, attention path, conv3d,
    VAE tiling, the libraries' versions."""
    inputs = [file_sha256(job.request.image), *(c.sha256 for c in job.conditions), *(x.sha256 for x in job.loras),
              *([job.extend.sha256] if job.extend else []), *([job.soundtrack.sha256] if job.soundtrack else []),
              *(file_sha256(Path(s.reused)) for s in job.stages if s.reused)]
    return {"command": command_for(job, plan.quantize), "inputs": inputs, "model": weights_identity(weights),
            "device": rt.device, "dtype": rt.dtype_name,
            "numerics": [plan.attention_kernel, plan.attention_chunk, plan.conv3d, plan.vae_spatial_tiling,
                         plan.vae_temporal_tiling, plan.vae_tile],
            "versions": [_dist_version("torch"), _dist_version("diffusers"), _dist_version("transformers")]}


def weights_identity(weights: Weights) -> list:
    """What the loaded weights are: the Hub revision, and every weights file's size and time of
    change (a folder whose weights were replaced in place is another model)."""
    files = [weights.folder, weights.upsampler_folder, weights.transformer_file, weights.stage2_lora]
    found = []
    for where in (Path(f) for f in files if f is not None):
        for path in safetensors_in(where):
            with contextlib.suppress(OSError):
                st = path.stat()
                found.append([str(path), st.st_size, st.st_mtime_ns])
    return [weights.revision, found]


def make_video_safely(rt: Runtime, model: Loaded, job: Job, plan: MemoryPlan, embeds: dict, setup: float) -> Outcome:
    """make_video; if it ends in invalid numbers or a flat picture while a checked kernel was in use,
    once more, by itself, on the known-safe path (chunked attention, PyTorch's conv3d), said aloud
    and recorded in the sidecar; never more than once."""
    try:
        return make_video(rt, model, job, plan, embeds, setup)
    except (NonFiniteError, BrokenVideoError) as first:
        safe = safe_path(plan)
        if safe is None:
            raise
        plan, changes = safe
        rt.log.warn(f"{first}: making it again with {' and '.join(changes)} (the known-safe path)")
        rt.stats.retried = {"first_attempt": str(first), "changed": changes}
        try:
            return make_video(dataclasses.replace(rt, kernel=None), model, job, plan, embeds, setup)
        except (NonFiniteError, BrokenVideoError) as second:
            raise RunError(f"{first}; made again with {' and '.join(changes)}: {second}. "
                           f"{mps_failure_advice(job, rt.device, rt.dtype_name)}") from None


def safe_path(plan: MemoryPlan) -> tuple[MemoryPlan, list[str]] | None:
    """(the plan without the checked kernels it used, what changed), or None if it used none."""
    changes = []
    if plan.attention_kernel:
        changes.append(f"chunked attention instead of {plan.attention_kernel}")
        plan = dataclasses.replace(plan, attention_kernel=None, kernel_verdict=None)
    if plan.conv3d == "conv2d":
        changes.append(f"PyTorch's conv3d instead of {CONV3D_NAME}")
        plan = dataclasses.replace(plan, conv3d="stock")
    return (plan, changes) if changes else None


def kernels_used(plan: MemoryPlan) -> str:
    """The checked kernels a job ran on, for its summary ("" when only PyTorch's own)."""
    used = [f"Metal attention {plan.attention_kernel}"] if plan.attention_kernel else []
    return ", ".join(used + ([f"VAE {CONV3D_NAME}"] if plan.conv3d == "conv2d" else []))


def explain_failure(e: Exception, job: Job, device: str, dtype_name: str, kernel: str | None = None,
                    conv3d: bool = False) -> RunError:
    """A failure during generation, as a RunError naming the likely cause (the kernels in use
    first) and the fix."""
    advice = mps_failure_advice(job, device, dtype_name, kernel, conv3d)
    if isinstance(e, NonFiniteError):
        return RunError(f"{e}: the model produced invalid numbers on {device}/{dtype_name}; {advice}")
    if isinstance(e, BrokenVideoError):
        return RunError(f"{e} (a broken decode, nothing was written); {advice}")
    if isinstance(e, NotImplementedError):
        return RunError(f"an operator is not supported on {device}: {e}; {advice}")
    if isinstance(e, RunError):
        return e
    return RunError(f"{e.__class__.__name__}: {first_line(e)}")


def mps_failure_advice(job: Job, device: str, dtype_name: str, kernel: str | None = None, conv3d: bool = False) -> str:
    import torch

    advice = []
    suspects = ([f"the Metal attention kernel {kernel}"] if kernel else []) + \
        ([f"the VAE's {CONV3D_NAME}"] if conv3d else [])
    if suspects:  # first: the same video again, without them
        flags = (["--attention=chunked"] if kernel else []) + (["--conv3d=stock"] if conv3d else [])
        advice.append(f"{' and '.join(suspects)} {'is a suspect' if len(suspects) == 1 else 'are suspects'}: "
                      f"run again without {'it' if len(suspects) == 1 else 'them'} "
                      f"({' '.join(flags)}): {command_for(job)} {' '.join(flags)}")
    if torch.__version__.startswith("2.5."):
        advice.append(f"torch {torch.__version__} renders LTX as noise on MPS: pip install -U torch")
    if dtype_name != "float32":
        advice.append("try --dtype float32")
    fallback = job.family.fallback_alias
    if fallback and device == "mps":
        advice.append(f"or fall back to {MODELS[fallback].family.label}: python generate_video.py --image "
                      f"{job.request.image} --prompt {json.dumps(job.request.prompt)} --model {fallback}")
    return "; ".join(advice) or "try another --seed or --dtype float32"


# ----------------------------------------------------------------------------------------------
# 13. Batch: --jobs FILE (JSON Lines), several --image, or a folder of images

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
JOB_KEYS = {f.name for f in dataclasses.fields(Request)}  # a job may set any option a Request holds


def request_from_args(args: argparse.Namespace, image: Path, overrides: dict | None = None) -> Request:
    values = {name: getattr(args, name) for name in JOB_KEYS if hasattr(args, name)}
    values["image"] = image
    values["output"] = args.output
    for key, value in (overrides or {}).items():
        values[key] = value
    values["image"] = Path(values["image"]).expanduser()
    if values.get("output") is not None:
        values["output"] = Path(values["output"]).expanduser()
    values["lora"] = tuple(values.get("lora") or ())
    values["keyframe"] = tuple(values.get("keyframe") or ())
    values["segment_prompt"] = tuple(values.get("segment_prompt") or ())
    for key in ("extend", "end_image", "audio"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    return Request(**values)


def read_job_lines(path: Path) -> list[tuple[int, dict | str]]:
    """(line number, JSON object or an error message) for each job line of a JSON Lines file.
    Lines end at \n only (U+2028 and friends are valid inside JSON strings), each line is
    decoded on its own (one bad byte costs one job), and a UTF-8 BOM is ignored."""
    if not path.is_file():
        raise UsageError(f"--jobs {path}: no such file")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    rows: list[tuple[int, dict | str]] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            rows.append((number, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"))
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            rows.append((number, f"not valid JSON ({e})"))
            continue
        rows.append((number, obj if isinstance(obj, dict) else "not a JSON object ({...})"))
    if not rows:
        raise UsageError(f"--jobs {path}: no jobs in the file")
    return rows


def job_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every spelling a job key may take (the Request field, the option with - or _) -> its
    option, so `memory-budget`, `memory_budget` and `memory_budget_gb` are one key."""
    names: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in JOB_KEYS and action.option_strings:
            names[action.dest] = action
            for option in action.option_strings:
                if option.startswith("--"):
                    names[option[2:]] = names[option[2:].replace("-", "_")] = action
            if isinstance(action, argparse._AppendAction):  # a list reads as a plural: "keyframes", "loras"
                names[action.dest + "s"] = action
    names["segments"] = names["segment_prompt"]
    return names


def job_namespace(parser: argparse.ArgumentParser, args: argparse.Namespace, obj: dict,
                  jobs_file: Path, out_dir: Path, anywhere: bool) -> argparse.Namespace:
    """A job's settings: the command line's, overridden by the job's keys, each value checked by
    the very parser that checks the command line (one validator for both). UsageError if not."""
    import copy
    import difflib

    options = job_options(parser)
    unknown = sorted(k for k in obj if k not in options)
    if unknown:
        hints = [f"{k} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(k, options, 1, cutoff=0.7)) else k
                 for k in unknown]
        raise UsageError(f"unknown key(s) {', '.join(hints)}; keys are option names such as image, prompt, seed")
    argv, flags = [], {}
    for key, value in obj.items():
        action = options[key]
        option = next(o for o in action.option_strings if o.startswith("--"))
        if value is None:
            raise UsageError(f"{key} is null; leave the key out to use the default")
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise UsageError(f"{key} must be true or false")
            flags[action.dest] = value
        elif isinstance(action, argparse._AppendAction) and isinstance(value, list) and \
                all(isinstance(v, str) for v in value):  # "lora": ["a.safetensors", "b:0.5"]
            argv += [f"{option}={v}" for v in value]
        elif isinstance(value, (bool, list, dict)):
            raise UsageError(f"{key} must be {'text' if action.type is None else 'a number'}, not {json.dumps(value)}")
        else:
            argv.append(f"{option}={value}")  # the = form: a value may start with '-'
    ns = copy.copy(args)
    ns.image = None
    for key in obj:  # a job's own list replaces the command line's
        if isinstance(options[key], argparse._AppendAction):
            setattr(ns, options[key].dest, None)
    try:
        parser.raise_errors = True
        ns = parser.parse_args(argv, namespace=ns)
    finally:
        parser.raise_errors = False
    for dest, value in flags.items():
        setattr(ns, dest, value)
    given = {options[k].dest for k in obj}
    for key in ("end_image", "extend"):  # relative to the jobs file, as images are
        if key in given and not Path(getattr(ns, key)).expanduser().is_absolute():
            setattr(ns, key, jobs_file.parent / Path(getattr(ns, key)))
    if ns.extend is not None and not ns.image:  # the video is the picture to continue
        ns.image = [str(ns.extend)]
    if "keyframe" in given:
        ns.keyframe = [str(jobs_file.parent / k) if not Path(k.rpartition("@")[0]).expanduser().is_absolute() else k
                       for k in ns.keyframe]
    if "from_draft" in given:  # relative to the jobs file, as images are
        draft = Path(ns.from_draft).expanduser()
        ns.from_draft = draft if draft.is_absolute() else jobs_file.parent / draft
    if ns.from_draft is not None:
        fill_from_draft(ns, parser)
    if not ns.image:
        raise UsageError("no image (give an \"image\" key)")
    image = Path(ns.image[-1]).expanduser()
    ns.image = [str(image if image.is_absolute() else jobs_file.parent / image)]  # relative to the jobs file
    if "output" in obj:
        ns.output = confined_output(Path(str(obj["output"])).expanduser(), out_dir, anywhere)
    return ns


def confined_output(output: Path, out_dir: Path, anywhere: bool) -> Path:
    """A job's own output: relative to --output-dir and inside it, unless --outputs-anywhere."""
    if output.is_absolute():
        if not anywhere:
            raise UsageError(f"output {output} is an absolute path; give a name inside --output-dir, "
                             "or pass --outputs-anywhere")
        return output
    path = Path(os.path.normpath(out_dir / output))  # "sub/../x.mp4" is out/x.mp4 even without sub/
    if not anywhere and not os.path.abspath(path).startswith(os.path.join(os.path.abspath(out_dir), "")):
        raise UsageError(f"output {output} is outside --output-dir {out_dir}; pass --outputs-anywhere to allow it")
    return path


def expand_images(images: list[str]) -> list[Path]:
    paths: list[Path] = []
    for name in images:
        path = Path(name).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"--image {path}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        else:
            paths.append(path)
    return paths


def batch_requests(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[tuple[str, Request | str]]:
    """(name, request or the reason it is refused) per batch job: bad jobs are reported, not fatal."""
    out_dir = Path(args.output_dir or ".").expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--output-dir {out_dir}: is a file, not a folder")
    if not out_dir.exists():
        try:
            out_dir.mkdir(parents=True)
        except OSError as e:
            raise UsageError(f"--output-dir {out_dir}: cannot create it ({e.strerror})") from None
        emit(f"created {out_dir}", sys.stderr)
    rows: list[tuple[str, argparse.Namespace | str]] = []
    if args.jobs:
        jobs_file = Path(args.jobs).expanduser()
        for number, obj in read_job_lines(jobs_file):
            if isinstance(obj, dict):
                try:
                    obj = job_namespace(parser, args, obj, jobs_file, out_dir, args.outputs_anywhere)
                except UsageError as e:
                    obj = str(e)
            rows.append((f"line {number}", obj))
    else:
        for path in expand_images(args.image):
            rows.append((path.name, argparse.Namespace(**dict(vars(args), image=[str(path)]))))
    stems: dict[str, int] = {}
    for _, ns in rows:
        if not isinstance(ns, str) and ns.output is None:
            stem = Path(ns.image[0]).stem
            stems[stem] = stems.get(stem, 0) + 1
    result: list[tuple[str, Request | str]] = []
    for index, (name, ns) in enumerate(rows, 1):
        if isinstance(ns, str):
            result.append((name, ns))
            continue
        if not ns.prompt and not ns.segment_prompt:
            result.append((name, "no prompt (give --prompt or a \"prompt\" key)"))
            continue
        ns.prompt = ns.prompt or ""
        if ns.output is None:
            stem = Path(ns.image[0]).stem
            # Deterministic names, so a re-run finds (and skips) what an earlier run finished.
            ns.output = out_dir / (f"{stem}.mp4" if stems[stem] == 1 else f"{stem}-{index}.mp4")
        result.append((name, request_from_args(ns, Path(ns.image[0]))))
    return result


def made_before(jobs: list[Job], log: Log) -> list[Job]:
    """--variations run again (after a stop): a variation this very job made already is kept and
    said, the others are made (a stopped one resumes); a name held by another video is refused as
    check_output refuses it. One job: as it is."""
    if len(jobs) == 1:
        return jobs
    todo = []
    for job in jobs:
        if not job.request.overwrite and matches_sidecar(job):
            log.info(f"{job.output.name}: made before with these settings; kept")
            continue
        check_output(job.output, job.request.overwrite, job.draft)
        todo.append(job)
    return todo


def matches_sidecar(job: Job) -> bool:
    """True when the output and its sidecar already hold this very job (resume)."""
    if not (job.output.is_file() and job.sidecar.is_file()) or (job.draft and not job.latents_file.is_file()):
        return False
    try:
        data = read_json(job.sidecar)
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or not mp4_complete(job.output):  # a 0-byte or cut-off MP4 is not done
        return False
    return made_alike(data, job)


def made_alike(data: dict, job: Job) -> bool:
    """A sidecar's video is this job's: every setting that shapes it (the reproduce command's, but
    the quantization the plan picks and a seed left to chance) and the content of every input."""
    import shlex

    def settings(command: str) -> list[str]:
        return [part for part in shlex.split(command) if not part.startswith("--quantize=")
                and not (job.request.seed is None and part.startswith("--seed="))]

    def hashes(items) -> list:
        return [item.get("sha256") for item in items or [] if isinstance(item, dict)]

    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return (settings(str(data.get("command", ""))) == settings(command_for(job))
                and data.get("image_sha256") == file_sha256(job.request.image)
                and hashes(data.get("conditions")) == [c.sha256 for c in job.conditions]
                and hashes(data.get("loras")) == [lora.sha256 for lora in job.loras]
                and hashes([data.get("extend")]) == ([job.extend.sha256] if job.extend else [])
                and hashes([data.get("soundtrack")]) == ([job.soundtrack.sha256] if job.soundtrack else []))
    return False


def check_batch_job(job: Job, name: str, seen: dict[str, str], outcomes: list[Outcome], jobs: list[Job]) -> None:
    """A planned batch job: to run (appended to `jobs`), already done, or skipped (an outcome)."""
    item = job.request
    key = same_file_key(job.output)
    if key in seen:
        outcomes.append(Outcome(name, "skipped", 0.0, f"{job.output} is also the output of {seen[key]}"))
        return
    seen[key] = name
    if matches_sidecar(job):
        outcomes.append(Outcome(job.output.name, "resumed", 0.0, "already done"))
        return
    if job.output.exists() and not item.overwrite:
        outcomes.append(Outcome(name, "skipped", 0.0, f"{job.output} exists with other settings; "
                                                      "pass --overwrite to replace it"))
        return
    if job.sidecar.exists() and not item.overwrite:  # a file of the user's that the sidecar would replace
        outcomes.append(Outcome(name, "skipped", 0.0, f"{job.sidecar} already exists (the video's sidecar "
                                                      "would replace it); pass --overwrite or another output"))
        return
    if job.draft and job.latents_file.exists() and not item.overwrite:
        outcomes.append(Outcome(name, "skipped", 0.0, f"{job.latents_file} already exists; pass --overwrite "
                                                      "or another output"))
        return
    jobs.append(job)


def print_summary(outcomes: list[Outcome]) -> None:
    width = max([len(o.name) for o in outcomes] + [4])
    lines = [f"{'job'.ljust(width)}  status    time  detail"]
    for o in outcomes:
        t = describe_seconds(o.seconds) if o.seconds else "-"
        lines.append(f"{o.name.ljust(width)}  {o.status:<8} {t:>6}  {o.detail}")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "resumed", "skipped", "failed", "not run")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "not run"))
    emit("\n".join(lines), sys.stderr)


def run_batch(args: argparse.Namespace, parser: argparse.ArgumentParser, log: Log) -> int:
    """Validate every job first, skip finished ones, run the rest, print the summary (also
    when the batch is interrupted)."""
    outcomes: list[Outcome] = []
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for name, item in batch_requests(args, parser):
        if isinstance(item, str):
            outcomes.append(Outcome(name, "skipped", 0.0, item))
            continue
        try:
            request = dataclasses.replace(item, overwrite=True)  # existence is judged below
            planned = [dataclasses.replace(j, request=dataclasses.replace(j.request, overwrite=item.overwrite))
                       for j in expand_variations(plan_job(request, Log(LOG_QUIET), decode_image=False))]
            pick_device(item.device)  # "cuda" on a Mac: this job is refused, not the batch
            for job in planned:  # a sidecar named like the jobs file (in.json beside in.png)
                check_not_an_input(job.output, job.request, args.jobs and Path(args.jobs).expanduser())
        except (UsageError, RunError) as e:
            outcomes.append(Outcome(name, "skipped", 0.0, str(e)))
            continue
        except Exception as e:  # noqa: BLE001 (one bad job never ends the batch; its line says why)
            outcomes.append(Outcome(name, "skipped", 0.0, f"{e.__class__.__name__}: {first_line(e)}"))
            continue
        for job in planned:
            check_batch_job(job, name, seen, outcomes, jobs)
    for o in outcomes:
        if o.status == "skipped":
            log.info(f"skipping {o.name}: {o.detail}")
    log.info(f"{len(jobs)} job(s) to run, {sum(o.status == 'resumed' for o in outcomes)} already done, "
             f"{sum(o.status == 'skipped' for o in outcomes)} skipped")
    if jobs:
        jobs = [dataclasses.replace(j, request=dataclasses.replace(j.request, overwrite=True))
                if j.request.overwrite else j for j in jobs]
        ran: list[Outcome] = []
        try:
            run_jobs(jobs, log, batch=True, outcomes=ran)
        except BaseException as e:  # Ctrl-C, a full disk: say what was made before the error line
            why = "interrupted" if isinstance(e, KeyboardInterrupt) else "the batch stopped"
            settled = {id(o.job) for o in ran}
            print_summary(outcomes + ran + [Outcome(j.output.name, "not run", 0.0, why) for j in jobs
                                            if id(j) not in settled])
            raise
        outcomes += ran
    print_summary(outcomes)
    if any(o.status == "failed" for o in outcomes):
        return EXIT_FAILURE
    return EXIT_USAGE if any(o.status == "skipped" for o in outcomes) else EXIT_OK


# ----------------------------------------------------------------------------------------------
# 14. --check: can this machine run the tool? Works offline, on tiny pipelines
# The tiny, randomly initialised pipelines keep the real compression (LTX VAE 32x spatial, 8x
# temporal) so size rules are real; the tests save and load them too.

TINY_VOCAB = ["<pad>", "</s>", "<unk>"] + [
    "\u2581" + w for w in "a the boat drifts at sunset cat dog sea sky waves camera slowly moves".split()]


def tiny_tokenizer():
    from transformers import T5TokenizerFast

    return T5TokenizerFast(vocab=[(w, 0.0 if i < 3 else -float(i)) for i, w in enumerate(TINY_VOCAB)],
                           extra_ids=0)


def tiny_text_encoder(d_model: int = 32, vocab_size: int = len(TINY_VOCAB)):
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                   relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(cfg).eval()


def tiny_ltx_pipeline(pipeline_class: str = "LTXImageToVideoPipeline", timestep_conditioning: bool = True,
                      heads: int = 2):
    """A complete LTX pipeline of a few hundred kB with the real 32x/8x VAE compression."""
    import diffusers
    import torch

    torch.manual_seed(0)
    transformer = diffusers.LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=heads,
        attention_head_dim=8, cross_attention_dim=8 * heads, num_layers=1, caption_channels=32)
    vae = diffusers.AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4, upsample_factor=(1,) * 4,
        timestep_conditioning=timestep_conditioning, patch_size=4, patch_size_t=1)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler()
    cls = getattr(diffusers, pipeline_class)
    return cls(scheduler=scheduler, vae=vae.eval(), text_encoder=tiny_text_encoder(), tokenizer=tiny_tokenizer(),
               transformer=transformer.eval())


def tiny_cogvideox_pipeline(version: str = "1.0", sample: tuple[int, int, int] = (12, 8, 9)):
    """CogVideoX image-to-video in miniature: 1.0 has learned positions (fixed 96x64, 9 frames),
    1.5 has temporal patches (any size in multiples of 16). Real 8x/4x VAE compression."""
    import diffusers
    import torch

    torch.manual_seed(0)
    learned = version == "1.0"
    transformer = diffusers.CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=sample[0] if learned else 40,
        sample_height=sample[1] if learned else 40, sample_frames=sample[2], patch_size=2,
        patch_size_t=None if learned else 2, temporal_compression_ratio=4, max_text_seq_length=226,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=learned,
        # 1.5's real config: an ofs embedding as wide as the time embedding, no patch bias
        ofs_embed_dim=None if learned else 2, patch_bias=learned)
    vae = diffusers.AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    return diffusers.CogVideoXImageToVideoPipeline(
        tokenizer=tiny_tokenizer(), text_encoder=tiny_text_encoder(), vae=vae.eval(), transformer=transformer.eval(),
        scheduler=diffusers.CogVideoXDDIMScheduler())


def tiny_latent_upsampler():
    import torch
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    torch.manual_seed(0)
    return LTXLatentUpsamplerModel(in_channels=8, mid_channels=32, num_blocks_per_stage=1).eval()


PASS, WARN, FAIL = "ok  ", "warn", "FAIL"


def run_check(device_name: str, log: Log) -> int:
    """--check: each line ok, warn or FAIL with its fix; exit 0 when nothing failed."""
    import platform
    import shutil

    results: list[tuple[str, str, str]] = []

    def report(mark: str, what: str, fix: str = "") -> None:
        results.append((mark, what, fix))
        emit(f"[{mark}] {what}" + (f"\n       fix: {fix}" if fix else ""))

    report(PASS if sys.version_info >= (3, 10) else FAIL, f"python {platform.python_version()}",
           "" if sys.version_info >= (3, 10) else "use Python 3.10+ (conda env create -f environment.yml)")
    try:
        import torch
    except ImportError:
        report(FAIL, "torch is not installed", "conda env create -f environment.yml")
        return EXIT_FAILURE
    bad_torch = torch.__version__.startswith("2.5.")
    report(WARN if bad_torch else PASS, f"torch {torch.__version__}",
           "torch 2.5.x renders LTX as noise on MPS: pip install -U torch" if bad_torch else "")
    for module in ("diffusers", "transformers", "accelerate", "sentencepiece", "imageio", "imageio_ffmpeg", "PIL"):
        try:
            version = getattr(__import__(module), "__version__", "?")
            report(PASS, f"{module} {version}")
        except ImportError:
            report(FAIL, f"{module} is missing", "pip install -r requirements.txt")
    quanto = _dist_version("optimum-quanto")  # metadata only: importing it takes seconds
    report(PASS if quanto else WARN, f"optimum-quanto {quanto}: int8/int4 weights for LTX-2" if quanto else
           "optimum-quanto is missing: LTX-2 runs only where it fits unquantized",
           "" if quanto else "pip install -r requirements.txt")
    mac = macos_version()
    if sys.platform == "darwin":
        report(PASS if mac and mac >= (14,) else WARN, f"macOS {'.'.join(map(str, mac or ()))}: bfloat16 "
               + ("supported" if mac and mac >= (14,) else "not supported (float32 is used)"),
               "" if mac and mac >= (14,) else "update to macOS 14+ for bfloat16 (half the memory)")
    built, available = torch.backends.mps.is_built(), torch.backends.mps.is_available()
    if sys.platform == "darwin":
        report(PASS if available else FAIL, f"MPS built: {built}, available: {available}",
               "" if available else "needs an Apple Silicon Mac, macOS 12.3+ and the macOS arm64 torch wheel")
    else:  # not a Mac: MPS cannot be there, which is no problem to fix
        report(PASS, f"not a Mac: runs on {'CUDA' if torch.cuda.is_available() else 'the CPU'} (MPS is macOS only)")
    report(PASS, f"{chip_name()}, {gib(total_memory_bytes()):.0f} GiB memory")
    if sys.platform == "darwin" and available:  # each installed Metal kernel and the conv3d path, checked now
        for line in kernel_check_lines("mps", pick_dtype("auto", "mps")):
            report(*line)
    else:
        report(PASS, "Metal attention kernels and the conv3d check: Macs only; chunked attention and "
                     "PyTorch's conv3d are used here")
    slow = ""
    with contextlib.suppress(UsageError):  # --device names a device this machine lacks: reported below
        lines, slow = default_video_lines(pick_device(device_name))
        for line in lines:
            report(*line)
    cache = hub_cache_dir()
    probe = cache
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    free = gib(shutil.disk_usage(probe).free)
    report(PASS if free >= 40 else WARN, f"{free:.0f} GiB free for the model cache ({cache})",
           "" if free >= 40 else "the default models need ~30-40 GiB; free some space or set HF_HOME")
    try:
        check_ffmpeg()
        report(PASS, "ffmpeg (imageio-ffmpeg) encodes H.264 yuv420p with AAC stereo audio (LTX-2's sound)")
    except Exception as e:  # any failure here means no video can be written
        report(FAIL, f"ffmpeg cannot encode H.264 with AAC: {e}", "pip install --force-reinstall imageio-ffmpeg")
    for alias, spec in MODELS.items():
        repo_dir = cached_repo_dir(spec.repo)
        if repo_dir.is_dir():
            size = sum(f.stat().st_size for f in (repo_dir / "blobs").glob("*") if f.is_file())
            report(PASS, f"cached: {alias} ({spec.repo}), {gib(size):.1f} GiB")
    if not any(cached_repo_dir(s.repo).is_dir() for s in MODELS.values()):
        report(PASS, "no model cached yet: the first run downloads the default (~26 GB, see the README)")
    try:
        device = pick_device(device_name)
        seconds = check_tiny_run(device)
        report(PASS, f"tiny LTX pipeline ran end to end on {device} in {seconds:.2f} s "
                     "(chunked attention, tiled decode)")
    except Exception as e:  # report, never crash: this is the diagnosis tool
        report(FAIL, f"tiny LTX pipeline failed on {device_name}: {e.__class__.__name__}: {e}",
               "try --device cpu to tell a device problem from an install problem")
    failed = sum(r[0] == FAIL for r in results)
    emit(f"{'ready' + slow if not failed else 'not ready'}: {failed} problem(s), "
         f"{sum(r[0] == WARN for r in results)} warning(s)")
    return EXIT_OK if not failed else EXIT_FAILURE


def default_video_lines(device: str) -> tuple[list[tuple[str, str, str]], str]:
    """--check's lines on the default video (5 s of 1080p) here: whether it fits (the same memory
    plan a run makes) and how long it would take; and the "but slow" note for the verdict."""
    import torch

    job, lines, slow = reference_job(), [], ""
    budget = memory_budget(job.request, device)
    dims = model_dims(model_folder(job.model_source), job.spec)
    elem = torch.tensor([], dtype=pick_dtype("auto", device)).element_size()
    plan = None
    try:  # the same plan a run makes: one source for the memory advice
        plan = plan_memory(job, dims, device, elem, budget, int(DEFAULT_ATTENTION_BUDGET_GIB * 2**30), job.request)
        lines.append((PASS, f"the default video (5 s of 1080p) fits: planned peak {plan.peak_gib:.1f} of "
                            f"{gib(budget):.1f} GiB on {device}, offload {plan.offload}", ""))
    except UsageError as e:
        lines.append((WARN, f"the default video (5 s of 1080p) does not fit {gib(budget):.1f} GiB on {device}",
                      str(e).split("; ", 1)[-1]))
    dtype = pick_dtype("auto", device)
    tflops = probe_rate(device, dtype)  # measured once per machine, as a run's plan uses it
    runs = timing_runs(job, plan, device, dtype_label(dtype)) if plan else []  # this Mac's own pace, once known
    seconds = estimate_seconds(job, tflops, runs=runs)
    if device == "cpu" and seconds > SLOW_SECONDS:
        slow = f" (but slow: a default video takes {describe_duration(seconds)} on this CPU)"
    lines.append((WARN if slow else PASS, "the default video would take " +
                  describe_estimate(job, device, tflops, runs=runs), ""))
    return lines, slow


def kernel_check_lines(device: str, dtype, kernels: Sequence[Kernel] | None = None, shapes=None,
                       tokens: int = KERNEL_CHECK_MAX) -> list[tuple[str, str, str]]:
    """--check's (mark, what, fix) lines: each attention kernel's self-check at LTX's and LTX-2's
    head sizes up to `tokens` (default: a 1080p stage's length, what the default video runs), and
    the conv3d path's at the default model's decoder shapes; run now, not read from the cache."""
    import importlib

    lines = []
    dtype_name = dtype_label(dtype)
    kernels = ATTENTION_KERNELS if kernels is None else kernels
    for kernel in kernels:
        try:
            module = importlib.import_module(kernel.module)
        except Exception:
            first = kernel is kernels[0]
            lines.append((WARN if first else PASS, f"Metal attention {kernel.package}: not installed (chunked "
                          "attention is used)", f"pip install {kernel.package}" if first else ""))
            continue
        verdict = check_kernel(kernel, module, device, dtype, tokens, (64, 128))  # LTX, LTX-2
        lines.append((PASS if verdict["ok"] else WARN, f"Metal attention {kernel_identity(kernel, module, dtype_name, device=device)}: "
                      + ("trusted, " if verdict["ok"] else "not trusted, ") + verdict["reason"],
                      "" if verdict["ok"] else "it is not used; --attention chunked is the safe choice"))
    shapes = shapes or vae_conv3d_shapes(model_folder(reference_job().model_source))
    verdict = check_conv3d(device, dtype, shapes)
    rates = f"; conv3d {verdict['stock_tflops']:.3g} TFLOPS, as conv2d {verdict['tflops']:.3g}" \
        if "tflops" in verdict else ""
    lines.append((PASS if verdict.get("correct") else WARN,
                  f"VAE {CONV3D_NAME} ({len(shapes)} decoder shapes, {dtype_name}): "
                  + ("used: " if verdict.get("ok") else "not used: ") + verdict["reason"] + rates,
                  "" if verdict.get("correct") else "it is not used; PyTorch's conv3d decodes"))
    return lines


def check_ffmpeg() -> None:
    """A 9-frame H.264 video with a 24 kHz stereo AAC track, written as every video is, read back."""
    import subprocess
    import tempfile

    import imageio_ffmpeg
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.mp4"
        writer = VideoWriter(path, 64, 48, 24, overwrite=False)
        with writer:
            writer.write(np.zeros((9, 48, 64, 3), np.uint8))
            tone = np.sin(np.arange(9000) * 2 * np.pi * 440 / 24000) * 0.5
            writer.add_audio(AudioTrack(np.stack([tone, tone]), 24000))
            writer.commit()
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
        if tuple(meta["size"]) != (64, 48) or "h264" not in meta.get("codec", "h264"):
            raise RuntimeError(f"unexpected stream {meta}")
        info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                              capture_output=True, text=True).stderr
        if not any("Audio: aac" in line and "24000 Hz" in line and "stereo" in line for line in info.splitlines()):
            raise RuntimeError("no AAC stereo track in the written file")


def check_tiny_run(device: str) -> float:
    """The real attention processor and tiled decode on a tiny pipeline, timed."""
    import numpy as np
    import torch
    from PIL import Image

    pipe = tiny_ltx_pipeline("LTXImageToVideoPipeline").to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.set_attn_processor(LTX.attention_processors(pipe, None, 64))
    pipe.vae.enable_tiling()
    pipe.vae.use_framewise_decoding = True
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = pipe(image=Image.new("RGB", (96, 64), (120, 80, 40)), prompt="a boat", height=64, width=96,
                   num_frames=25, num_inference_steps=2, generator=make_generator(device, 0), output_type="np")
    frames = out.frames[0]
    if frames.shape != (25, 64, 96, 3) or not np.isfinite(frames).all():
        raise RuntimeError(f"bad output {frames.shape}")
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------
# 15. Command line: the parser, and main as a numbered recipe


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once (options whose default depends on the model say so in words),
    keeps the examples one per line, and gives option names room so most help fits one line."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=min(110, max(80, __import__("shutil").get_terminal_size().columns)))

    def _get_help_string(self, action):
        text = action.help or ""
        if "default:" in text or action.default in (None, False):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    raise_errors = False  # a batch job's keys are checked by this parser too: its errors skip the job

    def error(self, message: str):  # one line, exit 2, no usage dump
        message = re.sub(r"^argument ", "", message)  # "error: --fps: ..." says it already
        if self.raise_errors:  # a batch job's or the web page's: the same line, where --help is no help
            raise UsageError(message)
        self.exit(EXIT_USAGE, f"error: {message}{self.did_you_mean(message)} (see --help)\n")

    def did_you_mean(self, message: str) -> str:
        """'; did you mean --prompt?' for a mistyped option (argparse 3.11 names it only)."""
        import difflib

        match = re.match(r"unrecognized arguments: (--?[\w-]+)", message)
        options = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        close = difflib.get_close_matches(match.group(1).split("=")[0], options, 1, 0.75) if match else []
        return f"; did you mean {close[0]}?" if close else ""


def attention_mode(text: str) -> str:
    """--attention: auto, metal, chunked (= slicing on), stock (= off) or rows per chunk."""
    return {"chunked": "on", "stock": "off", "metal": "metal"}.get(text) or slicing_mode(text)


def slicing_mode(text: str) -> str:
    if text in TRISTATE:
        return text
    with contextlib.suppress(ValueError):
        if int(text) > 0:
            return str(int(text))
    raise argparse.ArgumentTypeError("use auto, on, off, or a chunk size in query rows (e.g. 1024)")


def build_parser() -> argparse.ArgumentParser:
    # Help lines are kept short enough for an 80-column terminal: one line per option.
    p = _Parser(
        prog="generate_video.py",
        usage="%(prog)s --image PATH --prompt TEXT [options]",
        description="Turn an image and a prompt into an MP4, locally (models: --list-models).",
        formatter_class=_HelpFormatter,
        add_help=False,  # -h in "other" below: one group fewer on the screen
        epilog="examples:\n"
               "  python generate_video.py --image in.png --prompt \"a boat drifts at sunset\"\n"
               "  python generate_video.py --image in.png --prompt \"...\" --draft --variations 4\n"
               "  python generate_video.py --ui",
    )
    io = p.add_argument_group("input and output")
    io.add_argument("--image", action="append", metavar="PATH", help="PNG/JPEG/WebP/HEIC; repeat, or a folder: batch")
    io.add_argument("--prompt", metavar="TEXT", help="what should happen in the video")
    io.add_argument("--end-image", type=Path, metavar="PATH", default=None, help="the video ends on this image")
    io.add_argument("--keyframe", action="append", default=None, metavar="PATH@T",
                    help="image at T seconds (or #frame); repeat")
    io.add_argument("--extend", type=Path, metavar="VIDEO", default=None,
                    help="continue an MP4 (--extend-only: just the new)")
    io.add_argument("--extend-only", action="store_true", help=argparse.SUPPRESS)  # named in --extend's help
    io.add_argument("--segment-prompt", action="append", default=None, metavar="TEXT",
                    help="one part of a longer clip; repeat")
    io.add_argument("--negative-prompt", metavar="TEXT", default=None,
                    help="what to avoid (default: a built-in list)")
    io.add_argument("--output", "-o", type=Path, metavar="PATH", default=None,
                    help="the MP4 (default: <image>.mp4 here)")
    io.add_argument("--output-dir", metavar="DIR", default=None, help="folder for the videos (batch, --ui)")
    io.add_argument("--jobs", metavar="FILE", default=None, help="batch: JSON Lines, one video per line")
    io.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    io.add_argument("--outputs-anywhere", action="store_true", help=argparse.SUPPRESS)  # batch; in the README

    m = p.add_argument_group("model")
    m.add_argument("--model", metavar="ID_OR_DIR", default=None, help="alias, Hub id or folder (see --list-models)")
    m.add_argument("--list-models", action="store_true", help=argparse.SUPPRESS)  # named in the description
    m.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET, help="quality: the maker's recipe")
    m.add_argument("--upsampler", metavar="ID_OR_DIR", default=None, help="latent upscaler (default: the model's)")
    m.add_argument("--no-audio", action="store_true", help="LTX-2: leave out the sound it makes")
    m.add_argument("--enhance-prompt", action="store_true", help="LTX-2: Gemma rewrites the prompt first")
    m.add_argument("--audio", metavar="FILE", help="LTX-2: a soundtrack to make the video to")

    v = p.add_argument_group("size and length")
    v.add_argument("--resolution", choices=tuple(RESOLUTIONS), default=None,
                   help=f"short side (default: {DEFAULT_RESOLUTION})")
    v.add_argument("--width", type=positive_int, default=None, metavar="PX", help="exact size, with --height PX (even)")
    v.add_argument("--height", type=positive_int, default=None, metavar="PX", help=argparse.SUPPRESS)  # in --width's
    v.add_argument("--duration", type=duration_seconds, default=None, metavar="SECONDS",
                   help=f"length (default: {DEFAULT_DURATION_S:g})")
    v.add_argument("--num-frames", type=positive_int, default=None, metavar="N",
                   help="frames instead of --duration (8k+1)")
    v.add_argument("--fps", type=positive_int, default=None, help=f"frames per second (default: {DEFAULT_FPS})")

    d = p.add_argument_group("sampling, drafts and LoRAs")
    d.add_argument("--steps", type=positive_int, default=None, metavar="N", help="a full (undistilled) model's steps")
    d.add_argument("--guidance-scale", type=guidance_value, default=None, metavar="F",
                   help="guidance (default: the model's)")
    d.add_argument("--seed", type=seed_int, default=None, metavar="N", help="random seed (default: random)")
    d.add_argument("--draft", action="store_true", help="fast preset's stage 1 only: half size, quick")
    d.add_argument("--variations", type=positive_int, default=1, metavar="N", help="N videos, consecutive seeds")
    d.add_argument("--from-draft", type=Path, default=None, metavar="JSON",
                   help="full video of a draft, reusing its stage 1")
    d.add_argument("--lora", action="append", default=None, metavar="SRC[:SCALE]",
                   help="LoRA file or Hub id (repeat; @half/@full)")

    add_machine_options(p)
    return p


def add_machine_options(p: argparse.ArgumentParser) -> None:
    """build_parser's last two groups: the hardware and memory options, and the others."""
    h = p.add_argument_group("hardware and memory (auto: chosen by the plan)")
    h.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE, help="auto: mps, cuda, then cpu")
    h.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE, metavar="TYPE",
                   help="auto|bfloat16|float16|float32")
    h.add_argument("--attention-slicing", type=slicing_mode, default="auto", help=argparse.SUPPRESS)  # old name
    h.add_argument("--attention", type=attention_mode, default="auto", metavar="MODE", dest="attention_slicing",
                   help="auto|metal|chunked|stock|N (default: auto)")
    h.add_argument("--conv3d", choices=CONV3D_MODES, default="auto", metavar="MODE",
                   help="VAE: auto|conv2d|stock (default: auto)")
    h.add_argument("--vae-tiling", choices=TRISTATE, default="auto", help="tiled VAE decode")
    h.add_argument("--offload", choices=OFFLOADS, default="auto", metavar="MODE", help="auto|none|model|sequential")
    h.add_argument("--quantize", choices=QUANTIZE, default="auto", metavar="MODE",
                   help="LTX-2: auto|none|int8|int4 (default: auto)")
    h.add_argument("--memory-budget", type=memory_gb, default=None, metavar="GB", dest="memory_budget_gb",
                   help="GB to use (default: 75%% of a Mac's)")

    o = p.add_argument_group("other")
    o.add_argument("-h", "--help", action="help", help="show this help and exit")
    o.add_argument("--check", action="store_true", help="check this machine and exit (works offline)")
    o.add_argument("--ui", action="store_true", help=f"a page in your browser (--port: {UI_PORT})")
    o.add_argument("--port", type=port_int, default=UI_PORT, help=argparse.SUPPRESS)  # named in --ui's help
    o.add_argument("--listen", action="store_true", help=argparse.SUPPRESS)  # README: serves the network
    o.add_argument("--no-browser", action="store_true", help=argparse.SUPPRESS)  # README
    o.add_argument("-v", "--verbose", action="store_true", help="library logs, tracebacks (-q: errors only)")
    o.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)  # named in --verbose's help
    o.add_argument("--version", action="version", version=f"%(prog)s {__version__}", help=argparse.SUPPRESS)


def list_models() -> str:
    """--list-models: every alias, its Hub repo and what it is for."""
    width = max(len(a) for a in MODELS)
    lines = [f"{alias.ljust(width)}  {spec.repo}\n{' ' * width}  {spec.note}" for alias, spec in MODELS.items()]
    return "\n".join(lines) + "\n\nAny Hub id (org/name) or local diffusers folder of these pipelines works too: " + \
        ", ".join(FAMILIES) + "."


def is_batch(args: argparse.Namespace) -> bool:
    """Several videos: --jobs, several --image, or a folder of images (then not --output)."""
    if args.jobs and args.image:
        raise UsageError("give either --jobs or --image, not both")
    batch = bool(args.jobs) or len(args.image or []) > 1 or any(Path(i).is_dir() for i in args.image or [])
    if batch and args.output:
        raise UsageError("--output names one video; use --output-dir for a batch")
    return batch


def single_request(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Request:
    """One video's Request from the command line (a draft's settings filled in for --from-draft)."""
    if args.from_draft:
        fill_from_draft(args, parser)
    if args.extend and not args.image:  # the video is the picture to continue
        args.image = [str(args.extend)]
    if args.extend_only and not args.extend:
        raise UsageError("--extend-only goes with --extend VIDEO")
    if not args.image:
        raise UsageError("--image is required (or --jobs FILE, or --check)")
    if not args.prompt and not args.segment_prompt:
        raise UsageError("--prompt is required: describe what should happen")
    args.prompt = args.prompt or ""
    if args.output_dir:
        raise UsageError("--output-dir is for batches; use --output for one video")
    return request_from_args(args, Path(args.image[0]))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line, as a recipe: parse; --check or --list-models; else plan every video
    before any model loads, then run them (a batch: each job planned, then run)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors: argparse already printed
        return int(e.code or 0)
    log = Log(LOG_QUIET if args.quiet else LOG_VERBOSE if args.verbose else LOG_NORMAL)
    try:
        # 1. What to do: --check, --list-models, a batch, or one video.
        if args.check:
            return run_check(args.device, log)
        if args.list_models:
            emit(list_models())
            return EXIT_OK
        check_page_args(args, parser)
        if args.ui:
            with terminate_like_ctrl_c():
                return run_page(args, parser, log)
        if is_batch(args):
            with terminate_like_ctrl_c():
                return run_batch(args, parser, log)
        # 2. Validate everything cheap and plan the job, before any model is loaded.
        jobs = made_before(expand_variations(plan_job(single_request(args, parser), log)), log)
        # 3. Load once, encode, denoise, decode, write (run_group's recipe).
        with terminate_like_ctrl_c():
            run_jobs(jobs, log, batch=False)
        return EXIT_OK
    except UsageError as e:
        emit(f"error: {e}", sys.stderr)
        return EXIT_USAGE
    except RunError as e:
        if args.verbose:
            import traceback

            traceback.print_exc()
        emit(f"error: {e}{notes(e)}", sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as e:
        if isinstance(e, Terminated):
            import signal

            emit(f"interrupted by {signal.Signals(e.signum).name}: no partial file was left behind{notes(e)}",
                 sys.stderr)
            return 128 + e.signum
        emit(f"interrupted: no partial file was left behind{notes(e)}", sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # an unexpected failure: one line, the traceback with -v
        if args.verbose:
            import traceback

            traceback.print_exc()
        emit(f"error: {e.__class__.__name__}: {first_line(e)} (run with -v for details){notes(e)}", sys.stderr)
        return EXIT_FAILURE


# ----------------------------------------------------------------------------------------------
# 16. The web page (--ui): the command line's requests, plans and runs behind a local page
# Gradio is imported only here. The page's fields become the command line's words and go through
# the same parser, planner, loader and writer (no second path); one worker thread makes the
# queue's videos in order, keeping the model loaded between runs of the same model (Kept).

UI_INPUTS = "inputs"  # in the videos' folder: files dropped on the page, kept so "make again" works later
UI_POLL_SECONDS = 1.0  # the page asks for the queue's state this often
UI_HISTORY = 40  # videos listed, newest first
UI_VARIATIONS = 3  # "variations" of a finished video: this many, on the seeds after its own
UI_LOG_LINES = 12  # the running job's last lines on the page
# The page's fields in the order of the generate API's parameters: (name, the option it becomes,
# its label). image, prompt and model are the API's required ones; the rest fall to the defaults.
PAGE_FIELDS = (
    ("image", "--image", "Image: PNG, JPEG, WebP or HEIC"),
    ("prompt", "--prompt", "What should happen"),
    ("model", "--model", "Model (or a local folder, or a Hub id)"),
    ("duration", "--duration", f"Length in seconds (empty: {DEFAULT_DURATION_S:g})"),
    ("resolution", "--resolution", "Resolution"),
    ("preset", "--preset", "Quality"),
    ("seed", "--seed", "Seed (empty: a random one)"),
    ("end_image", "--end-image", "End on this image"),
    ("keyframes", "--keyframe", "Keyframe images"),
    ("keyframe_times", None, "Their times in seconds, in order (2, 3.5)"),
    ("extend", "--extend", "Continue this clip (MP4)"),
    ("upsampler", "--upsampler", "Latent upscaler: a folder or Hub id (empty: the model's)"),
    ("lora", "--lora", "LoRAs: a .safetensors file or Hub id, :scale, one a line"),
    ("negative_prompt", "--negative-prompt", "Avoid (empty: the built-in list)"),
    ("guidance_scale", "--guidance-scale", "Guidance (empty: the model's)"),
    ("steps", "--steps", "Steps (full models; empty: the model's)"),
    ("draft", "--draft", "Draft: stage 1 only, half size, quick"),
)
PAGE_NAMES = tuple(name for name, _, _ in PAGE_FIELDS)
PAGE_FILES = ("image", "end_image", "keyframes", "extend")  # uploads: copied into UI_INPUTS
# The command line options a page takes (the rest are its fields): where it serves and stores, and
# the hardware options, which every job of the page then gets.
PAGE_OPTIONS = ("ui", "port", "listen", "no_browser", "output_dir", "verbose", "quiet")
PAGE_HARDWARE = ("device", "dtype", "attention_slicing", "conv3d", "vae_tiling", "offload", "quantize",
                 "memory_budget_gb")


def page_argv(fields: dict, output: Path) -> list[str]:
    """The command line's words for the page's fields (empty ones left out: the CLI's defaults)."""
    argv = []
    for name, option, _ in PAGE_FIELDS:
        value = fields.get(name)
        if option is None or value is None or value is False or (isinstance(value, (str, list)) and not value):
            continue
        if name == "keyframes":
            argv += keyframe_words(value, fields.get("keyframe_times") or "")
        elif name == "lora":
            argv += [f"--lora={line.strip()}" for line in str(value).splitlines() if line.strip()]
        elif value is True:
            argv.append(option)
        elif str(value).strip():  # --option=value: a prompt that starts with '-' stays a value
            argv.append(f"{option}={value:g}" if isinstance(value, float) else f"{option}={str(value).strip()}")
    if fields.get("keyframe_times") and not fields.get("keyframes"):
        raise UsageError("keyframe times without keyframe images: drop the images, one for each time")
    return argv + [f"--output={output}"]


def keyframe_words(paths: list, times_text: str) -> list[str]:
    """--keyframe PATH@T for each dropped keyframe image and its time, in order."""
    times = [t for t in re.split(r"[,;\s]+", times_text.strip()) if t]
    if len(times) != len(paths):
        raise UsageError(f"give one time for each keyframe image: {len(paths)} image(s), {len(times)} time(s)")
    return [f"--keyframe={path}@{t}" for path, t in zip(paths, times)]


def page_jobs(argv: list[str], log: Log) -> list[Job]:
    """The jobs the command line would plan for these words: the same parser, checks and planner
    (UsageError with the same one line)."""
    parser = build_parser()
    parser.raise_errors = True
    args = parser.parse_args(argv)
    return expand_variations(plan_job(single_request(args, parser), log))


def keep_input(path: str, out_dir: Path) -> str:
    """A file dropped on the page (Gradio's temporary copy) kept in the videos' folder under its
    own name, so a video's sidecar and "make again" still find it after Gradio's cache is gone."""
    import shutil

    source = Path(path)
    kept = out_dir / UI_INPUTS / file_sha256(source)[:12] / source.name
    if not kept.is_file():
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_name(f".{kept.name}.partial")
        shutil.copyfile(source, tmp)
        os.replace(tmp, kept)
    return str(kept.resolve())


def page_history(out_dir: Path) -> list[dict]:
    """The videos in the page's folder, newest first, each its sidecar's data with `video` and
    `sidecar` paths; a video without a readable sidecar of ours is not listed."""
    items = []
    for sidecar in sorted(out_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        with contextlib.suppress(OSError, ValueError):
            data = read_json(sidecar)
            video = sidecar.with_suffix(".mp4")
            if isinstance(data, dict) and isinstance(data.get("command"), str) and video.is_file():
                items.append(dict(data, video=video, sidecar=sidecar))
        if len(items) == UI_HISTORY:
            break
    return items


def describe_video(data: dict) -> str:
    """A finished video's settings, for the page (from its sidecar)."""
    total = (data.get("timings_s") or {}).get("total")
    return (f"**{data['video'].name}**: {data.get('width')}x{data.get('height')}, {data.get('duration_s')} s at "
            f"{data.get('fps')} fps, seed {data.get('seed')}, {data.get('model')} ({data.get('preset')} preset)"
            + (", a draft" if data.get("draft") else "") + (f", made in {describe_seconds(total)}" if total else "")
            + f"\n\n{data.get('prompt', '')}\n\n`{data['command']}`")


@dataclass
class QueueEntry:
    """One request on the page's queue, and what became of it."""

    number: int
    argv: list[str]
    title: str
    output: Path
    state: str = "waiting"  # waiting, running, done, failed, cancelled, stopped
    lines: list[str] = field(default_factory=list)  # its log
    status: str = ""  # its latest progress or log line
    outputs: list[Path] = field(default_factory=list)
    error: str = ""
    cancel: Any = None  # threading.Event: the page's Cancel
    finished: Any = None  # threading.Event: set once it ended, however


class PageLog(Log):
    """A queued job's log: its lines kept for the page (and echoed to the terminal the page was
    started from), its progress as its status line, and the page's Cancel (or the server
    stopping) raised at its next step."""

    def __init__(self, entry: QueueEntry, queue: JobQueue):
        super().__init__(LOG_NORMAL)
        self.entry, self.queue = entry, queue

    def write(self, line: str) -> None:
        self.entry.lines.append(line)
        self.entry.status = line.strip()
        self.queue.echo.info(f"[{self.entry.number}] {line}")

    @property
    def redraws(self) -> bool:
        return True  # the page shows the latest line

    def status(self, text: str, width: int, last: bool = False) -> None:
        if text.strip():
            self.entry.status = text.strip()

    def check(self) -> None:
        if self.entry.cancel.is_set():
            raise Cancelled()
        if self.queue.stopping:
            raise KeyboardInterrupt()


class JobQueue:
    """The page's jobs, made one at a time in the order they were added, by one worker thread. It
    lives in the server, so a page reloaded (or a second one) finds it as it was."""

    def __init__(self, out_dir: Path, hardware: list[str], echo: Log):
        import threading

        self.out_dir, self.hardware, self.echo = out_dir, hardware, echo
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot make the videos' folder {out_dir}: {e.strerror}") from None
        self.entries: list[QueueEntry] = []
        self.changed = threading.Condition()
        self.kept = Kept()
        self.stopping = False
        self.worker = threading.Thread(target=self.work, daemon=True, name="generate_video queue")
        self.worker.start()

    def add(self, words: Callable[[Path], list[str]], name_from: Path, title: str) -> QueueEntry:
        """Checked as the command line checks it before it joins (a UsageError is the page's error
        line); `words(output)`: its options; its video gets a name no other job holds."""
        import threading

        with self.changed:
            taken = [e.output for e in self.entries if e.state in ("waiting", "running")]
            output = unique_output_path(name_from, self.out_dir.resolve(), taken=taken)
            argv = words(output) + self.hardware
            page_jobs(argv, Log(LOG_QUIET))
            entry = QueueEntry(len(self.entries) + 1, argv, title, output, cancel=threading.Event(),
                               finished=threading.Event())
            self.entries.append(entry)
            self.echo.info(f"[{entry.number}] queued: {title} -> {output.name}")  # before the worker's first line
            self.changed.notify_all()
        return entry

    def work(self) -> None:
        while True:
            with self.changed:
                while not self.stopping and not any(e.state == "waiting" for e in self.entries):
                    self.changed.wait()
                if self.stopping:
                    return
                entry = next(e for e in self.entries if e.state == "waiting")
                entry.state = "running"
            self.run(entry)
            with self.changed:
                self.changed.notify_all()

    def run(self, entry: QueueEntry) -> None:
        """One entry through the command line's own steps: planned again (its files may have
        changed since), then run_jobs; each ending as the command line words it."""
        log = PageLog(entry, self)
        try:
            outcomes = run_jobs(page_jobs(entry.argv, log), log, batch=False, kept=self.kept)
            entry.outputs = [o.job.output for o in outcomes if o.status == "done" and o.job is not None]
            entry.state = "done"
        except Cancelled:
            entry.state, entry.error = "cancelled", "cancelled: no partial file was left behind"
        except KeyboardInterrupt as e:
            entry.state, entry.error = "stopped", f"stopped with the page: no partial file was left behind{notes(e)}"
        except UsageError as e:
            entry.state, entry.error = "failed", f"error: {e}"
        except RunError as e:
            entry.state, entry.error = "failed", f"error: {e}{notes(e)}"
        except Exception as e:  # one line, as the command line says it; the traceback with -v
            if self.echo.level >= LOG_VERBOSE:
                import traceback

                traceback.print_exc()
            entry.state, entry.error = "failed", f"error: {e.__class__.__name__}: {first_line(e)}{notes(e)}"
        finally:
            if entry.error:
                log.write(entry.error)
            entry.finished.set()

    def cancel(self, number: int | None = None) -> str:
        """The running job (or job `number`): a waiting one leaves the queue, a running one ends at
        its next step."""
        with self.changed:
            for e in self.entries:
                if e.number == number or (number is None and e.state == "running"):
                    if e.state == "waiting":
                        e.state, e.error = "cancelled", "cancelled before it started"
                        e.finished.set()
                        return f"job {e.number} left the queue"
                    if e.state == "running":
                        e.cancel.set()
                        return f"cancelling job {e.number}: it ends at its next step, leaving nothing behind"
        return "nothing to cancel"

    def stop(self) -> None:
        """The server stops: no new job starts, the running one ends at its next step (as Ctrl-C
        ends a run: its resume state kept)."""
        with self.changed:
            self.stopping = True
            for e in self.entries:
                if e.state == "waiting":  # never started: their callers are answered now
                    e.state, e.error = "stopped", "the page stopped before this job started"
                    e.finished.set()
            self.changed.notify_all()

    def state(self) -> list[dict]:
        return [{"number": e.number, "title": e.title, "state": e.state, "status": e.status, "error": e.error,
                 "output": str(e.output), "outputs": [str(p) for p in e.outputs], "lines": e.lines}
                for e in self.entries]


class Page:
    """What the page's buttons and fields do, each on the queue or the videos' folder."""

    def __init__(self, queue: JobQueue):
        self.queue, self.out_dir = queue, queue.out_dir

    def enqueue(self, values: Sequence) -> QueueEntry:
        fields = dict(zip(PAGE_NAMES, values))
        if not fields.get("image"):
            raise UsageError("drop an image first (PNG, JPEG, WebP or HEIC)")
        self.planned(fields)  # checked as dropped: a refused job keeps no copy, and its error names the file so
        for name in PAGE_FILES:  # dropped files kept beside the videos
            value = fields.get(name)
            try:
                if value:
                    fields[name] = [keep_input(v, self.out_dir) for v in value] if isinstance(value, list) else \
                        keep_input(value, self.out_dir)
            except OSError as e:
                raise UsageError(f"cannot keep the {name.replace('_', ' ')} in {self.out_dir / UI_INPUTS}: "
                                 f"{e.strerror or e}") from None
        title = f"{Path(fields['image']).name}: {str(fields.get('prompt') or '')[:50]}"
        return self.queue.add(lambda output: page_argv(fields, output), Path(fields["image"]), title)

    def planned(self, fields: dict) -> list[Job]:
        """The jobs these fields make, checked and planned as the command line would (UsageError)."""
        output = unique_output_path(Path(fields["image"]), self.out_dir.resolve())
        return page_jobs(page_argv(fields, output) + self.queue.hardware, Log(LOG_QUIET))

    def generate(self, *values) -> str:
        """The API: queued like the page's button, answered when its video is written (its path)."""
        import gradio as gr

        try:
            entry = self.enqueue(values)
        except UsageError as e:
            raise gr.Error(f"error: {e}", print_exception=False) from None
        entry.finished.wait()
        if entry.state != "done" or not entry.outputs:
            raise gr.Error(entry.error or f"job {entry.number} {entry.state}", print_exception=False)
        return str(entry.outputs[0])

    def submit(self, *values) -> str:
        try:
            entry = self.enqueue(values)
        except UsageError as e:
            return f"error: {e}"
        waiting = sum(e.state == "waiting" for e in self.queue.entries)
        return f"job {entry.number} queued ({waiting} waiting): {entry.output.name}"

    def preview(self, *values) -> str:
        """The plan the command line would print, before anything loads: the download, memory against
        this machine's budget, savings and time; a job that cannot fit, refused with what would."""
        fields = dict(zip(PAGE_NAMES, values))
        if not fields.get("image") or not str(fields.get("prompt") or "").strip():
            return "Drop an image and say what should happen: the plan (download, memory, time) shows here."
        try:
            job = self.planned(fields)[0]
            device = pick_device(job.request.device)
            rt = Runtime(device, pick_dtype(job.request.dtype, device), Log(LOG_QUIET))
            plan, _ = settle_job(rt, job)
            return "\n".join(plan_lines(rt, job, plan, probe_rate(rt.device, rt.dtype)))
        except (UsageError, RunError) as e:
            return f"error: {e}"
        except Exception as e:  # the plan is advice: a failure here is said, not raised
            return f"error: {e.__class__.__name__}: {first_line(e)}"

    def history_rows(self, items: list[dict] | None = None) -> list[list]:
        """The list's rows: of `items` (page_history's), or of the folder read now."""
        return [[d["video"].name, str(d.get("prompt", ""))[:60], str(d.get("model")), f"{d.get('width')}x{d.get('height')}",
                 f"{d.get('duration_s')} s", d.get("seed"), "draft" if d.get("draft") else ""]
                for d in (page_history(self.out_dir) if items is None else items)]

    def chosen(self, name: str) -> dict | None:
        return next((d for d in page_history(self.out_dir) if d["video"].name == name), None)

    def again(self, name: str, variations: bool = False) -> str:
        """"Make again" (its own command: the same seed) or "variations" (the seeds after it)."""
        import shlex

        data = self.chosen(name)
        if data is None:
            return "choose a video in the list first"
        # its image by the absolute path its sidecar keeps (a command line run's may be relative)
        words = [f"--image={data['image']}" if w.startswith("--image=") else w for w in shlex.split(data["command"])[2:]]
        if variations:
            words += [f"--seed={(int(data['seed']) + 1) % (MAX_SEED + 1)}", f"--variations={UI_VARIATIONS}"]
        return self.queued(lambda output: words + [f"--output={output}"], data["video"],
                           f"{data['video'].name} " + (f"x{UI_VARIATIONS} new seeds" if variations else "again"))

    def full(self, name: str) -> str:
        """"Render this draft in full": --from-draft, its stage 1 reused."""
        data = self.chosen(name)
        if data is None or not data.get("draft"):
            return "choose a draft in the list first (made with Draft ticked)"
        return self.queued(lambda output: [f"--from-draft={data['sidecar']}", f"--output={output}"],
                           data["video"].with_name(data["video"].stem + "-full.mp4"), f"{data['video'].name} in full")

    def queued(self, words: Callable[[Path], list[str]], name_from: Path, title: str) -> str:
        try:
            entry = self.queue.add(words, name_from, title)
        except UsageError as e:
            return f"error: {e}"
        return f"job {entry.number} queued: {entry.output.name}"

    def board(self) -> tuple[str, str]:
        """(the queue in lines, the running or latest job's log)."""
        lines = [f"{e.number}. {e.title} ({e.output.name}): "
                 + (f"running: {e.status}" if e.state == "running" else e.error or e.state)
                 for e in self.queue.entries[-10:]]
        current = next((e for e in reversed(self.queue.entries) if e.state == "running"), None) or \
            next((e for e in reversed(self.queue.entries) if e.state != "waiting"), None)
        log = "\n".join(current.lines[-UI_LOG_LINES:] + ([current.status] if current.state == "running" else [])) \
            if current else ""
        return ("\n".join(lines) or "The queue is empty."), log

    def status(self) -> str:
        """The API's view of the queue: each job's number, state, latest line and video paths (JSON)."""
        return json.dumps(self.queue.state())

    def cancel(self) -> str:
        return self.queue.cancel()

    def refresh(self, seen: int) -> tuple:
        """The timer's tick: the queue and log always; the newest video, its settings and the
        list of videos when a job ended since the last tick (`seen`: jobs ended then)."""
        import gradio as gr

        board, log = self.board()
        ended = [e for e in self.queue.entries if e.finished.is_set()]
        if len(ended) == seen:
            return board, log, gr.skip(), gr.skip(), gr.skip(), seen
        latest = next((e for e in reversed(ended) if e.outputs), None)
        items = page_history(self.out_dir)  # read once for both the newest video and the list
        data = next((d for d in items if latest and d["video"].name == latest.outputs[-1].name), None)
        return (board, log, str(data["video"]) if data else gr.skip(), describe_video(data) if data else gr.skip(),
                self.history_rows(items), len(ended))

    def select(self, name: str) -> tuple:
        """A video clicked in the list: (its name, the video, its settings)."""
        import gradio as gr

        data = self.chosen(name)
        return (name, str(data["video"]), describe_video(data)) if data else ("", gr.skip(), "it is gone from the folder")


def page_inputs(gr) -> list:
    """The page's input fields in PAGE_FIELDS order, the advanced ones folded away."""
    label = {name: text for name, _, text in PAGE_FIELDS}
    # No file_types and open choices: Gradio would refuse a file or a value itself, in its own words
    # and with a traceback in the terminal; the command line's checks judge them, in its words.
    image = gr.File(label=label["image"], type="filepath", elem_id="image", height=150)
    prompt = gr.Textbox(label=label["prompt"], lines=3, elem_id="prompt",
                        placeholder="the camera slowly pushes in as waves roll onto the beach")
    model = gr.Dropdown([("auto: the preset's model", "")] + [
        (f"{alias}: {spec.note.split(':')[0].split(';')[0][:70]}", alias) for alias, spec in MODELS.items()],
        value="", allow_custom_value=True, label=label["model"])
    with gr.Row():
        # numbers as text: the command line's own parser reads them (its checks, its one-line errors)
        duration = gr.Textbox(label=label["duration"], placeholder=f"{DEFAULT_DURATION_S:g}")
        resolution = gr.Dropdown([(f"default ({DEFAULT_RESOLUTION})", "")] + list(RESOLUTIONS), value="",
                                 label=label["resolution"], allow_custom_value=True)
        preset = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label=label["preset"], allow_custom_value=True)
    with gr.Accordion("Advanced", open=False):
        seed = gr.Textbox(label=label["seed"], placeholder="random")
        with gr.Row():
            end_image = gr.File(label=label["end_image"], type="filepath", height=110)
            keyframes = gr.File(label=label["keyframes"], file_count="multiple", type="filepath", height=110)
        keyframe_times = gr.Textbox(label=label["keyframe_times"])
        extend = gr.File(label=label["extend"], type="filepath", height=110)
        upsampler = gr.Textbox(label=label["upsampler"])
        lora = gr.Textbox(label=label["lora"], lines=2)
        negative_prompt = gr.Textbox(label=label["negative_prompt"])
        with gr.Row():
            guidance_scale = gr.Textbox(label=label["guidance_scale"], placeholder="the model's")
            steps = gr.Textbox(label=label["steps"], placeholder="the model's")
        draft = gr.Checkbox(label=label["draft"], value=False)
    return [image, prompt, model, duration, resolution, preset, seed, end_image, keyframes, keyframe_times, extend,
            upsampler, lora, negative_prompt, guidance_scale, steps, draft]


def build_page(page: Page):
    """The page: inputs and plan on the left, the video, queue and progress on the right, the
    videos made below; then what each control does (wire_page)."""
    import types

    import gradio as gr

    with gr.Blocks(title="generate_video", analytics_enabled=False) as demo:
        gr.Markdown("## generate_video: a picture and a sentence become a video, on this computer")
        with gr.Row():
            with gr.Column():
                fields = page_inputs(gr)
                plan = gr.Textbox(label="Plan (before anything loads)", lines=9, max_lines=18, interactive=False,
                                  elem_id="plan", value=page.preview())
                with gr.Row():
                    make = gr.Button("Make the video", variant="primary", elem_id="make")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                message = gr.Markdown(elem_id="message")
            with gr.Column():
                video = gr.Video(label="Video", interactive=False, elem_id="video")
                settings = gr.Markdown()
                board = gr.Textbox(label="Queue", lines=3, max_lines=10, interactive=False, elem_id="queue")
                log = gr.Textbox(label="Progress", lines=8, interactive=False, elem_id="progress")
        gr.Markdown("### Your videos (click one to play it)")
        history = gr.Dataframe(headers=["video", "prompt", "model", "size", "length", "seed", "draft"],
                               value=page.history_rows(), interactive=False, wrap=True)
        with gr.Row():
            again = gr.Button("Make again (same seed)")
            more = gr.Button(f"{UI_VARIATIONS} variations (new seeds)")
            full = gr.Button("Render this draft in full")
        ui = types.SimpleNamespace(
            fields=fields, plan=plan, make=make, cancel=cancel, message=message, video=video, settings=settings,
            board=board, log=log, history=history, again=again, more=more, full=full, chosen=gr.State(""),
            seen=gr.State(0), path=gr.Textbox(visible=False), api=gr.Button(visible=False),
            status=gr.Button(visible=False), timer=gr.Timer(UI_POLL_SECONDS))
        wire_page(gr, page, ui, demo)
    return demo


def wire_page(gr, page: Page, ui, demo) -> None:
    """What each control does. The API has three names: generate (blocking: the MP4's path),
    cancel and status; the page's own events are kept out of it."""
    import inspect

    private = {"api_visibility": "private"}
    gr.on([f.change for f in ui.fields], page.preview, ui.fields, ui.plan, trigger_mode="always_last",
          show_progress="hidden", **private)
    ui.make.click(page.submit, ui.fields, ui.message, **private)
    ui.cancel.click(page.cancel, None, ui.message, api_name="cancel")

    def generate(*values):
        return page.generate(*values)

    required = ("image", "prompt", "model")
    generate.__signature__ = inspect.Signature([  # the API's parameters: the fields' names
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          default=inspect.Parameter.empty if name in required else None) for name in PAGE_NAMES])
    ui.api.click(generate, ui.fields, ui.path, api_name="generate", concurrency_limit=None)
    ui.status.click(page.status, None, ui.path, api_name="status", concurrency_limit=None)
    outputs = [ui.board, ui.log, ui.video, ui.settings, ui.history, ui.seen]
    ui.timer.tick(page.refresh, ui.seen, outputs, show_progress="hidden", **private)
    demo.load(page.refresh, ui.seen, outputs, **private)  # a page (re)loaded: the queue as it is

    def select(evt):
        return page.select(str((evt.row_value or [""])[0]))

    select.__annotations__ = {"evt": gr.SelectData}  # how Gradio knows to hand it the click
    ui.history.select(select, None, [ui.chosen, ui.video, ui.settings], **private)
    ui.again.click(lambda name: page.again(name), ui.chosen, ui.message, **private)
    ui.more.click(lambda name: page.again(name, variations=True), ui.chosen, ui.message, **private)
    ui.full.click(page.full, ui.chosen, ui.message, **private)


def check_page_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """--ui takes a video's settings on the page: one given on the command line beside it would do
    nothing, so it is refused; the page's own options without --ui likewise."""
    if not args.ui:
        given = [o for o, on in (("--port", args.port != UI_PORT), ("--listen", args.listen),
                                 ("--no-browser", args.no_browser)) if on]
        if given:
            raise UsageError(f"{given[0]} goes with --ui (the web page)")
        return
    for action in parser._actions:
        if action.option_strings and action.dest not in PAGE_OPTIONS + PAGE_HARDWARE + ("help", "version") \
                and getattr(args, action.dest) != action.default:
            raise UsageError(f"{action.option_strings[0]} with --ui: a video's settings are given on the page; "
                             "beside --ui give only --port, --listen, --no-browser, --output-dir and the "
                             "hardware options")


def hardware_words(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The hardware options given beside --ui, as words every job of the page gets."""
    return [f"{a.option_strings[0]}={getattr(args, a.dest)}" for a in parser._actions
            if a.dest in PAGE_HARDWARE and a.help is not argparse.SUPPRESS and getattr(args, a.dest) != a.default]


def check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise UsageError(f"port {port} is taken (another --ui page?): stop it, or use --port N") from None


def wants_browser(args: argparse.Namespace) -> bool:
    """Open the page, unless --no-browser or there is no screen here (over ssh, a Linux without one)."""
    if args.no_browser or os.environ.get("SSH_CONNECTION"):
        return False
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def one_line_refusals(log: Log) -> None:
    """A request Gradio refuses before our code runs (an API call with a file it never uploaded, a
    value of the wrong shape) is one warning line in the terminal, not the traceback Gradio prints
    (that stays for -v): Gradio's queue prints through its module's `traceback`."""
    import types

    from gradio import queueing

    def print_exc(*args, **kwargs) -> None:
        log.warn(f"the page refused a request: {first_line(sys.exc_info()[1], 'no reason given')}")

    queueing.traceback = types.SimpleNamespace(print_exc=print_exc)


def run_page(args: argparse.Namespace, parser: argparse.ArgumentParser, log: Log) -> int:
    """--ui: the page served on 127.0.0.1 (the network with --listen) until Ctrl-C; the running
    job then ends at its next step as a stopped run does (keeping the resume state it saved)."""
    out_dir = Path(args.output_dir or UI_OUTPUT_DIR).expanduser()
    host = "0.0.0.0" if args.listen else "127.0.0.1"
    check_port_free(host, args.port)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ["NO_PROXY"] = ",".join(filter(None, (os.environ.get("NO_PROXY"), "127.0.0.1", "localhost")))
    if log.level < LOG_VERBOSE:  # the server's own process: library warnings only with -v
        import warnings

        warnings.simplefilter("ignore")
        one_line_refusals(log)
    queue = JobQueue(out_dir, hardware_words(args, parser), log)
    demo = build_page(Page(queue))
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=args.port, inbrowser=False, share=False, prevent_thread_lock=True,
                quiet=True, show_error=True, allowed_paths=[str(out_dir.resolve())])
    url = f"http://127.0.0.1:{args.port}/"
    try:  # from here Ctrl-C closes the page and its queue as below
        emit(f"the page is at {url} (Ctrl-C stops it); its videos go to {out_dir.resolve()}")
        if args.listen:
            log.warn(f"--listen: anyone on this network can open this page at port {args.port} and make videos here")
        if wants_browser(args):
            import webbrowser

            webbrowser.open(url)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt as e:
        running = any(entry.state == "running" for entry in queue.entries)
        queue.stop()
        if running:
            emit("stopping: the running job ends at its next step, as a run does at Ctrl-C", sys.stderr)
        while queue.worker.is_alive():
            queue.worker.join(0.2)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # Gradio's "Closing server ..."
            demo.close()
        emit("the page is closed")
        return 128 + e.signum if isinstance(e, Terminated) else EXIT_OK


if __name__ == "__main__":
    exit_now(main())
