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
