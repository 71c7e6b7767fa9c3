"""Issue 26, item 1: a stopped run resumes. While it denoises, a run keeps its state in a hidden
file beside its output (the finished stages' and windows' outputs, the running stage's step
tensors and generator); the same command run again resumes from it and makes the same video as
an uninterrupted run, frame for frame on CPU. Runs are stopped by SIGKILL in a real child process
(the state saved at every step there, so the kill lands part way) and by Ctrl-C in main()."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import ROOT, gv, make_image, probe, run
from test_hub import ALIAS_ARGS, hub, hub_root  # noqa: F401 (fixtures)

FAST = ["--width", "192", "--height", "128", "--num-frames", "9", "--seed", "5"]

# A child that runs the CLI with the state saved at every step and kills itself (SIGKILL, as
# macOS's memory pressure does) right after its Nth save.
KILLED_AT_SAVE = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import generate_video as gv
    gv.RESUME_SAVE_SECONDS = 0.0
    stop, real, saves = int(sys.argv[2]), gv.Resume.save, []
    def save(self, *args):
        real(self, *args)
        saves.append(1)
        if len(saves) == stop:
            os.kill(os.getpid(), signal.SIGKILL)
    gv.Resume.save = save
    sys.exit(gv.main(sys.argv[3:]))
""")


def fast(models):
    return ["--model", str(models["cond"]), "--upsampler", str(models["up"])]


def frames_of(path):
    return np.stack(probe(path)["frames"])


def stopped_at_save(argv, n: int, capsys=None):
    """main() on argv in this process, saving at every step and interrupted (as by Ctrl-C) right
    after save n: (exit code, captured output, the saves made as (stage, step))."""
    real, saves = gv.Resume.save, []

    def save(self, *args):
        real(self, *args)
        saves.append(args[:2])
        if len(saves) == n:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gv, "RESUME_SAVE_SECONDS", 0.0)
        mp.setattr(gv.Resume, "save", save)
        rc, cap = run(argv, capsys)
    return rc, cap, saves


@pytest.fixture(scope="module")
def uninterrupted(models, tmp_path_factory):
    """The fast path's video made in one go: what every resumed run must equal."""
    folder = tmp_path_factory.mktemp("whole")
    out = folder / "whole.mp4"
    assert run(["--image", make_image(folder / "in.png"), "--prompt", "a boat", "-o", out] + fast(models) + FAST)[0] == 0
    return frames_of(out)


