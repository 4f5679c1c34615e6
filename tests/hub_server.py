"""A stand-in for the Hugging Face Hub that serves repositories from a local folder, for tests that download.

huggingface_hub, transformers and datasets talk to `HF_ENDPOINT`; this answers the part of the Hub's HTTP API they
use to download a public or private repository: repository info, file listings (`tree`, `paths-info`) and files
(`resolve`), with the Hub's headers (X-Repo-Commit, ETag, the X-Error-Code of a missing repository or file), its
401 for a private repository asked without a token and its 403 for a gated one.

    <root>/models/<owner>/<name>/...      a model repository's files, as `save_pretrained` writes them
    <root>/datasets/<owner>/<name>/...    a dataset repository's files (a README with a configs block, parquet)

Why not a packaged server: hf-local-hub 3.0.0's wheel holds only a client of a Go server it does not ship, and
olah 0.5.4, which serves local git repositories, answers a revision-less `/api/datasets/<id>` and a missing file
(README.md, which `load_dataset` asks for first) with 401 "Repository not found", so `load_dataset` fails on it.

    server = HubServer(root); server.start(); ... os.environ["HF_ENDPOINT"] = server.url ...; server.stop()
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import parse_qs, unquote, urlparse

TOKEN = "hf_standin"  # the token that opens a private repository
KINDS = {"models": "models", "datasets": "datasets", "model": "models", "dataset": "datasets"}


class HubServer:
    """The stand-in on 127.0.0.1 (a free port), in a thread of this process; `requests` counts what it answered."""

    def __init__(self, root: Path, private: Iterable[str] = (), gated: Iterable[str] = (), rate: Optional[int] = None):
        self.root = Path(root)
        self.private = set(private)  # "<kind>/<owner>/<name>" needing TOKEN
        self.gated = set(gated)      # "<kind>/<owner>/<name>" whose terms the token's owner has not accepted
        self.rate = rate  # bytes per second of a file's contents (None: as fast as it goes), to interrupt a download
        self.requests: list[str] = []  # "<method> <path>", and " <Range header>" where one was sent
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "HubServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def commit(self, repo: Path) -> str:
        """A repository's one revision: a hash of its files' names and contents (40 hex digits, as a git sha)."""
        digest = hashlib.sha1()
        for path in _files(repo):
            digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()


def _files(repo: Path) -> list[Path]:
    return sorted(p for p in repo.rglob("*") if p.is_file())


def _oid(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # the tests' output stays theirs
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.posted = self.rfile.read(length) if length else b""
        self._answer(body=True)

    # ------------------------------------------------------------------ routing

    def _answer(self, body: bool) -> None:
        ranged = f" {self.headers['Range']}" if self.headers.get("Range") else ""
        self.hub.requests.append(f"{self.command} {self.path}{ranged}")
        url = urlparse(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        api = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree|paths-info)/([^/]+)(?:/(.*))?)?",
                           path)
        if api:
            kind, repo_id, verb, revision, rest = api.groups()
            return self._api(kind, repo_id, verb, revision, rest or "", query, body)
        resolve = re.fullmatch(r"(?:/(datasets|models))?/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if resolve:
            kind, repo_id, revision, file = resolve.groups()
            return self._file(kind or "models", repo_id, file, body)
        self._error(404, "EntryNotFound", f"{path} is not served here", body)

    def _repo(self, kind: str, repo_id: str, body: bool) -> Optional[Path]:
        """The repository's folder, or None after answering as the Hub does: 401 without a valid token for a private
        or missing one (the Hub does not tell them apart)."""
        repo = self.hub.root / KINDS[kind] / repo_id
        private = f"{KINDS[kind]}/{repo_id}" in self.hub.private
        authorised = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        if not repo.is_dir() or (private and not authorised):
            self._error(401, "RepoNotFound", "Repository not found", body)
            return None
        if f"{KINDS[kind]}/{repo_id}" in self.hub.gated:
            self._error(403, "GatedRepo", "Access to this model is restricted: accept its terms", body)
            return None
        return repo

    def _api(self, kind: str, repo_id: str, verb: Optional[str], revision: Optional[str], rest: str,
             query: dict, body: bool) -> None:
        repo = self._repo(kind, repo_id, body)
        if repo is None:
            return
        sha = self.hub.commit(repo)
        if verb in (None, "revision"):
            info = {"id": repo_id, "_id": repo_id, "sha": sha, "private": f"{kind}/{repo_id}" in self.hub.private,
                    "gated": False, "disabled": False, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                    "siblings": [{"rfilename": str(p.relative_to(repo)), "size": p.stat().st_size, "blobId": _oid(p)}
                                 for p in _files(repo)],
                    "cardData": {}}
            return self._json(info, body)
        if verb == "tree":
            folder = repo / rest
            if not folder.is_dir():
                return self._error(404, "EntryNotFound", f"{rest} is not a folder of {repo_id}", body)
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            entries = sorted(folder.rglob("*") if recursive else folder.iterdir())
            return self._json([self._entry(repo, p) for p in entries], body)
        # paths-info: the entries of the paths asked for (a form or JSON body: paths=...)
        asked = self._asked_paths()
        return self._json([self._entry(repo, repo / p) for p in asked if (repo / p).exists()], body)

    def _asked_paths(self) -> list[str]:
        posted = getattr(self, "posted", b"").decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(posted or "{}").get("paths", [])
            return [paths] if isinstance(paths, str) else list(paths)
        return parse_qs(posted).get("paths", [])

    @staticmethod
    def _entry(repo: Path, path: Path) -> dict:
        relative = str(path.relative_to(repo))
        if path.is_dir():
            return {"type": "directory", "path": relative, "oid": hashlib.sha1(relative.encode()).hexdigest()}
        return {"type": "file", "path": relative, "size": path.stat().st_size, "oid": _oid(path)}

    def _file(self, kind: str, repo_id: str, file: str, body: bool) -> None:
        repo = self._repo(kind, repo_id, body)
        if repo is None:
            return
        path = repo / file
        if not path.is_file():
            return self._error(404, "EntryNotFound", f"{file} is not in {repo_id}", body)
        data = path.read_bytes()
        start, end = 0, len(data)
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged:  # a resumed download asks for the rest
            start = int(ranged.group(1))
            end = int(ranged.group(2)) + 1 if ranged.group(2) else len(data)
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", f'"{_oid(path)}"')
        self.send_header("X-Repo-Commit", self.hub.commit(repo))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            self._send(data[start:end])

    def _send(self, data: bytes) -> None:
        if not self.hub.rate:
            self.wfile.write(data)
            return
        step = max(self.hub.rate // 20, 1)
        for offset in range(0, len(data), step):
            self.wfile.write(data[offset:offset + step])
            self.wfile.flush()
            time.sleep(0.05)

    def _json(self, content, body: bool) -> None:
        data = json.dumps(content).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, body: bool) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.end_headers()
        if body:
            self.wfile.write(data)
