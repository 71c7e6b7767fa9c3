"""Issue 12, inputs: every bad input a clean refusal before any model loads; in a batch, one bad
job is skipped with its reason and the rest run, with a summary at the end."""

import json
import math
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import gv, make_image, probe, run

SCRIPT = str(Path(gv.__file__))
SMALL = ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"]


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height over a few bytes of pixel data: what a
    decompression bomb looks like to a reader of headers."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    return path


def batch(models, tmp_path, lines, capsys, extra=()):
    """Run a jobs file (lines: dicts, or raw bytes for a line) with a good job last; return rc,
    captured output and the output folder."""
    make_image(tmp_path / "a.png")
    jobs = tmp_path / "jobs.jsonl"
    raw = [line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines]
    raw.append(json.dumps({"image": "a.png", "prompt": "good", "output": "good.mp4"}).encode())
    jobs.write_bytes(b"\n".join(raw) + b"\n")
    out = tmp_path / "out"
    rc, cap = run(["--jobs", jobs, "--output-dir", out, "--model", models["i2v"]] + SMALL + list(extra), capsys)
    return rc, cap, out


BAD_JOBS = {
    "prompt null with --prompt": ({"image": "a.png", "prompt": None}, "prompt is null"),
    "duration NaN": ({"image": "a.png", "duration": math.nan}, "duration"),
    "duration Infinity": ({"image": "a.png", "duration": math.inf}, "duration"),
    "device null": ({"image": "a.png", "device": None}, "device is null"),
    "dtype null": ({"image": "a.png", "dtype": None}, "dtype is null"),
    "memory budget NaN": ({"image": "a.png", "memory_budget_gb": math.nan}, "--memory-budget"),
    "device cuda on this CPU": ({"image": "a.png", "device": "cuda"}, "--device cuda: no CUDA GPU"),
    "fps 1e20": ({"image": "a.png", "fps": 10**20}, "--fps 100000000000000000000: at most 120"),
    "steps 1e9": ({"image": "a.png", "steps": 10**9}, "--steps 1000000000: at most 500"),
    "a lone surrogate": ({"image": "a.png", "prompt": "\ud800"}, "--prompt is not valid UTF-8"),
    "guidance NaN": ({"image": "a.png", "guidance_scale": math.nan}, "--guidance-scale"),
    "guidance -5": ({"image": "a.png", "guidance_scale": -5}, "--guidance-scale: must be between 0 and 100"),
    "preset null": ({"image": "a.png", "preset": None}, "preset is null"),
    "seed true": ({"image": "a.png", "seed": True}, "seed must be a number"),
    "output outside": ({"image": "a.png", "output": "../escaped.mp4"}, "outside --output-dir"),
    "output absolute": ({"image": "a.png", "output": "/tmp/abs.mp4"}, "absolute path"),
}


def test_every_bad_job_is_skipped_with_its_reason_and_the_good_one_runs(models, tmp_path, capsys):
    png_header(tmp_path / "bomb.png", 20000, 10001)
    bad = dict(BAD_JOBS, bomb=({"image": "bomb.png"}, "larger than the 200 megapixels"))
    lines = [job for job, _ in bad.values()]
    lines.append(b'{"image": "a.png", "prompt": "caf\xe9"}')  # Latin-1, not UTF-8
    rc, cap, out = batch(models, tmp_path, lines, capsys, ["--prompt", "p"])
    assert rc == 2, cap.err
    assert f"1 done, 0 resumed, {len(lines)} skipped, 0 failed" in cap.err
    for number, (name, (_, reason)) in enumerate(bad.items(), 1):
        assert f"skipping line {number}: " in cap.err and reason in cap.err, (name, cap.err)
    assert f"skipping line {len(lines)}: not UTF-8 text (byte 0xe9" in cap.err
    assert "Traceback" not in cap.err and not (tmp_path / "escaped.mp4").exists()
    assert sorted(p.name for p in out.iterdir()) == ["good.json", "good.mp4"]
    side = (out / "good.json").read_text()
    assert "NaN" not in side and "Infinity" not in side


def test_jobs_take_the_options_own_spelling_and_the_json_is_read_by_newline_only(models, tmp_path, capsys):
    """`memory-budget` is the option's name; U+2028/U+0085 are valid inside JSON strings; a BOM
    (Windows Notepad) is not an error."""
    make_image(tmp_path / "a.png")
    jobs = tmp_path / "jobs.jsonl"
    prompt = "waves\u2028then calm\u0085sky"
    jobs.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"image": "a.png", "prompt": prompt, "memory-budget": 8,
                                                   "output": "x.mp4"}, ensure_ascii=False) + "\n").encode())
    rc, cap = run(["--jobs", jobs, "--output-dir", tmp_path, "--model", models["i2v"]] + SMALL, capsys)
    assert rc == 0, cap.err
    side = json.loads((tmp_path / "x.json").read_text())
    assert side["prompt"] == prompt and side["memory_plan"]["budget_gib"] == 8


