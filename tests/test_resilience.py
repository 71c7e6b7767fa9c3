"""Issue 26, item 4: the root causes a hostile sweep found, each with a test that failed before its
fix: numbers that overflow, hand-edited files of ours and the user's, a LoRA header that asks for
exabytes, a writer that never starts, --overwrite that was not all-or-nothing, outputs that are
inputs, names that differ only in case, and live files taken for dead across PID namespaces."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, gv, make_image, run
from test_hub import hub, hub_root  # noqa: F401 (fixtures)

SMALL = ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"]


def errors(cap) -> int:
    """Lines of stderr that are errors or tracebacks (warnings and notes before them are fine)."""
    return sum(line.startswith(("error", "Traceback")) for line in cap.err.splitlines())


@pytest.mark.parametrize("extra, message", [
    (["--duration", "1e308"], "--duration: must be positive and at most 3600, got 1e308"),
    (["--memory-budget", "1e308"], "--memory-budget: must be positive and at most 4096, got 1e308"),
    (["--guidance-scale", "1e308"], "--guidance-scale: must be between 0 and 100, got 1e308"),
    (["--keyframe", "{img}@1e308"], "@1e308: the time must be between 0 and 3600 s"),
    (["--keyframe", "{img}@inf"], "@inf: the time must be between 0 and 3600 s"),
    (["--keyframe", "{img}@nan"], "@nan: the time must be between 0 and 3600 s"),
])
def test_numbers_beyond_reason_are_one_line_and_exit_2(models, tmp_path, capsys, extra, message):
    image = make_image(tmp_path / "in.png")
    extra = [e.replace("{img}", str(image)) for e in extra]
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["cond"], "-o", tmp_path / "o.mp4", *extra],
                  capsys)
    assert rc == 2 and message in cap.err, cap.err
    assert errors(cap) == 1 and "Traceback" not in cap.err and "Overflow" not in cap.err


def test_a_bad_job_is_skipped_and_the_rest_of_the_batch_runs(models, tmp_path, capsys):
    image = make_image(tmp_path / "in.png")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": str(image), "prompt": "a", "duration": 1e308, "output": "bad.mp4"}) + "\n"
                    + json.dumps({"image": str(image), "prompt": "b", "output": "good.mp4"}) + "\n")
    rc, cap = run(["--jobs", jobs, "--output-dir", tmp_path, "--model", models["i2v"], *SMALL], capsys)
    assert rc == 2 and (tmp_path / "good.mp4").is_file() and not (tmp_path / "bad.mp4").exists()
    assert "duration: must be positive and at most 3600" in cap.err and "1 done, 0 resumed, 1 skipped" in cap.err


@pytest.mark.parametrize("edit, message", [
    ({"seed": "abc"}, "d.json: seed: 'abc' is not a whole number"),
    ({"num_frames": 1e308}, "num_frames: "),
    ({"loras": [1]}, "its settings are damaged (TypeError"),
    ({"conditions": "x"}, "its settings are damaged (TypeError"),
    ({"draft": {"final_size": 5}}, "its settings are damaged (TypeError"),
])
def test_a_hand_edited_draft_sidecar_is_one_line_and_exit_2(models, tmp_path, capsys, edit, message):
    image = make_image(tmp_path / "in.png")
    draft = tmp_path / "d.mp4"
    rc, cap = run(["--image", image, "--prompt", "a boat", "-o", draft, "--draft", "--model", models["cond"],
                   "--upsampler", models["up"], "--width", "192", "--height", "128", "--num-frames", "9"], capsys)
    assert rc == 0, cap.err
    side = json.loads(draft.with_suffix(".json").read_text())
    side.update({k: (dict(side[k], **v) if isinstance(v, dict) else v) for k, v in edit.items()})
    draft.with_suffix(".json").write_text(json.dumps(side))
    rc, cap = run(["--from-draft", draft.with_suffix(".json"), "-o", tmp_path / "f.mp4"], capsys)
    assert rc == 2 and message in cap.err, cap.err
    assert errors(cap) == 1 and "Traceback" not in cap.err


def test_hand_edited_caches_of_ours_are_checked_again_not_trusted(models, tmp_path, capsys):
    cache = Path(os.environ["GENERATE_VIDEO_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "kernel_verdicts.json").write_text(json.dumps({"k": {"ok": "yes", "checked_tokens": "many"}}))
    assert gv.cached_verdict("k", lambda: {"ok": False, "reason": "checked"})["reason"] == "checked"
    key = gv.timing_key("cpu", "float32")
    for broken in ({key: {"runs": [1, 2], "matmul_tflops": "fast"}}, {key: {"runs": {"x": "y"}}}, {key: [1]},
                   {key: {"runs": {"a|stock|stock|none": [{"denoise": "slow"}, {"load": -1}, 5]}}}):
        (cache / "timings.json").write_text(json.dumps(broken))
        rc, cap = run(["--image", make_image(tmp_path / "in.png"), "--prompt", "p", "--model", models["i2v"],
                       "-o", tmp_path / "v.mp4", "--overwrite", *SMALL], capsys)
        assert rc == 0, cap.err
    assert gv.is_rates({"denoise": 1.5}) and not gv.is_rates({"denoise": float("inf")})


def test_a_lora_whose_header_claims_exabytes_is_refused_in_one_line(models, tmp_path, capsys):
    lora = tmp_path / "huge.safetensors"
    lora.write_bytes((2**60).to_bytes(8, "little") + b"{}")
    rc, cap = run(["--image", make_image(tmp_path / "in.png"), "--prompt", "p", "--model", models["i2v"],
                   "-o", tmp_path / "v.mp4", "--lora", lora, *SMALL], capsys)
    assert rc == 2 and "not a readable .safetensors file" in cap.err and errors(cap) == 1, cap.err
    assert "MemoryError" not in cap.err


def test_a_writer_that_never_starts_leaves_no_temp_file(tmp_path, monkeypatch):
    import imageio_ffmpeg

    def no_ffmpeg(*a, **k):
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(imageio_ffmpeg, "write_frames", no_ffmpeg)
    with pytest.raises(gv.RunError, match="the video writer could not start"):
        gv.VideoWriter(tmp_path / "v.mp4", 96, 64, 24, False)
    assert list(tmp_path.iterdir()) == []


def pair(tmp_path, *names):
    """Temp files with new content, to be published as `names`."""
    out = []
    for name in names:
        tmp = gv.temp_path(tmp_path / name, "json")
        tmp.write_text("new")
        out.append((tmp, tmp_path / name))
    return out


def test_overwrite_is_all_or_nothing(tmp_path):
    (tmp_path / "v.json").write_text("old sidecar")
    (tmp_path / "v.mp4").mkdir()  # the second name cannot be replaced: a folder
    with pytest.raises(gv.RunError, match="is a folder"):
        gv.publish(pair(tmp_path, "v.json", "v.mp4"), overwrite=True)
    assert (tmp_path / "v.json").read_text() == "old sidecar"  # the first was not replaced either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.mp4"]

    (tmp_path / "v.mp4").rmdir()
    (tmp_path / "v.mp4").write_text("old video")
    gv.publish(pair(tmp_path, "v.json", "v.mp4"), overwrite=True)
    assert (tmp_path / "v.json").read_text() == (tmp_path / "v.mp4").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.mp4"]  # nothing moved aside stays


def test_a_failed_rename_puts_back_what_was_moved_aside(tmp_path, monkeypatch):
    (tmp_path / "v.json").write_text("old sidecar")
    (tmp_path / "v.mp4").write_text("old video")
    real = os.replace

    def refuse(src, dst):  # another user's file in a sticky folder cannot be renamed
        if str(src).endswith("v.mp4"):
            raise PermissionError(1, "Operation not permitted")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(gv.RunError, match="cannot replace"):
        gv.publish(pair(tmp_path, "v.json", "v.mp4"), overwrite=True)
    monkeypatch.undo()
    assert (tmp_path / "v.json").read_text() == "old sidecar" and (tmp_path / "v.mp4").read_text() == "old video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.mp4"]


def test_a_jobs_file_named_like_a_sidecar_is_never_replaced(models, tmp_path, capsys):
    image = make_image(tmp_path / "in.png")
    jobs = tmp_path / "in.json"  # in.png's video would be in.mp4, its sidecar in.json
    jobs.write_text(json.dumps({"image": "in.png", "prompt": "p"}) + "\n")
    before = jobs.read_text()
    rc, cap = run(["--jobs", jobs, "--output-dir", tmp_path, "--overwrite", "--model", models["i2v"], *SMALL], capsys)
    assert rc == 2 and "which is one of its inputs" in cap.err and jobs.read_text() == before
    assert not (tmp_path / "in.mp4").exists()


def test_an_output_that_is_an_input_is_refused(models, tmp_path, capsys):
    image = make_image(tmp_path / "v.png")
    end = tmp_path / "v.json"  # hypothetically an image named .json: the sidecar of v.mp4
    end.write_bytes(image.read_bytes())
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["cond"], "--end-image", end,
                   "-o", tmp_path / "v.mp4", "--overwrite"], capsys)
    assert rc == 2 and "would write v.json, which is one of its inputs" in cap.err, cap.err


def test_names_that_differ_only_in_case_are_one_file_where_the_disk_ignores_case(models, tmp_path, monkeypatch,
                                                                                 capsys):
    assert gv.case_insensitive(str(tmp_path)) is False  # ext4 here: the probe sees the difference
    monkeypatch.setattr(gv, "case_insensitive", lambda folder: True)  # as on a Mac's APFS
    image = make_image(tmp_path / "in.png")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps({"image": "in.png", "prompt": p, "output": o})
                              for p, o in (("a", "x.mp4"), ("b", "X.MP4"))) + "\n")
    rc, cap = run(["--jobs", jobs, "--output-dir", tmp_path / "out", "--model", models["i2v"], *SMALL], capsys)
    assert rc == 2 and "is also the output of" in cap.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.json", "x.mp4"]


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import generate_video as gv
    from pathlib import Path
    print(gv.temp_path(Path(sys.argv[2]), "mp4"), flush=True)
    time.sleep(120)
""")