def test_a_run_killed_mid_denoise_resumes_with_the_same_command_and_makes_the_same_video(
        models, tmp_path, uninterrupted):
    image = make_image(tmp_path / "in.png")
    out = tmp_path / "v.mp4"
    argv = ["--image", str(image), "--prompt", "a boat", "-o", str(out)] + fast(models) + FAST
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_SAVE, str(ROOT), "3", *argv], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    state = gv.resume_path(out)
    assert state.is_file() and not out.exists()
    assert gv.read_resume_record(out)["stage"] == 0 and gv.read_resume_record(out)["step"] == 3

    again = subprocess.run([sys.executable, str(ROOT / "generate_video.py"), *argv], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming from stage 1 step 3/7 (saved " in again.stderr
    assert "removed 1 partial file(s)" in again.stderr  # the killed run's .partial.mp4
    assert np.array_equal(frames_of(out), uninterrupted)  # bit-identical to a run never stopped
    assert not state.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "v.json", "v.mp4"]
    side = json.loads(out.with_suffix(".json").read_text())
    assert {k: side["resumed"][k] for k in ("window", "stage", "step")} == {"window": 0, "stage": 0, "step": 3}


@pytest.mark.parametrize("stop, where", [
    (3, "stage 1 step 3/7"),  # inside stage 1: 6 step saves (not after its last step), then its end
    (7, "stage 2 step 0/3"),  # stage 1 done: stage 2 starts from its output, upscaled again
    (9, "stage 2 step 2/3"),  # inside stage 2, from the upscaled latents' denoising
    (10, "the decode"),  # both stages done: the decode (its noise from the generator as left)
])
def test_ctrl_c_keeps_the_state_and_the_run_resumes_from_any_point(models, tmp_path, monkeypatch, capsys,
                                                                   uninterrupted, stop, where):
    out = tmp_path / "v.mp4"
    argv = ["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", out] + fast(models) + FAST
    rc, cap, saves = stopped_at_save(argv, stop, capsys)
    assert rc == gv.EXIT_INTERRUPTED and not out.exists()
    assert f"interrupted: no partial file was left behind; the same command resumes v.mp4 from {where}" in cap.err
    largest = gv.resume_path(out).stat().st_size
    planned = gv.resume_bytes(gv.plan_job(gv.single_request(*parsed(argv)), gv.Log(0)))
    rc, cap = run(argv, capsys)
    assert rc == 0, cap.err
    assert f"resuming from {where} (saved " in cap.err
    assert np.array_equal(frames_of(out), uninterrupted)
    assert not gv.resume_path(out).exists()
    if stop == 9:  # the largest state (stage 2's latents beside stage 1's): the plan's size, give or take
        assert largest - 8_000 <= planned <= largest * 1.5, (planned, largest)  # + a CPU generator's 5 KB state
        assert len(saves) == stop


def parsed(argv):
    parser = gv.build_parser()
    return parser.parse_args([str(a) for a in argv]), parser


@pytest.mark.parametrize("model, extra, stop, where", [
    # LTX-Video 0.9.1 in one pass: the VAE's decode noise is drawn from the generator the steps left
    ("i2v", ["--width", "192", "--height", "128", "--num-frames", "9", "--steps", "6"], 4, "stage 1 step 4/6"),
    # CogVideoX: DPM is a two-step sampler whose previous x0 lives in the pipeline's loop
    ("cog", ["--num-frames", "9", "--steps", "6"], 3, "stage 1 step 3/6"),
])
def test_each_family_resumes_to_the_same_video(models, tmp_path, monkeypatch, capsys, model, extra, stop, where):
    image = make_image(tmp_path / "in.png")
    argv = ["--image", image, "--prompt", "a boat", "--model", models[model], "--seed", "3"] + extra
    assert run(argv + ["-o", tmp_path / "whole.mp4"])[0] == 0
    assert stopped_at_save(argv + ["-o", tmp_path / "v.mp4"], stop)[0] == gv.EXIT_INTERRUPTED
    rc, cap = run(argv + ["-o", tmp_path / "v.mp4"], capsys)
    assert rc == 0 and f"resuming from {where}" in cap.err, cap.err
    assert np.array_equal(frames_of(tmp_path / "v.mp4"), frames_of(tmp_path / "whole.mp4"))


def test_a_long_clip_resumes_in_its_second_window_with_the_first_decoded_from_its_saved_latents(
        models, tmp_path, monkeypatch, capsys):
    argv = ["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "--width", "192", "--height", "128",
            "--num-frames", "40", "--seed", "5", "--segment-prompt", "it sails", "--segment-prompt", "it sinks",
            *fast(models)]
    assert run(argv + ["-o", tmp_path / "whole.mp4"])[0] == 0
    # window 1: 10 saves; window 2: stage 1's steps
    assert stopped_at_save(argv + ["-o", tmp_path / "v.mp4"], 14)[0] == gv.EXIT_INTERRUPTED
    passes = []
    from diffusers import LTXVideoTransformer3DModel

    real = LTXVideoTransformer3DModel.forward
    monkeypatch.setattr(LTXVideoTransformer3DModel, "forward",
                        lambda self, *a, **k: passes.append(1) or real(self, *a, **k))
    rc, cap = run(argv + ["-o", tmp_path / "v.mp4"], capsys)
    assert rc == 0 and "resuming from window 2, stage 1 step 4/7" in cap.err, cap.err
    assert len(passes) == 3 + 3  # window 2's last 3 stage-1 steps and its 3 stage-2 steps: nothing else
    assert np.array_equal(frames_of(tmp_path / "v.mp4"), frames_of(tmp_path / "whole.mp4"))


def test_an_ltx2_long_clip_resumes_its_second_window_with_the_first_windows_sound(hub, tmp_path, capsys):
    """LTX-2: the step tensors include the audio latents; a finished window keeps its soundtrack
    (the next window holds its last frames' sound, and the clip's track starts with it)."""
    from test_ltx2 import audio_streams

    argv = ["--image", make_image(tmp_path / "in.png", 160, 96), "--prompt", "waves", "--model", "ltx2", "--seed", "5",
            "--memory-budget", "200", "--preset", "fast", "--width", "192", "--height", "128", "--num-frames", "33",
            "--segment-prompt", "calm", "--segment-prompt", "a storm"]
    assert run(argv + ["-o", tmp_path / "whole.mp4"])[0] == 0
    # window 1: 7 step saves and its end in stage 1 (8 steps), 2 and its end in stage 2; then window 2
    assert stopped_at_save(argv + ["-o", tmp_path / "v.mp4"], 11 + 3)[0] == gv.EXIT_INTERRUPTED
    rc, cap = run(argv + ["-o", tmp_path / "v.mp4"], capsys)
    assert rc == 0 and "resuming from window 2, stage 1 step 3/8" in cap.err, cap.err
    assert np.array_equal(frames_of(tmp_path / "v.mp4"), frames_of(tmp_path / "whole.mp4"))
    assert np.array_equal(audio_streams(tmp_path / "v.mp4")[1], audio_streams(tmp_path / "whole.mp4")[1])


def test_a_changed_setting_starts_fresh_in_one_line_and_no_seed_given_resumes_the_drawn_seed(
        models, tmp_path, monkeypatch, capsys):
    out = tmp_path / "v.mp4"
    argv = ["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", out, "--width", "192",
            "--height", "128", "--num-frames", "9"] + fast(models)  # no --seed: one is drawn
    assert stopped_at_save(argv, 3)[0] == gv.EXIT_INTERRUPTED
    drawn = gv.read_resume_record(out)["seed"]
    rc, cap = run(argv + ["--prompt", "a ship"], capsys)  # another prompt shaped other latents
    assert rc == 0 and "resuming" not in cap.err
    assert "a stopped run of v.mp4 left its state, made with other settings: starting fresh" in cap.err
    assert json.loads(out.with_suffix(".json").read_text())["resumed"] is None
    out.unlink()
    out.with_suffix(".json").unlink()

    assert stopped_at_save(argv, 3)[0] == gv.EXIT_INTERRUPTED
    drawn = gv.read_resume_record(out)["seed"]
    rc, cap = run(argv, capsys)  # the same command: the seed the stopped run drew, not a new one
    assert rc == 0 and "resuming from stage 1 step 3/7" in cap.err and f"seed {drawn}" in cap.err
    assert json.loads(out.with_suffix(".json").read_text())["seed"] == drawn


def test_a_damaged_state_file_starts_fresh(models, tmp_path, monkeypatch, capsys):
    out = tmp_path / "v.mp4"
    argv = ["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", out] + fast(models) + FAST
    assert stopped_at_save(argv, 3)[0] == gv.EXIT_INTERRUPTED
    state = gv.resume_path(out)
    data = state.read_bytes()
    state.write_bytes(data[: len(data) - 100])  # cut short: the header reads, the tensors do not
    rc, cap = run(argv, capsys)
    assert rc == 0 and "is unreadable" in cap.err and "starting fresh" in cap.err, cap.err
    assert not state.exists()


def test_the_plan_names_the_state_and_a_state_unused_for_two_weeks_is_removed(models, tmp_path, capsys):
    old, recent = tmp_path / ".a.mp4.resume.safetensors", tmp_path / ".b.mp4.resume.safetensors"
    for path in (old, recent):
        path.write_bytes(b"x")
    week3 = time.time() - 21 * 86400
    os.utime(old, (week3, week3))
    rc, cap = run(["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", tmp_path / "v.mp4"]
                  + fast(models) + FAST, capsys)
    assert rc == 0
    assert "if stopped: the same command resumes (its state, ~" in cap.err
    assert not old.exists() and recent.exists()


def test_a_batch_resumes_its_stopped_job_part_way(models, tmp_path, monkeypatch, capsys):
    image = make_image(tmp_path / "in.png")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps({"image": str(image), "prompt": p, "seed": 5, "output": f"{p}.mp4"})
                              for p in ("one", "two")) + "\n")
    argv = ["--jobs", jobs, "--output-dir", tmp_path / "out", "--width", "192", "--height", "128",
            "--num-frames", "9"] + fast(models)
    stopped_at_save(argv, 10 + 3)  # job 1 whole (10 saves), then 3 steps into job 2
    assert (tmp_path / "out" / "one.mp4").is_file() and not (tmp_path / "out" / "two.mp4").exists()
    rc, cap = run(argv, capsys)
    assert rc == 0, cap.err
    assert "resuming from stage 1 step 3/7" in cap.err and "already done" in cap.err + cap.out