def test_outputs_stay_in_the_output_folder_unless_allowed(models, tmp_path, capsys):
    rc, cap, out = batch(models, tmp_path, [{"image": "a.png", "prompt": "p", "output": "sub/../in.mp4"},
                                            {"image": "a.png", "prompt": "p", "output": str(tmp_path / "abs.mp4")}],
                         capsys, ["--outputs-anywhere"])
    assert rc == 0, cap.err
    assert (out / "in.mp4").is_file() and (tmp_path / "abs.mp4").is_file() and (out / "good.mp4").is_file()


def test_one_file_spelled_two_ways_is_one_output(models, tmp_path, capsys):
    """`x.mp4` and `/abs/out/x.mp4` are the same file: the second job is skipped, and the video
    keeps its own sidecar."""
    out = tmp_path / "out"
    rc, cap, _ = batch(models, tmp_path, [{"image": "a.png", "prompt": "p", "seed": 1, "output": "x.mp4"},
                                          {"image": "a.png", "prompt": "p", "seed": 2, "output": str(out / "x.mp4")},
                                          {"image": "a.png", "prompt": "p", "seed": 3, "output": "../out/x.mp4"}],
                       capsys, ["--outputs-anywhere"])
    for line in (2, 3):
        assert f"skipping line {line}: {out / 'x.mp4'} is also the output of line 1" in cap.err, cap.err
    assert json.loads((out / "x.json").read_text())["seed"] == 1
    rc, cap, _ = batch(models, tmp_path, [{"image": "a.png", "prompt": "p", "seed": 1, "output": "x.mp4"},
                                          {"image": "a.png", "prompt": "p", "seed": 2, "output": str(out / "x.mp4")}],
                       capsys, ["--outputs-anywhere"])
    assert cap.err.splitlines()[-1] == "0 done, 2 resumed, 1 skipped, 0 failed"  # a re-run: nothing is "resumed" wrongly


def test_a_job_over_the_memory_budget_fails_alone(models, tmp_path, capsys):
    rc, cap, out = batch(models, tmp_path, [{"image": "a.png", "prompt": "p", "width": 1920, "height": 1088,
                                             "num_frames": 257, "output": "big.mp4"}],
                         capsys, ["--memory-budget", "0.5"])
    assert rc == 2 and "skipping big.mp4:" in cap.err and "1 done, 0 resumed, 1 skipped" in cap.err, cap.err
    assert (out / "good.mp4").is_file()


def test_a_full_disk_stops_the_batch_with_its_summary(models, tmp_path, capsys, monkeypatch):
    import errno

    real = gv.VideoWriter.write
    calls = []

    def second_job_fills_the_disk(self, frames):
        calls.append(self.path.name)
        if self.path.name == "2.mp4":
            raise gv.write_failure(OSError(errno.ENOSPC, "No space left on device"), self.path)
        return real(self, frames)

    monkeypatch.setattr(gv.VideoWriter, "write", second_job_fills_the_disk)
    rc, cap, out = batch(models, tmp_path, [{"image": "a.png", "prompt": "p", "output": f"{i}.mp4"} for i in (1, 2, 3)],
                         capsys)
    assert rc == 1 and list(dict.fromkeys(calls)) == ["1.mp4", "2.mp4"], cap.err
    lines = cap.err.strip().splitlines()
    assert lines[-1].startswith("error: the disk holding") and "is full" in lines[-1]
    assert "1 done, 0 resumed, 0 skipped, 1 failed, 2 not run" in cap.err  # 3 and the good one not run
    assert sorted(p.name for p in out.iterdir()) == [".2.mp4.resume.safetensors", "1.json", "1.mp4"]  # 2 resumes


def test_an_unexpected_error_in_one_job_is_that_jobs_failure(models, tmp_path, capsys, monkeypatch):
    real = gv.LTX.stage_call.__func__

    def boom(cls, pipe, job, *a):  # the family's hook, patched for one job
        if job.output.name == "1.mp4":
            raise RuntimeError("something inside the model\nwith a second line")
        return real(cls, pipe, job, *a)

    monkeypatch.setattr(gv.LTX, "stage_call", classmethod(boom))
    rc, cap, out = batch(models, tmp_path, [{"image": "a.png", "prompt": "p", "output": "1.mp4"}], capsys)
    assert rc == 1 and "1 done, 0 resumed, 0 skipped, 1 failed" in cap.err
    assert "RuntimeError: something inside the model" in cap.err and "second line" not in cap.err
    assert (out / "good.mp4").is_file()