def test_a_live_runs_partial_file_is_kept_even_when_its_pid_looks_dead(tmp_path):
    """Another PID namespace (a container, unshare) with the same host name: the PID in a live
    run's temp name may be free here. Its lock says it is alive."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), str(tmp_path / "v.mp4")],
                              stdout=subprocess.PIPE, text=True)
    try:
        made = Path(holder.stdout.readline().strip())
        dead = next(p for p in range(4_000_000, 4_100_000) if not gv.process_alive(p))
        as_seen = made.with_name(made.name.replace(f"-{holder.pid}.", f"-{dead}."))
        made.rename(as_seen)  # the name another namespace's PID gives it; the lock stays on the file
        assert gv.remove_stale_partials(tmp_path, gv.Log(0)) == [] and as_seen.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert gv.remove_stale_partials(tmp_path, gv.Log(0)) == [as_seen.name] and not as_seen.exists()


def video_with_sound(path, frames=25, fps=24, size=(192, 128), vfr=False, rate="24"):
    """An MP4 with a 440 Hz tone, made by ffmpeg (a constant frame rate unless `vfr`: frames
    whose times jump, as a phone's clip has)."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={rate}",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-frames:v", str(frames), "-shortest",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    if vfr:  # the second half's frames twice as long as the first's, as a phone's clip slows down
        half = frames // 2
        cmd += ["-vf", f"setpts='if(lt(N,{half}),N/24,{half}/24+(N-{half})/12)/TB'", "-fps_mode", "vfr"]
    subprocess.run(cmd + [str(path)], check=True)
    return path


def test_an_extension_keeps_the_originals_sound_under_its_part(models, tmp_path, capsys):
    from test_ltx2 import audio_streams

    clip = video_with_sound(tmp_path / "clip.mp4")
    out = tmp_path / "longer.mp4"
    rc, cap = run(["--extend", clip, "--prompt", "on", "--model", models["cond"], "--upsampler", models["up"],
                   "--num-frames", "16", "--seed", "5", "-o", out], capsys)
    assert rc == 0, cap.err
    assert "sound: the original's, under its part; the new part is silent" in cap.err
    streams, pcm = audio_streams(out)
    assert any("Audio: aac" in s for s in streams), streams
    loud = np.abs(pcm.astype(float)).mean(axis=1) > 300  # the tone, sample by sample
    original, seconds = 25 / 24, len(pcm) / 48000
    assert abs(seconds - 41 / 24) < 0.05  # as long as the video: 25 + 16 frames
    assert loud[: int(0.9 * original * 48000)].mean() > 0.9 and loud[int(1.1 * original * 48000):].mean() < 0.01


def test_extend_refuses_a_still_picture_and_a_variable_frame_rate_before_loading(models, tmp_path, capsys):
    still = make_image(tmp_path / "still.png")
    vfr = video_with_sound(tmp_path / "phone.mp4", frames=48, vfr=True)
    for video, message in ((still, "a still picture, not a video"), (vfr, "its frame rate varies")):
        rc, cap = run(["--extend", video, "--prompt", "on", "--model", models["cond"], "-o", tmp_path / "o.mp4"],
                      capsys)
        assert rc == 2 and message in cap.err, cap.err


def test_extend_says_when_a_ntsc_rate_is_played_at_a_whole_one(models, tmp_path, capsys):
    clip = video_with_sound(tmp_path / "ntsc.mp4", frames=20, rate="30000/1001")
    rc, cap = run(["--extend", clip, "--prompt", "on", "--model", models["cond"], "--upsampler", models["up"],
                   "--num-frames", "8", "--seed", "5", "-o", tmp_path / "o.mp4"], capsys)
    assert rc == 0 and "note: the original is 29.970 fps; the result plays at 30 fps (0.1% faster)" in cap.err, cap.err


def test_a_keyframe_on_the_held_context_frames_is_refused(models, tmp_path, capsys):
    clip = video_with_sound(tmp_path / "clip.mp4")
    image = make_image(tmp_path / "k.png", 192, 128)
    rc, cap = run(["--extend", clip, "--prompt", "on", "--model", models["cond"], "--num-frames", "24",
                   "--keyframe", f"{image}@#5", "-o", tmp_path / "o.mp4"], capsys)
    assert rc == 2 and "frame 5 is one of the original's last 17 frames" in cap.err, cap.err


def test_a_cached_weights_file_cut_short_is_named_with_its_fix(models, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(models["i2v"], model)
    weights = model / "transformer" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 1000])  # a download stopped outside this tool
    rc, cap = run(["--image", make_image(tmp_path / "in.png"), "--prompt", "p", "--model", model,
                   "-o", tmp_path / "v.mp4", *SMALL], capsys)
    assert rc == 1 and f"{weights} is cut short" in cap.err and "delete" in cap.err and "network" not in cap.err


