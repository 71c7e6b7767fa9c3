"""A local stand-in for the Hugging Face Hub: the HTTP protocol `huggingface_hub` speaks, on 127.0.0.1.

Serves repos laid out as folders (`root/<org>/<name>/<path in repo>`) through the endpoints that
`snapshot_download` and `hf_hub_download` use:

    GET  /api/models/{repo}/revision/{rev}          repo info: sha, siblings
    GET  /api/models/{repo}/tree/{rev}[/{path}]     file listing (recursive), with LFS sha256 and sizes
    HEAD /{repo}/resolve/{rev}/{path}               metadata: X-Repo-Commit, ETag / X-Linked-Etag, size
    GET  /{repo}/resolve/{rev}/{path}               the bytes, with Range (so interrupted downloads resume)

and the Hub's error headers (404 with X-Error-Code RepoNotFound / EntryNotFound / RevisionNotFound).
Every request is logged, so tests can assert exactly which files a run fetched. `cut_after` makes the
server drop the connection and go away after sending that many bytes of the first weights file
larger than that: a network that fails mid-download.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".pt", ".ckpt", ".gguf")  # stored with Git LFS on the Hub


@dataclass
class Request:
    method: str
    repo: str
    path: str  # file path inside the repo, or the API route for API calls
    range: str | None = None


class FakeHub:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.log: list[Request] = []
        self.cut_after: int | None = None  # bytes of a weights file's body to send before dying
        self.served: list[str] = []  # names of the files whose whole body was sent
        self.dying = False  # cut: every later request is dropped unanswered, as by a server that is gone
        self.bytes_per_s: int | None = None  # a slow line: weights files sent at this pace
        self.gated: set[str] = set()  # repos whose files need a token (a licence to accept), as Gemma's
        self._server: ThreadingHTTPServer | None = None
        self._commits: dict[str, str] = {}

    # -- repo contents -------------------------------------------------------------------------

    def repos(self) -> list[str]:
        return sorted(f"{o.name}/{n.name}" for o in self.root.iterdir() if o.is_dir() for n in o.iterdir() if n.is_dir())

    def files(self, repo: str) -> list[str]:
        base = self.root / repo
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def commit(self, repo: str) -> str:
        if repo not in self._commits:
            digest = hashlib.sha1()
            for name in self.files(repo):
                digest.update(name.encode() + b"\0" + _sha256(self.root / repo / name).encode())
            self._commits[repo] = digest.hexdigest()
        return self._commits[repo]

    def entry(self, repo: str, name: str) -> dict:
        path = self.root / repo / name
        size = path.stat().st_size
        item = {"type": "file", "oid": _git_sha1(path), "size": size, "path": name}
        if name.endswith(LFS_SUFFIXES):
            item["lfs"] = {"oid": _sha256(path), "size": size, "pointerSize": 134}
        return item

    def downloaded(self) -> set[tuple[str, str]]:
        """(repo, path) of every file body served (GET on /resolve/)."""
        return {(r.repo, r.path) for r in self.log if r.method == "GET" and not r.path.startswith("api:")}

    # -- server ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None  # once, even when two cut-off downloads both stop it
        if server is not None:
            server.shutdown()
            server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        parts = [unquote(p) for p in urlparse(h.path).path.strip("/").split("/")]
        try:
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo, route = "/".join(parts[2:4]), parts[4]
                self.log.append(Request(h.command, repo, f"api:{route}"))
                if route == "revision":
                    return self._repo_info(h, repo)
                if route == "tree":
                    return self._tree(h, repo, "/".join(parts[6:]))
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                self.log.append(Request(h.command, repo, name, h.headers.get("Range")))
                return self._resolve(h, repo, name, head)
            self._error(h, 404, "RepoNotFound", "unknown route")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _known(self, h, repo: str) -> bool:
        if not (self.root / repo).is_dir():
            self._error(h, 404, "RepoNotFound", f"Repository {repo} not found")
            return False
        return True

    def _repo_info(self, h, repo: str) -> None:
        if self._known(h, repo):
            self._json(h, {"id": repo, "modelId": repo, "sha": self.commit(repo), "private": False,
                           "gated": False, "disabled": False, "tags": [], "downloads": 0, "likes": 0,
                           "lastModified": "2025-07-15T00:00:00.000Z",
                           "siblings": [{"rfilename": f} for f in self.files(repo)]}, repo)

    def _tree(self, h, repo: str, sub: str) -> None:
        if not self._known(h, repo):
            return
        names = [f for f in self.files(repo) if not sub or f.startswith(sub.rstrip("/") + "/")]
        folders = sorted({"/".join(f.split("/")[:i]) for f in names for i in range(1, f.count("/") + 1)})
        items = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in folders]
        self._json(h, items + [self.entry(repo, f) for f in names], repo)

    def _resolve(self, h, repo: str, name: str, head: bool) -> None:
        if self.dying:  # after the cut: nothing answers
            h.close_connection = True
            return
        if not self._known(h, repo):
            return
        path = self.root / repo / name
        if repo in self.gated and not h.headers.get("Authorization"):
            return self._error(h, 401, "GatedRepo", f"Access to model {repo} is restricted. You must have access "
                               "to it and be authenticated to access it. Please log in.", repo)
        if not path.is_file():
            return self._error(h, 404, "EntryNotFound", f"{name} not found in {repo}", repo)
        entry = self.entry(repo, name)
        data = path.read_bytes()
        start, status = 0, 200
        wanted = h.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and not head:
            start = int(wanted[6:].split("-")[0] or 0)
            status = 206
        body = data[start:]
        h.send_response(status)
        h.send_header("X-Repo-Commit", self.commit(repo))
        h.send_header("ETag", f'"{entry["oid"]}"')
        if "lfs" in entry:
            h.send_header("X-Linked-Etag", f'"{entry["lfs"]["oid"]}"')
            h.send_header("X-Linked-Size", str(entry["size"]))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if head:
            return
        if self.cut_after is not None and name.endswith(".safetensors") and len(body) > self.cut_after:
            import time

            # Deterministic: the cut waits (5 s at most) until a file downloaded beside it has been
            # served whole, so a run always has finished files to keep and a part-file to drop.
            deadline = time.monotonic() + 5
            while not any(not n.endswith(".safetensors") for n in self.served) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.dying = True
            h.wfile.write(body[:self.cut_after])
            h.wfile.flush()
            h.close_connection = True
            threading.Thread(target=self.stop, daemon=True).start()  # the server goes away
            return
        if self.bytes_per_s and name.endswith(".safetensors"):
            import time

            for i in range(0, len(body), 16384):
                h.wfile.write(body[i:i + 16384])
                h.wfile.flush()
                time.sleep(16384 / self.bytes_per_s)
            return
        h.wfile.write(body)
        self.served.append(name)

    def _json(self, h, obj, repo: str) -> None:
        body = json.dumps(obj).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("X-Repo-Commit", self.commit(repo))
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _error(self, h, status: int, code: str, message: str, repo: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        if repo:
            h.send_header("X-Repo-Commit", self.commit(repo))
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":  # as HTTP says: a HEAD answer has no body (one would corrupt the next answer)
            h.wfile.write(body)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