def test_ctrl_c_in_a_batch_still_prints_what_was_made(models, tmp_path, capsys, monkeypatch):
    real = gv.LTX.stage_call.__func__

    def interrupt_second(cls, pipe, job, *a):  # the family's hook, patched for one job
        if job.output.name == "2.mp4":
            raise KeyboardInterrupt
        return real(cls, pipe, job, *a)

    monkeypatch.setattr(gv.LTX, "stage_call", classmethod(interrupt_second))
    rc, cap, out = batch(models, tmp_path, [{"image": "a.png", "prompt": "p", "output": f"{i}.mp4"} for i in (1, 2)],
                         capsys)
    assert rc == 130 and "1 done, 0 resumed, 0 skipped, 0 failed, 2 not run" in cap.err
    assert cap.err.strip().splitlines()[-1] == "interrupted: no partial file was left behind"


def test_a_decompression_bomb_is_refused_by_its_header_in_one_line(image, tmp_path, capsys):
    bomb = png_header(tmp_path / "bomb.png", 20000, 10001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's own DecompressionBombWarning is not shown either
        rc, cap = run(["--image", bomb, "--prompt", "p", "-o", tmp_path / "b.mp4"], capsys)
    assert rc == 2 and cap.err.count("\n") == 1 and "200 megapixels" in cap.err and "Warning" not in cap.err


def test_batch_validation_reads_headers_only_and_a_bad_body_fails_its_job_alone(models, tmp_path, capsys):
    """A 100-megapixel header over broken pixel data: validation does not decode it (1,000 jobs
    would take minutes), PIL warns about nothing, and the job fails when its image is read."""
    png_header(tmp_path / "huge.png", 10000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gv.check_image(tmp_path / "huge.png", decode=False) == (10000, 10000)
    rc, cap, out = batch(models, tmp_path, [{"image": "huge.png", "prompt": "p", "output": "huge.mp4"}], capsys)
    assert rc == 1 and "1 done, 0 resumed, 0 skipped, 1 failed" in cap.err, cap.err
    assert "DecompressionBomb" not in cap.err and (out / "good.mp4").is_file()


def test_a_fifo_as_image_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, SCRIPT, "--image", str(fifo), "--prompt", "p", "-o", str(tmp_path / "f.mp4")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr


def test_text_that_is_not_utf8_is_refused_before_loading(models, image, tmp_path):
    env = dict(os.environ, LC_ALL="C.UTF-8")
    base = [sys.executable.encode(), SCRIPT.encode(), b"--model", str(models["i2v"]).encode()]
    for argv, message in [([b"--image", bytes(image), b"--prompt", b"caf\xe9", b"-o", bytes(tmp_path / "u.mp4")],
                           "--prompt is not valid UTF-8"),
                          ([b"--image", bytes(image), b"--prompt", b"p", b"-o", bytes(tmp_path) + b"/\xff.mp4"],
                           "--output path is not valid UTF-8 text; rename the file")]:
        proc = subprocess.run(base + argv, capture_output=True, env=env, timeout=120)
        err = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == 2 and message in err and "loading" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


@pytest.mark.parametrize("argv, message", [
    (["--fps", "100000000000000000000"], "--fps 100000000000000000000: at most 120"),
    (["--steps", "1000000000"], "--steps 1000000000: at most 500"),
])
def test_fps_and_steps_are_bounded_with_the_reason(models, image, tmp_path, capsys, argv, message):
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", tmp_path / "x.mp4"] + argv, capsys)
    assert rc == 2 and message in cap.err and "loading" not in cap.err


@pytest.mark.parametrize("index, message", [
    ([1, 2], "not a diffusers model index"),
    ({"_class_name": "LTXImageToVideoPipeline", "vae": []}, "entry 'vae' should be [library, class]"),
    ({"_class_name": "LTXImageToVideoPipeline", "vae": ["diffusers", "AutoencoderKLLTXVideo"]},
     "has no vae/ folder although its model_index.json names one"),
])
def test_a_malformed_model_folder_is_named_in_one_line(image, tmp_path, capsys, index, message):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(index))
    rc, cap = run(["--image", image, "--prompt", "p", "--model", folder, "-o", tmp_path / "x.mp4"], capsys)
    assert rc == 2 and message in cap.err and cap.err.count("\n") == 1, cap.err


def test_a_portrait_phone_photo_is_planned_upright(tmp_path):
    """Orientation 6: stored 320x180, shown 180x320. Planned as a portrait video, not a
    landscape one with most of the picture cropped away."""
    from PIL import Image

    photo = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((180, 320, 3), np.uint8)).save(photo, exif=exif)
    assert gv.check_image(photo) == (180, 320)
    job = gv.plan_job(gv.Request(image=photo, prompt="p", output=tmp_path / "o.mp4", resolution="480p"), gv.Log(0))
    assert job.width < job.height and job.width == 480