def rewrite_state(path, change):
    """The state file with its record changed by `change(record)`, its tensors as they were (a
    hand edit: the checksum is not recomputed)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    record = gv.read_resume_record(path.with_name(path.name[1:].removesuffix(gv.RESUME_SUFFIX)))
    change(record)
    save_file(tensors, str(path), metadata={"resume": json.dumps(record)})


@pytest.mark.parametrize("change", [
    lambda r: r.update(stage=99),  # a resume point the job does not have
    lambda r: r.update(step=-3),
    lambda r: r.update(saved_at=r["saved_at"] - 1),  # any edit: the checksum no longer matches
])
def test_a_hand_edited_state_starts_fresh_and_makes_the_right_video(models, tmp_path, capsys, uninterrupted, change):
    out = tmp_path / "v.mp4"
    argv = ["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", out] + fast(models) + FAST
    assert stopped_at_save(argv, 8)[0] == gv.EXIT_INTERRUPTED
    rewrite_state(gv.resume_path(out), change)
    rc, cap = run(argv, capsys)
    assert rc == 0 and "changed or damaged since it was saved: starting fresh" in cap.err, cap.err
    assert np.array_equal(frames_of(out), uninterrupted)


def test_weights_replaced_in_place_start_fresh(models, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(models["cond"], model)
    out = tmp_path / "v.mp4"
    argv = ["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", out, "--model", model,
            "--upsampler", models["up"]] + FAST
    assert stopped_at_save(argv, 8)[0] == gv.EXIT_INTERRUPTED
    weights = model / "transformer" / "diffusion_pytorch_model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # as if replaced
    rc, cap = run(argv, capsys)
    assert rc == 0 and "made with other model weights: starting fresh" in cap.err, cap.err


def test_variations_stopped_part_way_rerun_keep_the_made_and_resume_the_stopped(models, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    argv = ["--image", make_image(tmp_path / "in.png"), "--prompt", "a boat", "-o", out, "--variations", "3",
            "--seed", "10", "--width", "192", "--height", "128", "--num-frames", "9"] + fast(models)
    assert stopped_at_save(argv, 10 + 3)[0] == gv.EXIT_INTERRUPTED  # v-s10 made, v-s11 stopped in stage 1
    made = (tmp_path / "v-s10.mp4").stat().st_mtime_ns
    rc, cap = run(argv, capsys)
    assert rc == 0, cap.err
    assert "v-s10.mp4: made before with these settings; kept" in cap.err and "resuming from stage 1 step 3/7" in cap.err
    assert (tmp_path / "v-s10.mp4").stat().st_mtime_ns == made
    assert all((tmp_path / f"v-s{s}.mp4").is_file() for s in (10, 11, 12))
    assert not list(tmp_path.glob(".*resume*"))
