"""The direct diffusers way, for comparison: load, call, export_to_video. Not a test.

python tests/benchmarks/direct_diffusers.py MODEL_DIR IMAGE OUT.mp4 WIDTH HEIGHT FRAMES STEPS GUIDANCE
"""

import sys

import torch
from diffusers import LTXImageToVideoPipeline
from diffusers.utils import export_to_video
from PIL import Image

model, image, out, width, height, frames, steps, guidance = sys.argv[1:9]
pipe = LTXImageToVideoPipeline.from_pretrained(model, dtype=torch.float32)
pipe.set_progress_bar_config(disable=True)
video = pipe(image=Image.open(image).convert("RGB"), prompt="a boat drifts at sunset", height=int(height),
             width=int(width), num_frames=int(frames), num_inference_steps=int(steps),
             guidance_scale=float(guidance), generator=torch.Generator().manual_seed(0)).frames[0]
export_to_video(video, out, fps=24)
