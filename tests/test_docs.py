"""The README's commands are the ones that work: what CI runs, what the parser accepts, and the
plan each example makes (sizes and frame counts the README states beside them)."""

import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT, gv, make_image

README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """Every `python generate_video.py ...` command in the README's code blocks, comments cut."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    commands = []
    for line in "\n".join(blocks).splitlines():
        line = line.split("&&")[-1].split("  #")[0].strip()
        if line.startswith("python generate_video.py"):
            commands.append(line)
    return commands


def test_the_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert "```bash\npython -m pytest -q tests\n```" in README and ci[-1] == "python -m pytest -q tests"
    assert "-r requirements.txt" in (ROOT / "environment.yml").read_text()
    assert "conda env create -f environment.yml && conda activate video-ai && python generate_video.py" in README
    assert "NOTES.md" not in README


def test_every_readme_command_parses():
    commands = readme_commands()
    assert len(commands) >= 8
    for command in commands:
        argv = shlex.split(command)[2:]
        gv.build_parser().parse_args(argv)  # exits 2 on an unknown or malformed option


@pytest.mark.parametrize("command, size, frames", [
    ("--resolution 720p --duration 3", (1280, 720), 73),
    ("--width 1024 --height 576 --num-frames 97 --fps 24", (1024, 576), 97),
    ("", (1920, 1080), 121),
    ("--draft --variations 4", (960, 540), 121),  # a draft is half size: 960x544 cropped to 960x540
])
def test_readme_examples_make_what_the_readme_says(tmp_path, command, size, frames):
    assert any(c.endswith(command) or command in c for c in readme_commands())
    image = make_image(tmp_path / "in.png", 1600, 900)
    args = gv.build_parser().parse_args(["--image", str(image), "--prompt", "p", "-o", str(tmp_path / "o.mp4")]
                                        + shlex.split(command))
    job = gv.plan_job(gv.request_from_args(args, Path(args.image[0])), gv.Log(0))
    assert (job.width, job.height, job.num_frames, job.preset) == (*size, frames, "fast")


def test_the_readme_check_command_runs_as_written(tmp_path):
    """`python generate_video.py --check` from the README's setup, in this (CI: fresh) environment."""
    import os
    import subprocess
    import sys

    assert "python generate_video.py --check" in readme_commands()
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "generate_video.py", "--check"], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0 and last.startswith("ready"), proc.stdout + proc.stderr


def test_the_readme_states_the_scripts_size():
    """The script's size the README gives (KB, 1000 bytes) is today's, to within 5%."""
    size = (ROOT / "generate_video.py").stat().st_size / 1000
    stated = [int(n) for n in re.findall(r"(\d+) KB script|script \((\d+) KB", README) for n in n if n]
    assert stated and all(abs(n - size) <= 0.05 * size for n in stated), (stated, size)


def test_the_readme_is_for_users_and_its_numbers_are_the_planners(tmp_path):
    """Issue 25: at most ~300 lines; the cost table's minutes are the planner's projection for an
    M4 Max (run_benchmarks.py's rate), the default download its table's, the default's Mac size its plan's."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
    from run_benchmarks import M4_MAX_BF16_TFLOPS

    assert len(README.splitlines()) <= 300
    image = make_image(tmp_path / "in.png", 1920, 1080)
    rows = re.findall(r"^\| `([\w.-]+)`[^|]*\| ~([\d.]+) (min|hours) \| ~([\d.]+) (min|hours) \|$", README, re.M)
    assert {r[0] for r in rows} == {"ltx-distilled", "ltx2", "ltx2.5", "ltx2.5-dev"}
    for model, *cells in rows:
        for (value, unit), res in zip((cells[:2], cells[2:]), ("720p", "1080p")):
            spec = gv.MODELS[model]
            job = gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "o.mp4", model=model,
                                         preset="fast" if spec.distilled else "quality", resolution=res,
                                         duration=5.0), gv.Log(0))
            minutes = gv.estimate_seconds(job, M4_MAX_BF16_TFLOPS) / 60
            stated = float(value) * (60 if unit == "hours" else 1)
            assert abs(stated - minutes) <= 0.1 * minutes, (model, res, stated, minutes)
    assert f"**~{gv.MODELS[gv.DEFAULT_MODEL_FAST].download_gb:.0f} GB**" in README
    default = gv.plan_job(gv.Request(image=image, prompt="p", output=tmp_path / "o.mp4"), gv.Log(0))
    plan = gv.plan_memory(default, default.dims, "mps", 2, int(16 * gv.MPS_WORKING_SET * 2**30), 2**30,
                          default.request)
    assert plan.peak_gib <= 16 * gv.MPS_WORKING_SET and "fits every Apple Silicon Mac from\n  16 GB up" in README
