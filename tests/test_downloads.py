"""What a newcomer sees while a model downloads, through the CLI as a subprocess against the local
Hub and the real huggingface_hub client, with no progress-bar variable set (as users have it):
one progress line of ours, no library bars, nothing about fetching when all is cached; a
download the disk cannot hold is refused before a byte is fetched."""

import os
import subprocess
import sys

import pytest

from conftest import gv, make_image
from hub_server import FakeHub
from test_hub import ALIAS_ARGS, ROOT, hub, hub_root  # noqa: F401 (fixtures)

LIBRARY_MARKS = ("Fetching", "it/s]", "Download complete", "Reconstruct", "Downloading bytes", "UserWarning")


def user_run(args, server, cache, timeout=180):
    """The CLI as a user runs it: no HF_HUB_DISABLE_PROGRESS_BARS, no HF_HUB_OFFLINE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_DISABLE", "HF_HUB_OFFLINE"))}
    env.update(HF_ENDPOINT=server.url, HF_HUB_CACHE=str(cache))
    return subprocess.run([sys.executable, str(ROOT / "generate_video.py"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_a_first_download_shows_one_line_of_ours_and_a_cached_run_says_nothing_of_fetching(hub_root, tmp_path):
    server = FakeHub(hub_root).start()
    try:
        image = make_image(tmp_path / "in.png", 160, 96)
        # LTX-2's tiny weights are 12.9 MB: over the size that gets a line (a config or tokenizer passes silently)
        args = ["--image", str(image), "--prompt", "p", "--model", "ltx2", "-o", str(tmp_path / "a.mp4"), "--seed", "1",
                "--memory-budget", "200", *ALIAS_ARGS["ltx2"]]
        first = user_run(args, server, tmp_path / "cache")
        assert first.returncode == 0, first.stderr
        assert first.stderr.count("downloading ") == 1 and "file(s) of rootonchair/LTX-2-19b-distilled: 12" in first.stderr
        assert "  download [####################] 100%" in first.stderr  # our line (every 10% off a terminal)
        assert not [line for line in first.stderr.splitlines() if any(m in line for m in LIBRARY_MARKS)], first.stderr
        again = user_run(args + ["--overwrite"], server, tmp_path / "cache")
        assert again.returncode == 0, again.stderr
        assert "download" not in again.stderr.lower() and "fetch" not in again.stderr.lower(), again.stderr
        quiet = user_run(args + ["--overwrite", "-q"], server, tmp_path / "cache2")  # -q: the last line only
        assert quiet.returncode == 0 and quiet.stderr == "" and len(quiet.stdout.splitlines()) == 1, quiet.stderr
    finally:
        server.stop()


def test_a_download_the_disk_cannot_hold_is_refused_before_a_byte_is_fetched(hub, tmp_path, capsys, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 5 * 10**6, 5 * 10**6))
    image = make_image(tmp_path / "in.png", 160, 96)
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", "ltx", "-o", str(tmp_path / "a.mp4"),
                  *ALIAS_ARGS["ltx"]])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("error: Lightricks/LTX-Video-0.9.1 needs ") and "5.0 MB free" in last, err
    assert "HF_HOME" in last and "Traceback" not in err
    assert not hub.downloaded()  # not one file body fetched (the listing only)


def test_a_disk_that_fills_during_a_download_says_disk_not_network(hub, tmp_path, capsys, monkeypatch):
    import errno

    import huggingface_hub.file_download as fd

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fd, "http_get", full)
    image = make_image(tmp_path / "in.png", 160, 96)
    rc = gv.main(["--image", str(image), "--prompt", "p", "--model", "ltx", "-o", str(tmp_path / "a.mp4"),
                  *ALIAS_ARGS["ltx"]])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and "filled up while downloading" in last and "network" not in last, last


def test_the_plan_of_an_uncached_model_states_its_download_and_a_cached_ones_does_not(hub, tmp_path, capsys):
    image = make_image(tmp_path / "in.png", 160, 96)
    args = ["--image", str(image), "--prompt", "p", "--model", "ltx", "-o", str(tmp_path / "a.mp4"), *ALIAS_ARGS["ltx"]]
    assert gv.main(args) == 0
    first = capsys.readouterr().err
    assert "  download: ~25.0 GB the first time" in first, first  # the real repo's listing (README "Downloads")
    assert first.index("  download: ~") < first.index("encoding")  # in the plan, before anything loads
    assert gv.main(args + ["--overwrite"]) == 0
    assert "download" not in capsys.readouterr().err


def test_a_hub_that_accepts_and_never_answers_ends_the_run_in_seconds_with_one_line(tmp_path, capsys, monkeypatch):
    """Issue 26: huggingface_hub's repo-info call has no timeout of its own; the tool's client has
    one (HUB_TIMEOUT_S, shortened here), so a silent server is an error line, not a hang."""
    import socket
    import threading
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(silent.accept()) for _ in range(16)], daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", os.environ["HF_ENDPOINT"])
    monkeypatch.setattr(gv, "HUB_TIMEOUT_S", (1, 1))
    gv.hub_timeouts.cache_clear()
    try:
        image = make_image(tmp_path / "in.png", 160, 96)
        t0 = time.perf_counter()
        rc = gv.main(["--image", str(image), "--prompt", "p", "--model", "ltx", "-o", str(tmp_path / "a.mp4"),
                      *ALIAS_ARGS["ltx"]])
        seconds = time.perf_counter() - t0
    finally:
        monkeypatch.undo()
        gv.hub_timeouts.cache_clear()
        gv.hub_timeouts()  # the real timeouts again for the tests after this one
        silent.close()
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("error: ") and "Traceback" not in err, err
    assert seconds < 30, seconds  # measured ~6 s with 1 s timeouts (the listing, then the download, each retried)


def test_sigterm_during_a_slow_download_ends_the_run_in_seconds(hub_root, tmp_path):
    """Issue 26: the download pool of huggingface_hub was waited on after a signal (11.5 minutes
    seen); the wait is ours now, so SIGTERM ends the run at once, with the usual one line."""
    import signal
    import time

    server = FakeHub(hub_root).start()
    server.bytes_per_s = 20_000  # each of the tiny LTX-2's weight shards (~1-2 MB) takes a minute or more
    try:
        image = make_image(tmp_path / "in.png", 160, 96)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_DISABLE", "HF_HUB_OFFLINE"))}
        env.update(HF_ENDPOINT=server.url, HF_HUB_CACHE=str(tmp_path / "cache"))
        proc = subprocess.Popen([sys.executable, str(ROOT / "generate_video.py"), "--image", str(image), "--prompt",
                                 "p", "--model", "ltx2", "-o", str(tmp_path / "a.mp4"), "--memory-budget", "200",
                                 *ALIAS_ARGS["ltx2"]], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=env)
        seen = ""
        deadline = time.time() + 120
        while "downloading " not in seen and time.time() < deadline:
            seen += proc.stderr.readline()
        assert "downloading " in seen, seen
        time.sleep(1.0)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
        assert proc.returncode == 143 and time.time() - t0 < 10, (proc.returncode, time.time() - t0)
        assert "Traceback" not in rest and not (tmp_path / "a.mp4").exists()
    finally:
        server.stop()
