"""A fake Hugging Face Hub: a local HTTP server speaking the Hub API that huggingface_hub's real client uses.

`FakeHub` serves, from memory, the endpoints that huggingface_hub 2.4 calls to create a repo, commit files and
download them again:

- ``GET  /api/whoami-v2``: the user ``FakeHub.username`` for a valid token.
- ``POST /api/repos/create``: ``create_repo`` (409 with the repo url if it exists, for ``exist_ok=True``;
  a Space needs its ``sdk``).
- ``POST /api/validate-yaml``: README.md metadata check made by ``create_commit``; always valid.
- ``POST /api/spaces/NS/NAME/variables``: ``add_space_variable``, kept in ``Repo.variables``.
- ``GET  /api/{models,datasets,spaces}/NS/NAME[/revision/REV]``: ``repo_info`` / ``model_info`` (``sha``,
  ``siblings``; sizes and blob ids with ``?blobs=true``).
- ``GET  /api/{models,datasets,spaces}/NS/NAME/tree/REV[/PATH]``: ``list_repo_tree`` / ``list_repo_files``,
  and the file listing of ``snapshot_download``.
- ``POST /api/{models,datasets,spaces}/NS/NAME/preupload/REV``: as the Hub, ``"uploadMode": "lfs"`` for a
  file over ``FakeHub.lfs_threshold`` bytes (10 MB) and ``"regular"`` below it, whose contents travel
  base64-encoded inside the commit.
- ``POST /[datasets/|spaces/]NS/NAME.git/info/lfs/objects/batch``: the git-LFS batch API (basic transfer):
  an upload and a verify action per object the server does not hold yet, none for one it holds.
- ``PUT /lfs-objects/OID`` (the upload action; the body's sha256 must be OID) and ``POST /lfs-verify/OID``.
- ``POST /api/{models,datasets,spaces}/NS/NAME/commit/REV``: the NDJSON commit (``file``, ``lfsFile`` of an
  uploaded object, ``deletedFile``, ``deletedFolder``; ``parentCommit`` is checked).
- ``HEAD/GET /[datasets/|spaces/]NS/NAME/resolve/REV/PATH``: ``hf_hub_download`` / ``file_exists``, with the
  headers the client requires (``X-Repo-Commit``, ``ETag`` = git blob id, ``Content-Length``; for an LFS file
  ``X-Linked-Etag`` = its sha256 and ``X-Linked-Size``), no Xet headers.

Only the ``main`` branch exists; a revision is ``main`` or (a prefix of) a commit sha. Like the real Hub, a
new repo starts with an "initial commit" holding ``.gitattributes``. Errors follow the real Hub so that the
client raises the same exceptions: an unknown token gets 401 "Invalid credentials in Authorization header"
(`HfHubHTTPError`); an unknown repo, a private repo read without a token, or a commit without a token gets
401 (no token) or 404 (token) with ``X-Error-Code: RepoNotFound`` (`RepositoryNotFoundError`); an unknown file
gets 404 ``EntryNotFound`` (`RemoteEntryNotFoundError`, an `EntryNotFoundError`); an unknown revision 404
``RevisionNotFound``. A valid token may write to any namespace. Pull requests, multipart LFS and Xet are not
supported. ``FakeHub.lfs_uploads`` lists the sha256 of every object uploaded the LFS way.

Two fixtures start a `FakeHub`. Most tests take `hub` and pass objects, the way huggingface_hub's own
tests reach their staging Hub with an ``HfApi(endpoint=..., token=...)``:

- `hub`: the server. ``hub.api()`` is an ``HfApi(endpoint=hub.url, token=hub.token)`` (``hub.api(False)`` an
  anonymous one), passed to tl_hub's Hub-facing functions (``push_to_hub(..., api=)``,
  ``from_pretrained(..., api=)``, ``Predictor.from_pretrained(..., api=)``, ``deploy_space(..., api=)``) and
  used for huggingface_hub's own calls (``api.hf_hub_download``, ``api.snapshot_download``). A subprocess is
  given ``hub.environ()`` (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=0), which huggingface_hub reads at import
  there. One constant is patched, ``constants.HF_HUB_OFFLINE``, set to False for the test: the suite runs
  offline (conftest.py), which makes every request raise `OfflineModeIsEnabled`, the local server's too.
  The suite's default endpoint is a closed port (conftest.py), so a call that was not given the object fails
  instead of reaching the server anyway.
- `fake_hub`: the same server, with huggingface_hub's globals pointed at it, for code that builds its own
  client from them and takes no object: a script run in-process (``scripts/push.py``,
  ``scripts/deploy_space.py``, ``train.py --push-to-hub``), timm's ``create_model("hf-hub:...")``, the
  Space's module-level ``hf_hub_download``. huggingface_hub reads its environment once, at import, into
  `huggingface_hub.constants`, so setting environment variables is not enough:

  - ``constants.ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE`` (the ``/resolve`` url of `hf_hub_url`) and
    ``HF_URL_HOSTS`` (hosts whose urls `RepoUrl` parses) embed the endpoint, and so does the module-level
    ``huggingface_hub.hf_api.api`` whose bound methods are the top-level ``huggingface_hub.upload_folder``
    etc. (`HfApi()` instances made inside the fixture read ``constants.ENDPOINT`` and need nothing more).
  - ``constants.HF_HUB_OFFLINE`` is set to False, as by `hub`.
  - ``constants.HF_HUB_DISABLE_XET`` is set to True (conftest.py sets HF_HUB_DISABLE_XET=1 for the suite
    already): with hf_xet installed, ``upload_folder`` otherwise takes a streamed multi-commit pipeline that
    retries failed commits (429/5xx) with back-off, so a push failure injected with `FakeHub.fail_next` would
    be retried, slowly, instead of surfacing. With Xet disabled, ``upload_folder`` makes one
    ``create_commit``, like ``upload_file``; nothing else changes, as the server never offers Xet.
  - ``constants.HF_HOME`` and the paths derived from it (hub, assets and xet caches, token files, the agent
    registry cache) point into the test's tmp dir, so each test starts with an empty cache.
  - ``constants.HF_HUB_DISABLE_TELEMETRY`` is set to True.
  - Environment: HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE=0, HF_HUB_DISABLE_XET=1 and
    HF_TOKEN=`FakeHub.token` (read on every call, so `get_token()` returns it); HF_OIDC_RESOURCE is removed,
    as an OIDC token exchange would take precedence over HF_TOKEN.

  Not patched: copies of constants taken with ``from ..constants import X`` at import
  (``utils._cache_manager.HF_HUB_CACHE``, the default of `scan_cache_dir`; ``utils._git_credential.ENDPOINT``;
  the CLI) and ``utils._http._HUB_ORIGINS`` (hosts whose redirects keep the auth header; this server never
  redirects).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

if TYPE_CHECKING:
    from huggingface_hub import HfApi

TOKEN = "hf_test_token"
USERNAME = "tester"
GITATTRIBUTES = b"""*.bin filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
"""

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_RE = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
    r"(?:/(?P<action>revision|tree|preupload|commit)/(?P<rev>[^/]+)(?P<path>/.*)?|/(?P<variables>variables))?$"
)
_LFS_BATCH_RE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)\.git/info/lfs/objects/batch$"
)
_LFS_OBJECT_RE = re.compile(r"^/lfs-(?P<action>objects|verify)/(?P<oid>[0-9a-f]{64})$")
_RESOLVE_RE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
)
_BAD_TOKEN = "Invalid credentials in Authorization header"
_NO_TOKEN = "Invalid username or password."


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob holding `data` (what the Hub returns as ETag and oid of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Commit:
    """One commit: the full file map after it, its 40-hex sha and its message (summary) and description."""

    sha: str
    message: str
    description: str
    files: dict[str, bytes]
    date: datetime
    lfs: frozenset[str] = frozenset()  # the paths stored the LFS way (a pointer in git, the object beside)


@dataclass
class Repo:
    """A repo of the fake Hub; ``commits[-1]`` is the head of ``main``."""

    repo_id: str
    repo_type: str
    private: bool
    sdk: str | None = None  # Spaces only: gradio, docker, static
    commits: list[Commit] = field(default_factory=list)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)  # Spaces only

    @property
    def head(self) -> Commit:
        """The last commit on ``main``."""
        return self.commits[-1]

    def resolve(self, revision: str) -> Commit | None:
        """The commit ``revision`` names: ``main``, or a commit sha (or a prefix of at least 7 hex digits)."""
        if revision == "main":
            return self.head
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            return next((c for c in reversed(self.commits) if c.sha.startswith(revision)), None)
        return None

    def add_commit(
        self, files: dict[str, bytes], message: str, description: str = "", lfs: frozenset[str] = frozenset()
    ) -> Commit:
        """Append a commit holding `files` (the whole tree; `lfs` the paths among them kept the LFS way)."""
        parent = self.commits[-1].sha if self.commits else ""
        tree = "".join(f"{path}\0{git_blob_id(data)}\n" for path, data in sorted(files.items()))
        moment = datetime.now(UTC)
        seed = f"{parent}\n{tree}\n{message}\n{description}\n{moment.isoformat()}\n{len(self.commits)}"
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(sha, message, description, dict(files), moment, frozenset(lfs) & files.keys())
        self.commits.append(commit)
        return commit


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.commit = commit


class FakeHub:
    """A Hub-API-compatible server on 127.0.0.1 (a free port), in a background thread; a context manager.

    State is in memory and inspectable: ``repos["user/name"].commits[-1].message`` / ``.files``, and
    ``requests``, the (method, still-quoted path) of every request received. `token` is the accepted token.
    """

    def __init__(self) -> None:
        self.token = TOKEN
        self.username = USERNAME
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lfs_threshold = 10_000_000  # bytes: larger files go the LFS way, as on the Hub
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content, uploaded and verified
        self.lfs_uploads: list[str] = []
        self.url = ""
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeHub:
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def api(self, token: str | bool | None = None) -> HfApi:
        """A huggingface_hub client of this server, with its token (`token=False`: anonymous; or another)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.url, token=self.token if token is None else token)

    def environ(self) -> dict[str, str]:
        """The environment a subprocess's huggingface_hub needs to use this server, with its token."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_TOKEN": self.token,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
        }

    def fail_next(self, status: int, times: int = 1) -> None:
        """Fail the next `times` write requests (create repo, commit) with HTTP `status`, changing nothing."""
        with self._lock:
            self._failures.extend([status] * times)

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: FakeHub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so no idle keep-alive connection outlives the server.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no per-request log on stderr

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    # -- plumbing -----------------------------------------------------------------------------------------

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        with self.hub._lock:
            self.hub.requests.append((method, split.path))
        body = self._body()
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            self._route(method, split.path, query, body)
        except _HubError as e:
            self._error(method, e)
        except Exception as e:  # a bug of the fake: answer 500 rather than drop the connection
            self._error(method, _HubError(HTTPStatus.INTERNAL_SERVER_ERROR, f"FakeHub error: {e!r}"))

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # a streamed upload
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _error(self, method: str, e: _HubError) -> None:
        headers = {"X-Error-Message": e.message.encode("ascii", "replace").decode()}
        if e.code is not None:
            headers["X-Error-Code"] = e.code
        if e.commit is not None:
            headers["X-Repo-Commit"] = e.commit
        self._send(e.status, json.dumps({"error": e.message}).encode(), headers, head=method == "HEAD")

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers, "Content-Length": str(len(body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, payload: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload).encode(), {})

    def _user(self) -> str | None:
        # The user of the request's token, None without a token; a 401 for a token the Hub does not know.
        auth = self.headers.get("Authorization")
        if auth is None:
            return None
        if auth != f"Bearer {self.hub.token}":
            raise _HubError(HTTPStatus.UNAUTHORIZED, _BAD_TOKEN)
        return self.hub.username

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        if method == "GET" and path == "/api/whoami-v2":
            return self._whoami()
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            self._user()
            return self._json({"errors": [], "warnings": []})
        if match := _API_RE.match(path):
            repo_type = _REPO_TYPES[match["type"]]
            repo_id = f"{unquote(match['ns'])}/{unquote(match['name'])}"
            revision = unquote(match["rev"] or "main")
            action = match["action"] or match["variables"] or "revision"
            if method == "POST" and action == "variables" and repo_type == "space":
                return self._add_variable(repo_id, json.loads(body))
            if method == "GET" and action == "revision":
                return self._repo_info(repo_type, repo_id, revision, blobs=query.get("blobs") == "true")
            if method == "GET" and action == "tree":
                tree_path = unquote(match["path"] or "").strip("/")
                return self._tree(repo_type, repo_id, revision, tree_path, query.get("recursive") == "true")
            if method == "POST" and action == "preupload":
                return self._preupload(repo_type, repo_id, revision, json.loads(body))
            if method == "POST" and action == "commit":
                return self._commit(repo_type, repo_id, revision, query, body)
        if method == "POST" and (match := _LFS_BATCH_RE.match(path)):
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(match["type"], "model")
            return self._lfs_batch(repo_type, f"{unquote(match['ns'])}/{unquote(match['name'])}", body)
        if (match := _LFS_OBJECT_RE.match(path)) and (method, match["action"]) in (
            ("PUT", "objects"),
            ("POST", "verify"),
        ):
            return self._lfs_object(match["action"], match["oid"], body)
        if method in ("GET", "HEAD") and (match := _RESOLVE_RE.match(path)):
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(match["type"], "model")
            repo_id = f"{unquote(match['ns'])}/{unquote(match['name'])}"
            return self._resolve(method, repo_type, repo_id, unquote(match["rev"]), unquote(match["path"]))
        raise _HubError(HTTPStatus.NOT_FOUND, f"FakeHub has no route for {method} {path}")

    def _readable_repo(self, repo_type: str, repo_id: str) -> Repo:
        user = self._user()
        repo = self.hub.repos.get(repo_id)
        if repo is None or repo.repo_type != repo_type or (repo.private and user is None):
            if user is None:
                raise _HubError(HTTPStatus.UNAUTHORIZED, _NO_TOKEN, "RepoNotFound")
            raise _HubError(HTTPStatus.NOT_FOUND, "Repository not found", "RepoNotFound")
        return repo

    def _writable_repo(self, repo_type: str, repo_id: str) -> Repo:
        if self._user() is None:
            raise _HubError(HTTPStatus.UNAUTHORIZED, _NO_TOKEN, "RepoNotFound")
        return self._readable_repo(repo_type, repo_id)

    @staticmethod
    def _commit_at(repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HubError(HTTPStatus.NOT_FOUND, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _inject_failure(self) -> None:
        if (status := self.hub._take_failure()) is not None:
            raise _HubError(status, f"FakeHub: injected failure ({status})")

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.hub.url}/{_URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -- endpoints ----------------------------------------------------------------------------------------

    def _whoami(self) -> None:
        if self._user() is None:
            raise _HubError(HTTPStatus.UNAUTHORIZED, _NO_TOKEN)
        name = self.hub.username
        self._json(
            {
                "type": "user",
                "id": hashlib.sha1(name.encode()).hexdigest()[:24],
                "name": name,
                "fullname": name.title(),
                "email": f"{name}@example.com",
                "emailVerified": True,
                "isPro": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "fake-hub", "role": "write"}},
            }
        )

    def _create_repo(self, payload: dict[str, Any]) -> None:
        self._inject_failure()
        if self._user() is None:
            raise _HubError(HTTPStatus.UNAUTHORIZED, _NO_TOKEN)
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIXES:
            raise _HubError(HTTPStatus.BAD_REQUEST, f"FakeHub does not support {repo_type} repos")
        if repo_type == "space" and not payload.get("sdk"):
            raise _HubError(HTTPStatus.BAD_REQUEST, "sdk is required for a Space")
        repo_id = f"{payload.get('organization') or self.hub.username}/{payload['name']}"
        private = payload.get("visibility") == "private" or payload.get("private") is True
        with self.hub._lock:
            existing = self.hub.repos.get(repo_id)
            if existing is None:
                repo = self.hub.repos[repo_id] = Repo(repo_id, repo_type, private, sdk=payload.get("sdk"))
                repo.add_commit({".gitattributes": GITATTRIBUTES}, "initial commit")
        if existing is not None:
            body = {"error": "You already created this repo", "url": self._repo_url(existing)}
            return self._json(body, HTTPStatus.CONFLICT)
        self._json({"url": self._repo_url(repo), "name": repo_id, "id": git_blob_id(repo_id.encode())[:24]})

    def _add_variable(self, repo_id: str, payload: dict[str, Any]) -> None:
        repo = self._writable_repo("space", repo_id)
        with self.hub._lock:
            repo.variables[payload["key"]] = {
                "value": payload["value"],
                "description": payload.get("description"),
                "updatedAt": _timestamp(datetime.now(UTC)),
            }
        self._json(repo.variables)

    def _repo_info(self, repo_type: str, repo_id: str, revision: str, *, blobs: bool) -> None:
        repo = self._readable_repo(repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        siblings: list[dict[str, Any]] = [{"rfilename": path} for path in sorted(commit.files)]
        if blobs:
            for sibling in siblings:
                data = commit.files[sibling["rfilename"]]
                sibling.update(size=len(data), blobId=git_blob_id(data))
                if sibling["rfilename"] in commit.lfs:
                    sibling["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        self._json(
            {
                "_id": git_blob_id(repo_id.encode())[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "lastModified": _timestamp(commit.date),
                "createdAt": _timestamp(repo.commits[0].date),
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
        )

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str, recursive: bool) -> None:
        commit = self._commit_at(self._readable_repo(repo_type, repo_id), revision)
        prefix = f"{path}/" if path else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, data in commit.files.items():
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):
                folder = prefix + "/".join(parts[:i])
                entries[folder] = {"type": "directory", "oid": git_blob_id(folder.encode()), "path": folder}
            if recursive or len(parts) == 1:
                entries[name] = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": name}
                if name in commit.lfs:
                    sha = hashlib.sha256(data).hexdigest()
                    entries[name]["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
        if path and not entries:
            raise _HubError(HTTPStatus.NOT_FOUND, f"{path} does not exist on {revision}", "EntryNotFound")
        self._json([entries[key] for key in sorted(entries)])

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict[str, Any]) -> None:
        repo = self._writable_repo(repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        files = [
            {
                "path": item["path"],
                "uploadMode": "lfs" if item["size"] > self.hub.lfs_threshold else "regular",
                "shouldIgnore": False,
                "oid": git_blob_id(commit.files[item["path"]]) if item["path"] in commit.files else None,
            }
            for item in payload["files"]
        ]
        self._json({"files": files, "commitOid": commit.sha})

    def _commit(
        self, repo_type: str, repo_id: str, revision: str, query: dict[str, str], body: bytes
    ) -> None:
        self._inject_failure()
        repo = self._writable_repo(repo_type, repo_id)
        if query.get("create_pr") == "1":
            raise _HubError(HTTPStatus.BAD_REQUEST, "FakeHub does not support pull requests")
        if revision != "main":
            raise _HubError(HTTPStatus.NOT_FOUND, f"Invalid rev id: {revision}", "RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise _HubError(HTTPStatus.BAD_REQUEST, "The commit needs a header with a summary")
        with self.hub._lock:
            head = repo.head
            parent = header.get("parentCommit")
            if parent is not None and not head.sha.startswith(parent):
                message = "A commit has happened since. Please refresh and try again."
                raise _HubError(HTTPStatus.PRECONDITION_FAILED, message)
            files, lfs = dict(head.files), set(head.lfs)
            for line in lines:
                _apply(files, lfs, line["key"], line["value"], self.hub.lfs_objects)
            commit = repo.add_commit(files, header["summary"], header.get("description", ""), frozenset(lfs))
        self._json(
            {
                "success": True,
                "commitOid": commit.sha,
                "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}",
                "hookOutput": "",
            }
        )

    def _lfs_batch(self, repo_type: str, repo_id: str, body: bytes) -> None:
        self._writable_repo(repo_type, repo_id)
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise _HubError(HTTPStatus.BAD_REQUEST, "FakeHub speaks the basic LFS upload transfer only")
        objects = []
        for item in payload["objects"]:
            entry: dict[str, Any] = {"oid": item["oid"], "size": item["size"]}
            if item["oid"] not in self.hub.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-objects/{item['oid']}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/lfs-verify/{item['oid']}"},
                }
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects})

    def _lfs_object(self, action: str, oid: str, body: bytes) -> None:
        if action == "objects":  # the upload: the storage checks the content against its name
            if hashlib.sha256(body).hexdigest() != oid:
                raise _HubError(HTTPStatus.BAD_REQUEST, f"content does not hash to {oid}")
            with self.hub._lock:
                self.hub.lfs_objects[oid] = body
                self.hub.lfs_uploads.append(oid)
            return self._send(HTTPStatus.OK, b"", {})
        if self._user() is None:
            raise _HubError(HTTPStatus.UNAUTHORIZED, _NO_TOKEN)
        if oid not in self.hub.lfs_objects:
            raise _HubError(HTTPStatus.NOT_FOUND, f"LFS object {oid} not found")
        self._json({"success": True})

    def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        commit = self._commit_at(self._readable_repo(repo_type, repo_id), revision)
        data = commit.files.get(path)
        if data is None:
            raise _HubError(HTTPStatus.NOT_FOUND, "Entry not found", "EntryNotFound", commit=commit.sha)
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{git_blob_id(data)}"',
            "X-Repo-Commit": commit.sha,
        }
        if path in commit.lfs:
            headers |= {
                "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                "X-Linked-Size": str(len(data)),
            }
        self._send(HTTPStatus.OK, data, headers, head=method == "HEAD")


def _apply(
    files: dict[str, bytes], lfs: set[str], key: str, value: dict[str, Any], objects: dict[str, bytes]
) -> None:
    path = value.get("path", "")
    if key == "header":
        return
    lfs.discard(path)
    if key == "file":
        content = value["content"]
        files[path] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
    elif key == "lfsFile":
        if value.get("algo") != "sha256" or value.get("oid") not in objects:
            raise _HubError(HTTPStatus.UNPROCESSABLE_ENTITY, f"LFS object of {path} was not uploaded")
        files[path] = objects[value["oid"]]
        lfs.add(path)
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise _HubError(
                HTTPStatus.NOT_FOUND, f"A file with this name doesn't exist: {path}", "EntryNotFound"
            )
    elif key == "deletedFolder":
        for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
            del files[name]
    else:
        raise _HubError(HTTPStatus.BAD_REQUEST, f"FakeHub does not support {key!r} commit operations")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running `FakeHub`, reached through ``hub.api()`` (``hub.environ()`` in a subprocess): module docs."""
    from huggingface_hub import constants

    with FakeHub() as server:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite is offline; this server is not
        yield server


@pytest.fixture
def fake_hub(hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeHub:
    """The `hub` server, with huggingface_hub's globals and HF_TOKEN pointed at it (see module docs)."""
    from huggingface_hub import constants, hf_api

    hf_home = tmp_path / "hf_home"
    for name, value in {
        **hub.environ(),
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    patches = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(hf_home / ".agent_harnesses.json"),
    }
    for name, value in patches.items():
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)
    return hub
