"""--ui: a real page server (the CLI as a subprocess, on a free port) driven through gradio_client,
as a script or another app would drive it, and loaded in a real headless browser where Debian's
chromium is installed. Tiny models from local folders; nothing leaves 127.0.0.1."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import generate_video as gv
from conftest import make_image, probe

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # the client's own telemetry: nothing leaves this machine
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "generate_video.py"
FAST = {"resolution": "480p", "duration": "0.4", "steps": "2", "seed": "7"}  # a tiny model's quick video
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PageServer:
    """`python generate_video.py --ui` in its own folder, its output in a file."""

    def __init__(self, folder: Path, *extra: str):
        self.folder, self.port = folder, free_port()
        self.videos = folder / "videos"
        self.log = folder / "server.log"
        env = dict(os.environ, GENERATE_VIDEO_CACHE=str(folder / "cache"))
        env.pop("GRADIO_ANALYTICS_ENABLED")  # the server sets it itself, as it does for a user
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, str(SCRIPT), "--ui", "--port", str(self.port), "--no-browser",
                                          *extra], cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 90
        while "the page is at" not in self.output():
            assert self.proc.poll() is None and time.time() < deadline, self.output()
            time.sleep(0.2)
        self.url = f"http://127.0.0.1:{self.port}/"

    def output(self) -> str:
        return self.log.read_text()

    def client(self) -> Client:
        return Client(self.url, verbose=False)

    def status(self, client: Client) -> list[dict]:
        return json.loads(client.predict(api_name="/status"))

    def stop(self) -> int:
        self.proc.send_signal(2)  # Ctrl-C
        return self.proc.wait(60)


@pytest.fixture(scope="module")
def page(tmp_path_factory, models):
    server = PageServer(tmp_path_factory.mktemp("page"))
    yield server
    assert server.stop() == 0
    out = server.output()
    # a user never sees a traceback or a library's warning in the page's terminal
    assert "Traceback" not in out and "Warning" not in out, out
    assert "the page is closed" in out


def listening_addresses(port: int) -> set[str]:
    """The local addresses a socket listens on at this port (Linux's /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_the_api_makes_a_video_that_reads_back_right(page, models, tmp_path):
    image = make_image(tmp_path / "harbour.png")
    path = Path(page.client().predict(image=handle_file(str(image)), prompt="a boat drifts at sunset",
                                      model=str(models["i2v"]), **FAST, api_name="/generate"))
    assert path.parent == page.videos.resolve() and path.name == "harbour.mp4"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    video = probe(path)
    assert video["size"] == (sidecar["width"], sidecar["height"]) == (854, 480)
    assert len(video["frames"]) == sidecar["output_frames"] == 17 and sidecar["seed"] == 7
    # the same core as the command line: its reproduce command, with the image kept beside the videos
    kept = Path(sidecar["image"])
    assert kept.parent.parent == page.videos.resolve() / "inputs" and kept.read_bytes() == image.read_bytes()
    assert "--steps=2" in sidecar["command"] and "--resolution" not in sidecar["command"]


BAD = {  # page field -> (its value, the command line's words for it)
    "guidance": ({"guidance_scale": "1000"}, ["--guidance-scale", "1000"]),
    "choice": ({"resolution": "9000p"}, ["--resolution", "9000p"]),
    "steps": ({"steps": "0"}, ["--steps", "0"]),
    "text file": ({}, []),
    "tiny image": ({}, []),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_input_comes_back_as_the_cli_line(page, models, tmp_path, case):
    given, words = BAD[case]
    image = make_image(tmp_path / "bad.png", *((1, 1) if case == "tiny image" else (160, 90)))
    if case == "text file":
        image.write_text("not a picture")
    cli = subprocess.run([sys.executable, str(SCRIPT), "--image", str(image), "--prompt", "a boat", "--model",
                          str(models["i2v"]), *words], capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 2
    with pytest.raises(AppError) as e:
        page.client().predict(image=handle_file(str(image)), prompt="a boat", model=str(models["i2v"]), **given,
                              api_name="/generate")
    page_line, cli_line = str(e.value).strip(), cli.stderr.strip().replace(" (see --help)", "")
    if "--image" in cli_line:  # a dropped file is named where Gradio put it, the command line's where it is
        page_line = page_line.replace(str(Path(page_line.split()[2]).parent), str(image.parent))
    assert page_line == cli_line
    assert not list(page.videos.glob("bad*")) and not list(page.videos.glob("inputs/*/bad.png"))  # no copy kept


def test_a_nul_in_a_prompt_is_refused(page, models, tmp_path):
    with pytest.raises(AppError, match="^error: --prompt contains a NUL character; remove it$"):
        page.client().predict(image=handle_file(str(make_image(tmp_path / "nul.png"))), prompt="a\x00b",
                              model=str(models["i2v"]), api_name="/generate")


def test_cancel_during_the_denoise_leaves_nothing_behind(page, models, tmp_path):
    image = make_image(tmp_path / "cancelled.png")
    client = page.client()
    job = client.submit(image=handle_file(str(image)), prompt="a boat", model=str(models["i2v"]),
                        **dict(FAST, steps="400"), api_name="/generate")
    deadline = time.time() + 120
    while not any(e["title"].startswith("cancelled.png") and "denoise [" in e["status"] for e in page.status(client)):
        assert time.time() < deadline
        time.sleep(0.2)
    assert "cancelling" in client.predict(api_name="/cancel")
    with pytest.raises(AppError, match="cancelled: no partial file was left behind"):
        job.result(timeout=60)
    assert sorted(p.name for p in page.videos.iterdir() if "cancelled" in p.name) == []  # no video, temp or state


def test_jobs_queued_together_run_in_order_on_one_load(page, models, tmp_path):
    client = page.client()
    jobs = []
    for k in range(2):  # the second added while the first is queued or running
        jobs.append(client.submit(image=handle_file(str(make_image(tmp_path / f"order{k}.png"))), prompt=f"a boat {k}",
                                  model=str(models["i2v"]), **FAST, api_name="/generate"))
        deadline = time.time() + 60
        while not any(e["title"].startswith(f"order{k}.png") for e in page.status(client)):
            assert time.time() < deadline
            time.sleep(0.1)
    paths = [Path(job.result(timeout=180)) for job in jobs]
    assert [p.name for p in paths] == ["order0.mp4", "order1.mp4"]
    entries = {e["title"].split(":")[0]: e for e in page.status(client)}
    first, second = entries["order0.png"], entries["order1.png"]
    assert first["number"] < second["number"]
    assert paths[0].stat().st_mtime <= paths[1].stat().st_mtime
    # the second found the model still loaded: only its new prompt was encoded
    assert any("is still loaded" in line for line in second["lines"])
    assert not any(line.startswith("loading ") for line in second["lines"])


def test_the_page_listens_on_loopback_only_unless_listen(page, tmp_path):
    assert listening_addresses(page.port) == {"127.0.0.1"}
    server = PageServer(tmp_path, "--listen")
    try:
        assert listening_addresses(server.port) == {"0.0.0.0"}
        assert "warning: --listen: anyone on this network" in server.output()
    finally:
        assert server.stop() == 0


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_a_browser_finds_the_drop_the_prompt_and_the_plan(page, tmp_path):
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=8000", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(base + ["--dump-dom", page.url], capture_output=True, text=True, timeout=120).stdout
    made = [Path(e["outputs"][-1]).name for e in page.status(page.client()) if e["outputs"]]
    for element in ('id="image"', 'id="prompt"', 'id="plan"', "Drop File Here", "the plan (download, memory, time)",
                    *([f"<strong>{made[-1]}</strong>"] if made else [])):  # a (re)loaded page: the newest video
        assert element in dom, element
    shot = tmp_path / "page.png"
    subprocess.run(base + ["--window-size=1280,1280", f"--screenshot={shot}", page.url], capture_output=True,
                   timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("GENERATE_VIDEO_SCREENSHOT"):  # the README's picture, made again on purpose
        shutil.copyfile(shot, ROOT / "tests" / "page.png")


def fields(**given) -> list:
    """The page's field values in its order, the rest empty (as a fresh page sends them)."""
    return [given.get(name) for name in gv.PAGE_NAMES]


def test_the_plan_shows_before_anything_loads_and_refuses_what_cannot_fit(models, tmp_path):
    queue = gv.JobQueue(tmp_path / "videos", [], gv.Log(0))
    page_ = gv.Page(queue)
    image = str(make_image(tmp_path / "plan.png"))
    assert "plan (download, memory, time) shows here" in page_.preview(*fields(prompt="a boat"))
    plan = page_.preview(*fields(image=image, prompt="a boat", model=str(models["i2v"]), **FAST))
    lines = plan.splitlines()
    assert lines[0].startswith("plan: ") and "854x480, 17 frames at 24 fps" in lines[0]
    assert any(line.startswith("  memory: at most about") for line in lines) and lines[-1].startswith("  time: ")
    # the command line's refusal, word for word: the same planner
    tight = gv.Page(gv.JobQueue(tmp_path / "tight", ["--memory-budget=0.01"], gv.Log(0)))
    refusal = tight.preview(*fields(image=image, prompt="a boat", model=str(models["i2v"]), **FAST))
    cli = subprocess.run([sys.executable, str(SCRIPT), "--image", image, "--prompt", "a boat", "--model",
                          str(models["i2v"]), "--resolution", "480p", "--duration", "0.4", "--steps", "2",
                          "--memory-budget", "0.01"], capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 2 and refusal == cli.stderr.strip().splitlines()[-1]
    for q in (queue, tight.queue):
        q.stop()
    assert not (tmp_path / "videos" / "plan.mp4").exists()


def test_history_makes_a_video_again_and_queues_variations_and_refuses_a_non_draft(models, tmp_path):
    queue = gv.JobQueue(tmp_path / "videos", [], gv.Log(0))
    page_ = gv.Page(queue)
    image = str(make_image(tmp_path / "again.png"))
    first = page_.enqueue(fields(image=image, prompt="a boat", model=str(models["i2v"]), **FAST))
    assert first.finished.wait(120) and first.state == "done", first.error
    assert [row[0] for row in page_.history_rows()] == ["again.mp4"]
    assert page_.again("again.mp4") == "job 2 queued: again-2.mp4"
    assert queue.entries[1].finished.wait(120) and queue.entries[1].state == "done", queue.entries[1].error
    made = [probe(tmp_path / "videos" / name)["frames"] for name in ("again.mp4", "again-2.mp4")]
    assert all((a == b).all() for a, b in zip(*made))  # the same seed and settings: the same frames
    queue.stop()  # what is queued from here waits: its plan is what is checked
    assert page_.again("again.mp4", variations=True).startswith("job 3 queued")
    seeds = [job.seed for job in gv.page_jobs(queue.entries[2].argv, gv.Log(0))]
    assert seeds == [8, 9, 10]  # the seeds after the video's own (7)
    assert page_.full("again.mp4") == "choose a draft in the list first (made with Draft ticked)"
    assert page_.again("gone.mp4") == "choose a video in the list first"


def test_a_request_gradio_refuses_itself_is_one_line_in_the_terminal(page, models):
    with pytest.raises(AppError):  # a path on the server it never uploaded: not a file of the caller's
        page.client().predict(image=str(SCRIPT), prompt="a boat", model=str(models["i2v"]), api_name="/generate")
    deadline = time.time() + 10
    while "warning: the page refused a request: " not in page.output():
        assert time.time() < deadline, page.output()
        time.sleep(0.1)
    assert "Traceback" not in page.output()


def test_cancel_while_the_prompts_encode_ends_the_job_before_the_model_loads(models, tmp_path, monkeypatch):
    queue = gv.JobQueue(tmp_path / "videos", [], gv.Log(0))
    real, loaded = gv.encode_prompts, []

    def encode(*args, **kwargs):
        out = real(*args, **kwargs)
        queue.cancel()  # pressed while the text encoder works
        return out

    monkeypatch.setattr(gv, "encode_prompts", encode)
    monkeypatch.setattr(gv, "load_pipeline", lambda *a, **k: loaded.append(a))
    entry = gv.Page(queue).enqueue(fields(image=str(make_image(tmp_path / "early.png")), prompt="a boat",
                                          model=str(models["i2v"]), **FAST))
    assert entry.finished.wait(60) and entry.state == "cancelled" and loaded == []
    assert not [p for p in (tmp_path / "videos").iterdir() if p.name != "inputs"]
    queue.stop()


def test_ctrl_c_on_the_server_stops_the_running_job_leaving_nothing_half_made(models, tmp_path):
    server = PageServer(tmp_path)
    client = server.client()
    client.submit(image=handle_file(str(make_image(tmp_path / "stopped.png"))), prompt="a boat",
                  model=str(models["i2v"]), **dict(FAST, steps="400"), api_name="/generate")
    deadline = time.time() + 120
    while not any("denoise [" in e["status"] for e in server.status(client)):
        assert time.time() < deadline
        time.sleep(0.2)
    assert server.stop() == 0
    out = server.output()
    assert "stopping: the running job ends at its next step" in out and "the page is closed" in out, out
    left = [p.name for p in server.videos.iterdir() if p.name != "inputs"]
    assert not [name for name in left if not name.endswith(".resume.safetensors")], left  # nothing half-made
