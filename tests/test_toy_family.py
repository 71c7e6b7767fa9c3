"""The family registry's acceptance test (issue 22): a family the script has never heard of,
registered from this file with a pipeline class of its own, runs end to end through main() (plan,
memory plan, two-phase load, denoise, decode, write, sidecar) with no edit to generate_video.py.
If the core compared family or pipeline names anywhere on that path, this family would fail there."""

import json

import pytest
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler

from conftest import gv, make_image, probe

TOY = "ToyImageToVideoPipeline"


class ToyImageToVideoPipeline(DiffusionPipeline):
    """A toy image-to-video pipeline: T5 reads the prompt, LTX's transformer class denoises
    (flow matching, Euler), the first latent frame is the image's own, LTX's VAE decodes. Its call
    takes exactly what the base Family hands a pipeline."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(self, tokenizer, text_encoder, transformer, vae, scheduler):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae,
                              scheduler=scheduler)
        self.calls = []  # (stage kwargs the family handed over)

    def encode_prompt(self, prompt, negative_prompt=None, do_classifier_free_guidance=True, device=None,
                      max_sequence_length=16):
        def encode(text):
            ids = self.tokenizer([text], padding="max_length", max_length=max_sequence_length, truncation=True,
                                 return_tensors="pt").input_ids
            return self.text_encoder(ids.to(device))[0]

        return encode(prompt), encode(negative_prompt or "") if do_classifier_free_guidance else None

    def __call__(self, image, prompt_embeds, negative_prompt_embeds=None, width=96, height=64, num_frames=9,
                 guidance_scale=1.0, generator=None, num_inference_steps=2, output_type="latent", return_dict=False,
                 callback_on_step_end=None):
        self.calls.append({"width": width, "height": height, "num_frames": num_frames, "steps": num_inference_steps})
        frames, rows, cols = (num_frames - 1) // 8 + 1, height // 32, width // 32
        device, dtype = prompt_embeds.device, prompt_embeds.dtype
        pixels = torch.tensor(list(image.getdata()), dtype=torch.float32).reshape(1, image.height, image.width, 3)
        pixels = (pixels / 127.5 - 1).permute(0, 3, 1, 2)[:, :, None].to(device, dtype)
        first = self.vae.encode(pixels).latent_dist.mode()
        latents = torch.randn((1, first.shape[1], frames, rows, cols), generator=generator, device=device, dtype=dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        for i, t in enumerate(self.scheduler.timesteps):
            latents[:, :, :1] = first

            def predict(embeds):
                out = self.transformer(hidden_states=latents.permute(0, 2, 3, 4, 1).flatten(1, 3),
                                       encoder_hidden_states=embeds, timestep=t.expand(1),
                                       encoder_attention_mask=torch.ones(embeds.shape[:2], device=device),
                                       num_frames=frames, height=rows, width=cols, return_dict=False)[0]
                return out.unflatten(1, (frames, rows, cols)).permute(0, 4, 1, 2, 3)

            noise = predict(prompt_embeds)
            if guidance_scale > 1.0:
                negative = predict(negative_prompt_embeds)
                noise = negative + guidance_scale * (noise - negative)
            latents = self.scheduler.step(noise, t, latents, return_dict=False)[0]
            if callback_on_step_end is not None:
                callback_on_step_end(self, i, t, {"latents": latents})
        latents[:, :, :1] = first
        return (latents,)


class Toy(gv.Family):
    """The toy's facts and hooks: only what differs from the base Family."""

    label = "Toy"
    max_sequence_length = 16
    hooks_called: list = []

    @classmethod
    def pipeline_class(cls):
        return ToyImageToVideoPipeline

    @classmethod
    def stage_call(cls, pipe, job, stage, embeds, image, generator):
        cls.hooks_called.append("stage_call")
        return super().stage_call(pipe, job, stage, embeds, image, generator)

    @classmethod
    def decode(cls, pipe, latents, job, generator, rt, progress):
        cls.hooks_called.append("decode")
        yield from super().decode(pipe, latents, job, generator, rt, progress)


@pytest.fixture
def toy_family():
    gv.register(TOY)(Toy)
    Toy.hooks_called = []
    yield Toy
    del gv.FAMILIES[TOY]


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory):
    ltx = gv.tiny_ltx_pipeline("LTXImageToVideoPipeline", timestep_conditioning=False)  # a plain VAE
    folder = tmp_path_factory.mktemp("toy") / "toy-model"
    ToyImageToVideoPipeline(tokenizer=gv.tiny_tokenizer(), text_encoder=gv.tiny_text_encoder(),
                            transformer=ltx.transformer, vae=ltx.vae,
                            scheduler=FlowMatchEulerDiscreteScheduler()).save_pretrained(folder)
    return folder


def test_a_family_registered_from_outside_runs_end_to_end(toy_family, toy_checkpoint, tmp_path, capsys):
    assert json.loads((toy_checkpoint / "model_index.json").read_text())["_class_name"] == TOY
    out = tmp_path / "toy.mp4"
    rc = gv.main(["--image", str(make_image(tmp_path / "in.png")), "--prompt", "a boat drifts", "--model",
                  str(toy_checkpoint), "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2",
                  "--seed", "5", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    # planned (a single pass: no upscaler), loaded in two phases, denoised and decoded by its hooks
    assert "plan:" in err and "runs as a single pass" in err and "encoding 1 prompt(s) with T5" in err
    assert Toy.hooks_called == ["stage_call", "decode"]
    info = probe(out)
    assert info["size"] == (96, 64) and len(info["frames"]) == 9 and info["codec"] == "h264"
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["model"] == str(toy_checkpoint) and side["num_frames"] == 9 and side["seed"] == 5
    assert [s["steps"] for s in side["stages"]] == [2] and side["guidance_scale"] == 3.0
    # its memory plan read its own configs: 9 frames at 96x64 are 2 x 2 x 3 latent tokens
    assert "12 tokens a pass" in err and side["memory_plan"]["estimated_peak_gib"] > 0


def test_options_a_family_does_not_support_are_refused_before_loading(toy_family, toy_checkpoint, tmp_path, capsys):
    base = ["--image", str(make_image(tmp_path / "in.png")), "--prompt", "p", "--model", str(toy_checkpoint),
            "--width", "96", "--height", "64", "--num-frames", "9", "-o", str(tmp_path / "x.mp4")]
    for extra, said in ((["--no-audio"], "makes no sound"), (["--lora", "a.safetensors"], "--lora is not available"),
                        (["--end-image", str(tmp_path / "in.png")], "need a condition pipeline"),
                        (["--attention", "chunked"], "runs its pipeline's own attention")):
        assert gv.main(base + extra) == 2
        assert said in capsys.readouterr().err
    assert Toy.hooks_called == [] and not list(tmp_path.glob("x.*"))


def test_unregistered_pipelines_are_refused_by_name(toy_checkpoint, tmp_path, capsys):
    rc = gv.main(["--image", str(make_image(tmp_path / "in.png")), "--prompt", "p", "--model", str(toy_checkpoint)])
    assert rc == 2 and f"holds a {TOY} checkpoint" in capsys.readouterr().err
