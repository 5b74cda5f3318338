"""A stand-in Hugging Face Hub on 127.0.0.1: the endpoints and headers huggingface_hub's downloads rely on.

Served: GET /api/models/{repo}[/revision/{rev}] (commit sha and file list, what model_info reads) and
HEAD/GET /{repo}/resolve/{rev}/{file} with X-Repo-Commit, ETag, X-Linked-Etag/X-Linked-Size for LFS files
(hf_hub_download's metadata call and download). Errors carry the Hub's X-Error-Code header, which
huggingface_hub turns into RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, GatedRepoError.
"""

from __future__ import annotations

import hashlib
import json
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin")  # stored in LFS on the Hub: their ETag is the content's sha256
HANG_S = 30.0  # how long a hanging server holds a request before dropping it
POLL_S = 0.02  # how often the server checks for stop(): teardown waits at most this long


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> file name -> content
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha
    private: bool = False
    gated: bool = False


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # unquoted
    authorized: bool  # sent our token


class _QuietServer(ThreadingHTTPServer):
    """Keeps handler errors in a list instead of printing them from a daemon thread (which can outlive pytest)."""

    errors: list[str]

    def handle_error(self, request: object, client_address: object) -> None:
        self.errors.append(traceback.format_exc())


def git_blob_sha(content: bytes) -> str:
    """The ETag the Hub gives a non-LFS file: its git blob id."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FakeHub:
    """Repos pushed from the test, served until stop(); `mode` makes it misbehave ("up", "hang", "503")."""

    def __init__(self, token: str = "hf_stand_in_token") -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.mode = "up"
        self._release = threading.Event()
        self.errors: list[str] = []  # tracebacks of handlers that failed (a client that hung up, mostly)
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.errors = self.errors
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_S,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering: from now on, connections are refused."""
        self._release.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    def push(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        revision: str = "main",
        private: bool = False,
        gated: bool = False,
    ) -> str:
        """Commit `files` (the whole tree) on a branch or tag; returns the new commit's sha."""
        repo = self.repos.setdefault(repo_id, Repo())
        repo.private, repo.gated = repo.private or private, repo.gated or gated
        digest = hashlib.sha1(f"{repo_id}@{revision}#{len(repo.commits)}".encode())
        for name in sorted(files):
            digest.update(name.encode() + files[name])
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[revision] = sha
        return sha

    def downloads(self, name: str | None = None) -> list[str]:
        """Paths of the file bodies served (GET on resolve), optionally only those of one file name."""
        return [
            r.path
            for r in self.requests
            if r.method == "GET" and "/resolve/" in r.path and (name is None or r.path.endswith("/" + name))
        ]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures, not traffic
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            raw_path = urlsplit(self.path).path
            authorized = self.headers.get("Authorization") == f"Bearer {hub.token}"
            hub.requests.append(Request(self.command, unquote(raw_path), authorized))
            if hub.mode == "hang":
                hub._release.wait(HANG_S)
                self.close_connection = True
                return
            if hub.mode == "503":
                return self._error(503, None, "Service Unavailable", body)
            # Revisions come quoted whole ("refs%2Fpr%2F1"), so split before unquoting.
            parts = raw_path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) in (4, 6):
                repo_id = unquote("/".join(parts[2:4]))
                rev = unquote(parts[5]) if len(parts) == 6 and parts[4] == "revision" else "main"
                return self._info(repo_id, rev, body)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id, rev, name = (unquote("/".join(parts[:2])), unquote(parts[3]), unquote("/".join(parts[4:])))
                return self._file(repo_id, rev, name, body)
            self._error(404, None, "Not Found", body)

        def _commit(self, repo_id: str, rev: str, body: bool) -> str | None:
            """The sha a revision names, or None after answering as the Hub does (401, 404)."""
            repo = hub.repos.get(repo_id)
            authorized = self.headers.get("Authorization") == f"Bearer {hub.token}"
            token_sent = self.headers.get("Authorization") is not None
            if token_sent and not authorized:
                self._error(401, None, "Invalid credentials in Authorization header", body)
                return None
            if repo is None or (repo.private and not authorized):
                # Like the Hub: missing and private look the same; 401 to strangers, 404 to the logged in.
                self._error(404 if authorized else 401, "RepoNotFound", "Repository not found", body)
                return None
            if repo.gated and not authorized:
                self._error(401, "GatedRepo", "Access to this model is restricted", body)
                return None
            sha = repo.refs.get(rev, rev if rev in repo.commits else None)
            if sha is None:
                self._error(404, "RevisionNotFound", "Invalid rev id", body)
            return sha

        def _info(self, repo_id: str, rev: str, body: bool) -> None:
            sha = self._commit(repo_id, rev, body)
            if sha is None:
                return
            files = hub.repos[repo_id].commits[sha]
            payload = {
                "_id": sha[:24],
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": False,
                "gated": False,
                "disabled": False,
                "tags": [],
                "library_name": "transformers",
                "siblings": [{"rfilename": name} for name in sorted(files)],
            }
            data = json.dumps(payload).encode()
            self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(data))}, data, body)

        def _file(self, repo_id: str, rev: str, name: str, body: bool) -> None:
            sha = self._commit(repo_id, rev, body)
            if sha is None:
                return
            content = hub.repos[repo_id].commits[sha].get(name)
            if content is None:
                return self._error(404, "EntryNotFound", "Entry not found", body, {"X-Repo-Commit": sha})
            headers = {
                "X-Repo-Commit": sha,
                "Content-Length": str(len(content)),
                "Content-Type": "application/octet-stream",
            }
            if name.endswith(LFS_SUFFIXES):
                etag = hashlib.sha256(content).hexdigest()
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(content))})
            else:
                etag = git_blob_sha(content)
            headers["ETag"] = f'"{etag}"'
            self._send(200, headers, content, body)

        def _error(
            self, status: int, code: str | None, message: str, body: bool, extra: dict[str, str] | None = None
        ) -> None:
            data = json.dumps({"error": message}).encode()
            headers = {
                "Content-Type": "application/json",
                "Content-Length": str(len(data)),
                "X-Error-Message": message,
                **(extra or {}),
            }
            if code:
                headers["X-Error-Code"] = code
            self._send(status, headers, data, body)

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


@contextmanager
def serving(monkeypatch: Any) -> Iterator[FakeHub]:
    """A stand-in Hub that huggingface_hub (and transformers through it) talks to, online until the block ends."""
    from huggingface_hub import constants

    server = FakeHub()
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    try:
        yield server
    finally:
        server.stop()