def test_an_iphone_heic_photo_runs_upright_as_its_jpeg_would(models, tmp_path, capsys):
    """HEIC, the iPhone's default format (made here with pillow-heif, which reads it for PIL),
    with EXIF orientation 6: a portrait video, and the frame the pipeline gets is the JPEG's."""
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    rng = np.random.RandomState(1)
    pixels = np.clip(np.tile(np.linspace(30, 220, 160), (96, 1))[..., None] + rng.randint(0, 20, (96, 160, 3)), 0,
                     255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(pixels).save(photo, exif=exif.tobytes(), quality=95)
    assert gv.check_image(photo) == (96, 160)
    upright = np.asarray(gv.read_rgb(photo)).astype(int)
    assert upright.shape == (160, 96, 3) and np.abs(upright - np.rot90(pixels, -1)).mean() < 6  # HEIC is lossy
    out = tmp_path / "v.mp4"
    rc = gv.main(["--image", str(photo), "--prompt", "p", "--model", str(models["i2v"]), "--width", "64", "--height",
                  "96", "--num-frames", "9", "--steps", "2", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert probe(out)["size"] == (64, 96)


@pytest.mark.parametrize("name, mode, data", [
    ("16-bit grey PNG", "I;16", (np.tile(np.linspace(0, 1, 256), (64, 1)) * 65535).astype(np.uint16)),
    ("32-bit integer TIFF", "I", (np.tile(np.linspace(0, 1, 256), (64, 1)) * (2**31 - 1)).astype(np.int32)),
    ("float TIFF", "F", np.tile(np.linspace(0, 1, 256), (64, 1)).astype(np.float32)),
])
def test_high_bit_depth_images_keep_their_tones(tmp_path, name, mode, data):
    from PIL import Image

    path = tmp_path / ("x.png" if mode == "I;16" else "x.tif")
    Image.fromarray(data, mode if mode != "I;16" else None).save(path)
    rgb = np.asarray(gv.prepare_image(path, 256, 64)).astype(float)
    assert 120 < rgb.mean() < 135 and rgb[:, :8].mean() < 20 and rgb[:, -8:].mean() > 235, (name, rgb.mean())


def test_a_prompt_that_looks_like_an_option_is_reproducible(models, image, tmp_path):
    import shlex

    out = tmp_path / "o.mp4"
    assert run(["--image", image, "--prompt=--slow-zoom", "--model", models["i2v"], "-o", out, "-q"] + SMALL)[0] == 0
    command = json.loads(out.with_suffix(".json").read_text())["command"]
    args = gv.build_parser().parse_args(shlex.split(command)[2:])
    assert args.prompt == "--slow-zoom" and args.seed is not None


def test_a_very_long_prompt_costs_one_short_warning(models, image, tmp_path, capsys):
    prompt = "a boat drifts at sunset " * 900  # ~21,600 characters
    rc, cap = run(["--image", image, "--prompt", prompt, "--model", models["i2v"], "-o", tmp_path / "l.mp4"] + SMALL,
                  capsys)
    assert rc == 0 and len(cap.err) < 3000, len(cap.err)
    assert [line for line in cap.err.splitlines() if "tokens and the model reads the first" in line]
    rc, cap = run(["--image", image, "--prompt", prompt, "--model", models["i2v"], "-o", tmp_path / "q.mp4", "-q"]
                  + SMALL, capsys)
    assert rc == 0 and cap.err == ""


def test_a_long_phase_without_progress_says_how_long_it_has_run(models, image, tmp_path, capsys, monkeypatch):
    """No silent stretch: finishing the MP4 (x264 catching up after the last frame) and loading
    print their elapsed time every HEARTBEAT_SECONDS (shortened here), and stop when done."""
    import time as time_

    monkeypatch.setattr(gv, "HEARTBEAT_SECONDS", 0.1)
    real_finish = gv.VideoWriter.finish

    def slow_finish(self):
        time_.sleep(0.35)
        return real_finish(self)

    monkeypatch.setattr(gv.VideoWriter, "finish", slow_finish)
    out = tmp_path / "v.mp4"
    assert gv.main(["--image", str(image), "--prompt", "p", "--model", str(models["i2v"]), "--width", "96",
                    "--height", "64", "--num-frames", "9", "--steps", "2", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    beats = [line for line in err.splitlines() if line.startswith("  finishing the MP4 (H.264): 0:00 so far")]
    assert 2 <= len(beats) <= 4, err
    last_beat = max(i for i, line in enumerate(err.splitlines()) if "so far" in line)
    assert last_beat < len(err.splitlines())  # and the run goes on to its end
    assert out.is_file()
