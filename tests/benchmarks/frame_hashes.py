"""Frame hashes of every alias's tiny run, and of each directing feature: the proof that a refactor
changed no frame (issue 22). Not a unit test: hashes depend on the CPU's kernels, so they are
compared on one machine, before and after.

    python tests/benchmarks/frame_hashes.py > before.json      # on the old commit
    python tests/benchmarks/frame_hashes.py --compare before.json   # on the new one: exit 1 if any differ

Each run goes through main() against the local Hub (tests/hub_server.py) serving tiny weights in the
real repos' layouts, as test_hub.py does; a hash is the SHA-256 of the decoded RGB frames and of the
decoded audio (PCM), so the MP4 container's metadata does not count.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

BASE = ["--prompt", "a boat drifts at sunset", "--seed", "3", "--memory-budget", "200"]
FAST = ["--preset", "fast", "--width", "192", "--height", "128"]
# Every alias as test_hub.py runs it, then the features on the default model.
RUNS = {
    "ltx": ["--model", "ltx", "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx-0.9.0": ["--model", "ltx-0.9.0", "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx-distilled": ["--model", "ltx-distilled", *FAST, "--num-frames", "9"],
    "ltx-13b-distilled": ["--model", "ltx-13b-distilled", *FAST, "--num-frames", "9"],
    "cogvideox": ["--model", "cogvideox", "--num-frames", "9", "--steps", "2"],
    "cogvideox1.5": ["--model", "cogvideox1.5", "--width", "96", "--height", "64", "--num-frames", "17",
                     "--steps", "2"],
    "ltx2": ["--model", "ltx2", *FAST, "--num-frames", "17"],
    "ltx2-dev": ["--model", "ltx2-dev", "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx2.3": ["--model", "ltx2.3", *FAST, "--num-frames", "17"],
    "ltx2.3-dev": ["--model", "ltx2.3-dev", "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2"],
    "ltx-quality-guided": ["--model", "ltx", "--width", "96", "--height", "64", "--num-frames", "9", "--steps", "2",
                           "--guidance-scale", "3", "--negative-prompt", "blurry"],
    "keyframes": ["--model", "ltx-distilled", *FAST, "--num-frames", "17", "--end-image", "{end}",
                  "--keyframe", "{mid}@#8"],
    "segments": ["--model", "ltx-distilled", *FAST, "--num-frames", "33", "--segment-prompt", "waves",
                 "--segment-prompt", "sky"],
    "draft": ["--model", "ltx-distilled", *FAST, "--num-frames", "9", "--draft"],
    "extend": ["--model", "ltx-distilled", "--preset", "fast", "--extend", "{video}", "--num-frames", "8"],
    "attention-chunked": ["--model", "ltx-distilled", *FAST, "--num-frames", "9", "--attention", "64"],
    "cog-chunked": ["--model", "cogvideox", "--num-frames", "9", "--steps", "2", "--attention", "64"],
    "ltx2-chunked": ["--model", "ltx2", *FAST, "--num-frames", "17", "--attention", "64"],
}


def decoded_sha256(path: Path) -> dict:
    import imageio_ffmpeg

    out = {}
    for kind, args in (("video", ["-f", "rawvideo", "-pix_fmt", "rgb24"]), ("audio", ["-vn", "-f", "s16le"])):
        proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), *args, "-"],
                              capture_output=True)
        if proc.stdout:
            out[kind] = hashlib.sha256(proc.stdout).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", type=Path, help="a JSON file this script printed before")
    ap.add_argument("runs", nargs="*", help="names of RUNS (default: all)")
    args = ap.parse_args()

    import generate_video as gv
    from conftest import make_image
    from fake_repos import build_repos
    from hub_server import FakeHub

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            build_repos(tmp / "hub")
        server = FakeHub(tmp / "hub").start()
        os.environ.update(HF_ENDPOINT=server.url, HF_HUB_CACHE=str(tmp / "cache"), HF_HUB_OFFLINE="0")
        import huggingface_hub.constants as constants

        constants.HF_HUB_OFFLINE = False
        constants.ENDPOINT = server.url
        constants.HUGGINGFACE_CO_URL_TEMPLATE = server.url + "/{repo_id}/resolve/{revision}/{filename}"
        image = make_image(tmp / "in.png", 160, 96)
        fills = {"end": make_image(tmp / "end.png", 160, 96), "mid": make_image(tmp / "mid.png", 96, 160),
                 "video": None}
        try:
            for name in args.runs or RUNS:
                out = tmp / "out" / f"{name}.mp4"
                out.parent.mkdir(exist_ok=True)
                if name == "extend":  # continue the default model's own tiny video
                    fills["video"] = tmp / "out" / "ltx-distilled.mp4"
                    if not fills["video"].exists():
                        with contextlib.redirect_stdout(sys.stderr):
                            gv.main(["--image", str(image), *BASE, *RUNS["ltx-distilled"], "-o", str(fills["video"])])
                argv = ["--image", str(image), *BASE, *(a.format(**fills) for a in RUNS[name]), "-o", str(out), "-q"]
                with contextlib.redirect_stdout(sys.stderr):  # "wrote ..." lines: not the JSON
                    rc = gv.main(argv)
                results[name] = decoded_sha256(out) if rc == 0 else {"exit": rc}
                print(f"{name}: {results[name]}", file=sys.stderr)
        finally:
            server.stop()
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = sorted(k for k in results if before.get(k) != results[k])
        print(f"{len(results) - len(differ)} of {len(results)} runs bit-identical"
              + (f"; differ: {', '.join(differ)}" if differ else ""))
        return 1 if differ else 0
    print(json.dumps(results, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