def test_an_unreadable_weights_file_is_not_called_missing(models, tmp_path, capsys, monkeypatch):
    real = gv.safetensors_layout

    def denied(path):  # as for another user's file (the tests run as root, whom chmod does not stop)
        if str(path).endswith("diffusion_pytorch_model.safetensors"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(gv, "safetensors_layout", denied)
    rc, cap = run(["--image", make_image(tmp_path / "in.png"), "--prompt", "p", "--model", models["i2v"],
                   "-o", tmp_path / "v.mp4", *SMALL], capsys)
    assert rc == 1 and "(permission denied): make it readable" in cap.err and "missing" not in cap.err, cap.err


def test_a_read_only_hub_cache_is_named_not_the_network(hub, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "cache" / "models--x"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", read_only)
    rc, cap = run(["--image", make_image(tmp_path / "in.png"), "--prompt", "p", "--model", "ltx",
                   "-o", tmp_path / "v.mp4", *SMALL], capsys)
    assert rc == 1 and "cannot be written" in cap.err and "set HF_HOME" in cap.err and "network" not in cap.err, cap.err


def test_a_boolean_where_a_number_belongs_in_a_draft_is_refused(models, tmp_path, capsys):
    draft = tmp_path / "d.mp4"
    assert run(["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", draft, "--draft", "--model",
                models["cond"], "--upsampler", models["up"], "--width", "192", "--height", "128",
                "--num-frames", "9"])[0] == 0
    side = json.loads(draft.with_suffix(".json").read_text())
    draft.with_suffix(".json").write_text(json.dumps(dict(side, seed=True)))
    rc, cap = run(["--from-draft", draft.with_suffix(".json"), "-o", tmp_path / "f.mp4"], capsys)
    assert rc == 2 and "seed: true is not a value it takes" in cap.err, cap.err


def test_a_folder_named_like_the_sidecar_is_refused_before_anything_runs(models, tmp_path, capsys):
    (tmp_path / "v.json").mkdir()
    rc, cap = run(["--image", make_image(tmp_path / "in.png"), "--prompt", "p", "--model", models["i2v"],
                   "-o", tmp_path / "v.mp4", "--overwrite", *SMALL], capsys)
    assert rc == 2 and "v.json is a folder" in cap.err and "plan:" not in cap.err, cap.err


@pytest.mark.parametrize("rate, message", [("240", "it plays at 240 fps"), ("1/2", "it plays at 0.5 fps")])
def test_an_extension_of_a_rate_the_models_do_not_make_is_refused(models, tmp_path, capsys, rate, message):
    import imageio_ffmpeg

    clip = tmp_path / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc=size=192x128:rate={rate}:duration={'20' if rate == '1/2' else '0.2'}",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    rc, cap = run(["--extend", clip, "--prompt", "on", "--model", models["cond"], "-o", tmp_path / "o.mp4"], capsys)
    assert rc == 2 and message in cap.err, cap.err
