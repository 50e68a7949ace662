"""tracker.weights: where checkpoints are looked for, offline behaviour, downloads, hashes.

Nothing here touches the real network: the hub endpoint is pointed at a closed local port, URL
downloads are served by a local HTTP server, and hub downloads are stubbed.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tracker import weights
from tracker.errors import InputError, WeightsUnavailable
from tracker.registry import Sam1Spec, clip_spec, sam1_spec, sam2_spec
from tracker.weights import (
    NetworkUnavailable,
    check_reachable,
    checkpoint_sha256,
    default_checkpoints_dir,
    download,
    file_sha256,
    is_offline,
    resolve_checkpoint,
)

TINY = sam2_spec("tiny")
CLIP = clip_spec("ViT-B-32")


def closed_port_url() -> str:
    """An http URL on localhost where nothing listens (connection refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hf_cache(monkeypatch, tmp_path) -> Path:
    """An empty, private Hugging Face cache; network switches cleared; hub endpoint unreachable."""
    for var in ("HF_HUB_OFFLINE", "TRACKER_OFFLINE", "TRACKER_CHECKPOINTS"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    endpoint = closed_port_url()
    monkeypatch.setattr(weights, "_hub_endpoint", lambda: endpoint)
    return cache


def put_in_hf_cache(cache: Path, repo_id: str, filename: str, payload: bytes = b"weights") -> Path:
    """Lay a file out the way huggingface_hub does: refs/main → snapshots/<commit>/<file>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / filename
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    return path


class DownloadStub:
    """Stands in for the hub / URL download: records calls, writes a file or raises."""

    def __init__(self, folder: Path, error: Exception | None = None) -> None:
        self.folder = folder
        self.error = error
        self.calls: list[str] = []

    def hf(self, spec, local_dir, progress):
        self.calls.append(spec.name)
        if self.error:
            raise self.error
        target = (local_dir or self.folder) / spec.local_filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"downloaded")
        return target

    def url(self, spec, folder, progress):
        return self.hf(spec, folder, progress)


@pytest.fixture
def stub(monkeypatch, tmp_path) -> DownloadStub:
    fake = DownloadStub(tmp_path / "downloaded")
    monkeypatch.setattr(weights, "_download_hf", fake.hf)
    monkeypatch.setattr(weights, "_download_url", fake.url)
    return fake


# ------------------------------------------------------------------ search order


@pytest.mark.parametrize(
    ("explicit", "in_folder", "in_cache", "expected"),
    [
        (True, True, True, "explicit"),
        (False, True, True, "folder"),
        (False, False, True, "cache"),
        (False, False, False, "download"),
    ],
)
def test_search_order(hf_cache, stub, tmp_path, explicit, in_folder, in_cache, expected) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    places = {"download": stub.folder / TINY.local_filename}
    places["explicit"] = tmp_path / "mine.pt"
    places["explicit"].write_bytes(b"x")
    if in_folder:
        places["folder"] = folder / TINY.local_filename
        places["folder"].write_bytes(b"x")
    if in_cache:
        places["cache"] = put_in_hf_cache(hf_cache, TINY.repo_id, TINY.checkpoint)
    found = resolve_checkpoint(
        TINY, explicit=places["explicit"] if explicit else None, checkpoints_dir=folder
    )
    assert found == places[expected]
    assert stub.calls == (["tiny"] if expected == "download" else [])


def test_explicit_folder_holds_the_file(hf_cache, tmp_path) -> None:
    (tmp_path / TINY.checkpoint).write_bytes(b"x")
    assert resolve_checkpoint(TINY, explicit=tmp_path) == tmp_path / TINY.checkpoint


def test_explicit_path_must_exist(hf_cache, stub, tmp_path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / TINY.checkpoint).write_bytes(b"x")  # present, but an explicit path is not second-guessed
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_checkpoint(TINY, explicit=missing, checkpoints_dir=folder)
    assert caught.value.searched == [str(missing)]
    assert "model.pt" in str(caught.value)
    assert stub.calls == []


def test_env_checkpoints_dir(hf_cache, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TRACKER_CHECKPOINTS", str(tmp_path))
    (tmp_path / TINY.checkpoint).write_bytes(b"x")
    assert default_checkpoints_dir() == tmp_path
    assert resolve_checkpoint(TINY) == tmp_path / TINY.checkpoint


def test_default_checkpoints_dir_is_repo_folder(monkeypatch) -> None:
    monkeypatch.delenv("TRACKER_CHECKPOINTS", raising=False)
    assert default_checkpoints_dir() == Path(weights.__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("ViT-B-32__laion2b_s34b_b79k.safetensors", "ViT-B-32__laion2b_s34b_b79k.safetensors"),
        ("ViT-B-32__laion2b_s34b_b79k.bin", "ViT-B-32__laion2b_s34b_b79k.bin"),
        ("CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_pytorch_model.bin", None),  # huggingface-cli --local-dir
    ],
)
def test_clip_files_in_checkpoints(hf_cache, tmp_path, layout, expected) -> None:
    path = tmp_path / layout
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    assert resolve_checkpoint(CLIP, checkpoints_dir=tmp_path, offline=True) == tmp_path / (expected or layout)


def test_clip_bin_in_hf_cache(hf_cache, tmp_path) -> None:
    cached = put_in_hf_cache(hf_cache, CLIP.hf_repo, "open_clip_pytorch_model.bin")
    assert resolve_checkpoint(CLIP, checkpoints_dir=tmp_path, offline=True) == cached


# ------------------------------------------------------------------ the error


def test_error_names_model_file_places_and_fix(hf_cache, tmp_path) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_checkpoint(TINY, checkpoints_dir=tmp_path, offline=True)
    error = caught.value
    message = str(error)
    assert error.filename == "sam2.1_hiera_tiny.pt"
    assert "tiny" in error.model
    assert error.searched[0] == str(tmp_path / "sam2.1_hiera_tiny.pt")
    assert "Hugging Face cache" in error.searched[1] and str(hf_cache) in error.searched[1]
    assert "facebook/sam2.1-hiera-tiny" in error.searched[1]
    for place in error.searched:
        assert place in message
    assert "python -m tracker download tiny" in error.fix
    assert f"copy sam2.1_hiera_tiny.pt into {tmp_path}" in error.fix
    assert error.fix in message
    assert "offline" in (error.reason or "")


def test_sam1_fix_names_the_url(hf_cache, tmp_path) -> None:
    spec = sam1_spec("vit_b")
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_checkpoint(spec, checkpoints_dir=tmp_path, offline=True)
    assert caught.value.searched == [str(tmp_path / "sam_vit_b_01ec64.pth")]  # no hub for SAM 1
    assert "python -m tracker download vit_b" in caught.value.fix
    assert spec.url in caught.value.fix


# ------------------------------------------------------------------ offline / network


@pytest.mark.parametrize(
    ("offline", "env", "expected"),
    [
        (None, {}, False),
        (False, {}, False),
        (True, {}, True),
        (None, {"HF_HUB_OFFLINE": "1"}, True),
        (None, {"TRACKER_OFFLINE": "true"}, True),
        (False, {"TRACKER_OFFLINE": "1"}, True),  # False means "not asked for", the environment still wins
        (None, {"TRACKER_OFFLINE": "0"}, False),
    ],
)
def test_is_offline(monkeypatch, offline, env, expected) -> None:
    for var in ("HF_HUB_OFFLINE", "TRACKER_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert is_offline(offline) is expected


@pytest.mark.parametrize(
    ("offline", "env", "download_allowed"),
    [
        (True, None, False),
        (None, "HF_HUB_OFFLINE", False),
        (None, "TRACKER_OFFLINE", False),
        (None, None, True),
    ],
)
def test_offline_never_downloads(
    hf_cache, stub, monkeypatch, tmp_path, offline, env, download_allowed
) -> None:
    if env:
        monkeypatch.setenv(env, "1")
    if download_allowed:
        stub.error = ConnectionError("[Errno -2] Name or service not known\nmore detail")
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_checkpoint(TINY, checkpoints_dir=tmp_path, offline=offline)
    assert stub.calls == (["tiny"] if download_allowed else [])
    if download_allowed:
        assert caught.value.reason == "[Errno -2] Name or service not known"
        assert caught.value.searched[-1] == "https://huggingface.co/facebook/sam2.1-hiera-tiny"
    else:
        assert "offline" in caught.value.reason


def test_download_false_only_searches(hf_cache, stub, tmp_path) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_checkpoint(TINY, checkpoints_dir=tmp_path, download=False)
    assert stub.calls == [] and caught.value.reason is None


@pytest.mark.parametrize("spec", [TINY, CLIP], ids=["sam2", "clip"])
def test_unreachable_hub_fails_fast(hf_cache, tmp_path, spec) -> None:
    """The real download path, with the hub on a closed port: a clean error within seconds."""
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_checkpoint(spec, checkpoints_dir=tmp_path, offline=False)
    assert time.monotonic() - started < 5
    assert "cannot reach 127.0.0.1" in caught.value.reason


def test_unreachable_url_fails_fast(hf_cache, tmp_path) -> None:
    spec = Sam1Spec(
        name="vit_b", checkpoint="sam_vit_b_01ec64.pth", url=closed_port_url() + "/sam_vit_b_01ec64.pth"
    )
    folder = tmp_path / "checkpoints"
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_checkpoint(spec, checkpoints_dir=folder, offline=False)
    assert time.monotonic() - started < 5
    assert "cannot reach" in caught.value.reason
    assert not folder.exists() or list(folder.iterdir()) == []  # no partial file left behind


def test_probe_gives_up_on_silent_hosts(monkeypatch) -> None:
    """A DNS lookup or connect that hangs (a black-holed network) is abandoned after the timeout."""
    release = threading.Event()

    def hang(address, timeout=None):
        release.wait(10)
        raise OSError("never answered")

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.monotonic()
    try:
        with pytest.raises(NetworkUnavailable, match="no answer from example.org"):
            check_reachable("https://example.org/x", timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        release.set()


# ------------------------------------------------------------------ download()


class _Server:
    """A local HTTP server for URL downloads; ``/short`` promises more bytes than it sends."""

    def __init__(self, root: Path) -> None:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path == "/short":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"only this")
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    running = _Server(root)
    yield running, root
    running.close()


def test_url_download_is_atomic_and_complete(hf_cache, monkeypatch, server, tmp_path) -> None:
    running, root = server
    payload = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    (root / "sam_vit_b_01ec64.pth").write_bytes(payload)
    spec = Sam1Spec(
        name="vit_b", checkpoint="sam_vit_b_01ec64.pth", url=running.url + "/sam_vit_b_01ec64.pth"
    )
    monkeypatch.setattr(weights, "find_spec", lambda name: spec)
    folder = tmp_path / "checkpoints"
    (path,) = download(["vit_b"], checkpoints_dir=folder, progress=False)
    assert path == folder / "sam_vit_b_01ec64.pth"
    assert path.read_bytes() == payload
    assert [p.name for p in folder.iterdir()] == ["sam_vit_b_01ec64.pth"]
    # Present now: a second call keeps it without fetching (the server is gone).
    running.close()
    assert download(["vit_b"], checkpoints_dir=folder, progress=False) == [path]


def test_truncated_url_download_leaves_nothing(hf_cache, monkeypatch, server, tmp_path) -> None:
    running, _ = server
    spec = Sam1Spec(name="vit_b", checkpoint="sam_vit_b_01ec64.pth", url=running.url + "/short")
    monkeypatch.setattr(weights, "find_spec", lambda name: spec)
    folder = tmp_path / "checkpoints"
    with pytest.raises(WeightsUnavailable) as caught:
        download(["vit_b"], checkpoints_dir=folder, progress=False)
    assert "python -m tracker download vit_b" in caught.value.fix
    assert list(folder.iterdir()) == []


def test_hub_download_goes_through_a_temporary_folder(hf_cache, monkeypatch, tmp_path) -> None:
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    asked = []

    def fake_hf_hub_download(repo_id, filename, *, local_dir=None, etag_timeout=None, **kwargs):
        asked.append((repo_id, filename, Path(local_dir).parent if local_dir else None, etag_timeout))
        if filename.endswith(".safetensors"):
            raise EntryNotFoundError("no safetensors in this repo")
        path = Path(local_dir) / filename
        path.write_bytes(b"clip weights")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    monkeypatch.setattr(weights, "check_reachable", lambda url, timeout=3.0: None)
    folder = tmp_path / "checkpoints"
    (path,) = download(["ViT-B-32"], checkpoints_dir=folder, progress=False)
    assert path == folder / "ViT-B-32__laion2b_s34b_b79k.bin"  # the hub's format, our name
    assert path.read_bytes() == b"clip weights"
    assert [p.name for p in folder.iterdir()] == [path.name]  # the temporary folder is gone
    assert [a[1] for a in asked] == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    assert all(a[0] == CLIP.hf_repo and a[2] == folder and a[3] for a in asked)
    # ...and resolve_checkpoint finds it there afterwards.
    assert resolve_checkpoint(CLIP, checkpoints_dir=folder, offline=True) == path


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (None, ["tiny", "ViT-B-32/laion2b_s34b_b79k"]),
        ([], ["tiny", "ViT-B-32/laion2b_s34b_b79k"]),
        (["b+", "sam1:vit_l", "ViT-L-14"], ["base+", "vit_l", "ViT-L-14/laion2b_s32b_b82k"]),
    ],
)
def test_download_names(hf_cache, stub, tmp_path, names, expected) -> None:
    paths = download(names, checkpoints_dir=tmp_path / "checkpoints", progress=False)
    assert stub.calls == expected
    assert len(paths) == len(expected)


def test_download_unknown_name(hf_cache, stub, tmp_path) -> None:
    with pytest.raises(InputError):
        download(["gpt-5"], checkpoints_dir=tmp_path)
    assert stub.calls == []


def test_download_failure_is_one_clean_error(hf_cache, stub, tmp_path) -> None:
    stub.error = OSError("Connection reset by peer")
    with pytest.raises(WeightsUnavailable) as caught:
        download(["tiny"], checkpoints_dir=tmp_path, progress=False)
    assert caught.value.reason == "Connection reset by peer"
    assert caught.value.searched == [
        str(tmp_path / TINY.checkpoint),
        "https://huggingface.co/facebook/sam2.1-hiera-tiny",
    ]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# ------------------------------------------------------------------ hashes


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 100])
def test_file_sha256(tmp_path, size) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path, chunk_size=8) == hashlib.sha256(data).hexdigest()


def test_checkpoint_sha256_notices_changes(tmp_path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"one")
    assert checkpoint_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two!")
    assert checkpoint_sha256(path) == hashlib.sha256(b"two!").hexdigest()
