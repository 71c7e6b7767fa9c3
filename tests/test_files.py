"""Issue 12, files and endings: nothing the user had is lost, nothing half-made is left, a video
never sits beside another run's sidecar. Real files, real child processes, real signals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import gv, make_image, probe, run

SCRIPT = str(Path(gv.__file__))
SMALL = ["--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"]


def child(argv, **kw):
    return subprocess.Popen([sys.executable, SCRIPT] + [str(a) for a in argv], stderr=subprocess.PIPE,
                            text=True, **kw)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial." in p.name)


def test_a_run_that_loses_the_race_lands_nothing(models, image, tmp_path, capsys):
    """Run B finishes second: A's video and sidecar appeared meanwhile. B exits 1 and the pair
    on disk is A's, untouched (before: B had already replaced A's sidecar)."""
    winner = tmp_path / "a"
    winner.mkdir()
    base = ["--image", image, "--prompt", "p", "--model", models["i2v"], "-q"] + SMALL
    assert run(base + ["--seed", "111", "-o", winner / "same.mp4"])[0] == 0
    a_video, a_side = (winner / "same.mp4").read_bytes(), (winner / "same.json").read_text()
    out = tmp_path / "same.mp4"
    real_finish = gv.VideoWriter.finish

    def a_publishes_meanwhile(self):
        real_finish(self)
        (tmp_path / "same.json").write_text(a_side)
        (tmp_path / "same.mp4").write_bytes(a_video)

    gv.VideoWriter.finish = a_publishes_meanwhile
    try:
        rc, cap = run(base + ["--seed", "222", "-o", out], capsys)
    finally:
        gv.VideoWriter.finish = real_finish
    assert rc == 1 and "appeared while generating" in cap.err and "wrote nothing" in cap.err
    assert out.read_bytes() == a_video and json.loads(out.with_suffix(".json").read_text())["seed"] == 111
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("appears", ["same.mp4", "same.json"])
def test_when_either_half_of_the_pair_appears_nothing_of_the_run_lands(models, image, tmp_path, capsys, appears):
    out = tmp_path / "same.mp4"
    real_finish = gv.VideoWriter.finish

    def someone_writes(self):
        real_finish(self)
        (tmp_path / appears).write_text("theirs")

    gv.VideoWriter.finish = someone_writes
    try:
        rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", out] + SMALL, capsys)
    finally:
        gv.VideoWriter.finish = real_finish
    assert rc == 1 and (tmp_path / appears).read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.png", appears])


def test_a_claim_that_fails_halfway_takes_back_what_it_placed(tmp_path):
    """The hard-link claims themselves: the sidecar was placed, the video's name was taken by
    the time its turn came (no lock on this file system): the sidecar is taken back."""
    side_tmp, video_tmp = tmp_path / ".s.partial.json", tmp_path / ".v.partial.mp4"
    side_tmp.write_text("{}")
    video_tmp.write_bytes(b"mine")
    real_claim = gv._claim

    def racing_claim(tmp, final):
        if final.suffix == ".mp4":
            final.write_bytes(b"theirs")
        return real_claim(tmp, final)

    gv._claim = racing_claim
    try:
        with pytest.raises(gv.RunError, match="appeared"):
            gv.publish([(side_tmp, tmp_path / "x.json"), (video_tmp, tmp_path / "x.mp4")], overwrite=False)
    finally:
        gv._claim = real_claim
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4"] and (tmp_path / "x.mp4").read_bytes() == b"theirs"


def test_two_real_runs_racing_for_one_output_never_mix_video_and_sidecar(models, tmp_path):
    image = make_image(tmp_path / "in.png")
    out = tmp_path / "same.mp4"
    procs = {seed: subprocess.Popen(
        [sys.executable, SCRIPT, "--image", str(image), "--prompt", "p", "--model", str(models["i2v"]),
         "-o", str(out), "--seed", str(seed)] + SMALL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (111, 222)}
    results = {seed: (p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for seed, p in procs.items()}
    winners = [seed for seed, (rc, stdout, _) in results.items() if rc == 0]
    assert len(winners) == 1, results
    loser = ({111, 222} - set(winners)).pop()
    assert results[loser][0] in (1, 2), results  # 2: it planned after the winner had published
    assert json.loads(out.with_suffix(".json").read_text())["seed"] == winners[0]
    assert str(out) in results[winners[0]][1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "same.json", "same.mp4"]


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Ctrl-C as a terminal delivers it, even when pytest was started with SIGINT ignored (a
    background job of a shell without job control)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_second_ctrl_c_while_ffmpeg_finishes_cannot_leave_the_partial_file(tmp_path):
    """The first Ctrl-C started the cleanup; the second lands while ffmpeg is being closed."""
    writer = gv.VideoWriter(tmp_path / "v.mp4", 64, 64, 8, overwrite=False)
    writer.write(np.zeros((3, 64, 64, 3), np.uint8))
    gen = writer._gen

    class SecondCtrlC:
        def close(self):
            signal.raise_signal(signal.SIGINT)  # delivered while ffmpeg is still being closed
            gen.close()

    writer._gen = SecondCtrlC()
    with pytest.raises(KeyboardInterrupt):
        with writer:
            raise KeyboardInterrupt  # the first one
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_during_the_cleanup_of_a_failed_run_is_delivered_after_it(tmp_path):
    writer = gv.VideoWriter(tmp_path / "v.mp4", 64, 64, 8, overwrite=False)
    gen = writer._gen

    class CtrlC:
        def close(self):
            signal.raise_signal(signal.SIGINT)
            gen.close()

    writer._gen = CtrlC()
    with pytest.raises(KeyboardInterrupt):
        writer.abort(ending=False)  # not already ending: the user's Ctrl-C still stops the run
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run_and_nobody_elses(models, tmp_path):
    image = make_image(tmp_path / "wide.png", 1280, 720)
    out = tmp_path / "k.mp4"
    proc = child(["--image", image, "--prompt", "p", "--model", models["i2v"], "--resolution", "720p",
                  "--duration", "5", "--steps", "2", "--guidance-scale", "1", "-o", out])
    seen, deadline = "", time.time() + 120
    while "decode:" not in seen and time.time() < deadline:
        seen += proc.stderr.readline()
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)  # nothing can clean up after this
    proc.wait(timeout=60)
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and f"-{proc.pid}." in stale[0]
    host = gv.run_tag().split("-")[0]
    others = [f".k.{host}-{os.getppid()}.abc123.partial.mp4",  # a live process (ours or not)
              ".k.ffff-999999.abc123.partial.mp4" if host != "ffff" else ".k.0000-999999.abc123.partial.mp4",
              ".k.partial.mp4", "notes.partial.json"]  # another host's, and names not of our pattern
    for name in others:
        (tmp_path / name).write_text("keep")
    rc = subprocess.run([sys.executable, SCRIPT, "--image", image, "--prompt", "p", "--model", models["i2v"],
                         "-o", tmp_path / "next.mp4"] + SMALL, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert f"removed 1 partial file(s) left in {tmp_path} by runs that were killed: {stale[0]}" in rc.stderr
    assert sorted(leftovers(tmp_path)) == sorted(others)


def test_a_long_output_name_works_and_one_too_long_is_refused_up_front(models, image, tmp_path, capsys):
    ok = tmp_path / ("x" * 240 + ".mp4")  # its temp file name would have been 272 bytes
    assert run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", ok, "-q"] + SMALL)[0] == 0
    assert ok.is_file() and ok.with_suffix(".json").is_file()
    too_long = tmp_path / ("y" * 251 + ".mp4")  # 255 bytes; its sidecar would be 256
    rc, cap = run(["--image", image, "--prompt", "p", "--model", models["i2v"], "-o", too_long, "-q"] + SMALL, capsys)
    assert rc == 2 and cap.err.count("\n") == 1 and "too long" in cap.err and not list(tmp_path.glob("y*"))


def test_a_reader_that_goes_away_does_not_fail_a_finished_video(models, image, tmp_path):
    """`... | head -c 0`: stdout is a pipe nobody reads; the video is still made, exit 0."""
    out = tmp_path / "p.mp4"
    proc = subprocess.Popen([sys.executable, SCRIPT, "--image", str(image), "--prompt", "p", "--model",
                             str(models["i2v"]), "-o", str(out)] + SMALL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and out.is_file()


def test_a_write_failure_is_one_line_and_leaves_nothing(models, tmp_path):
    """A file size limit (as a full disk would) stops ffmpeg mid-video: exit 1, one error line
    without ffmpeg's output, no partial file, no sidecar."""
    import resource

    from PIL import Image

    image = tmp_path / "wide.png"  # smooth: its one-frame H.264 round trip stays small
    Image.fromarray(np.broadcast_to(np.linspace(0, 255, 1280, dtype=np.uint8)[None, :, None], (720, 1280, 3)).copy()
                    ).save(image)
    out = tmp_path / "big.mp4"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    proc = subprocess.run([sys.executable, SCRIPT, "--image", str(image), "--prompt", "p", "--model",
                           str(models["i2v"]), "--resolution", "720p", "--num-frames", "41", "--steps", "1",
                           "--guidance-scale", "1", "-o", str(out), "-q"],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: writing big.mp4 failed"), proc.stderr
    assert "ffmpeg version" not in proc.stderr and "FFMPEG" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.png"]
