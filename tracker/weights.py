"""Finding and downloading checkpoints.

:func:`resolve_checkpoint` looks, in order, at

1. an explicit path (``--checkpoint``): it must exist;
2. the checkpoints folder: ``checkpoints_dir`` if given, else ``$TRACKER_CHECKPOINTS``, else
   ``<repo>/checkpoints``;
3. the Hugging Face cache (``huggingface_hub.try_to_load_from_cache``; honours ``HF_HOME`` /
   ``HF_HUB_CACHE``);
4. a download — into the Hugging Face cache for hub-hosted weights (SAM 2, open_clip), into the
   checkpoints folder for URL-hosted ones (SAM 1) — unless offline (``offline=True``,
   ``HF_HUB_OFFLINE=1`` or ``TRACKER_OFFLINE=1``) or ``download=False``.

When all of that fails it raises :class:`~tracker.errors.WeightsUnavailable` naming the model,
the file, every place searched, the network error if any, and the command that fixes it. A
missing network fails fast: the host is probed with a short timeout before any download library
gets to retry for minutes.

:func:`download` is ``python -m tracker download``: it fetches into the checkpoints folder,
atomically (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import CheckpointError, WeightsUnavailable
from .registry import DEFAULT_CLIP, DEFAULT_SAM2, ClipSpec, ModelSpec, find_spec

logger = logging.getLogger(__name__)

ENV_CHECKPOINTS = "TRACKER_CHECKPOINTS"
ENV_OFFLINE = "TRACKER_OFFLINE"
CONNECT_TIMEOUT = 3.0  # seconds to wait for a TCP connection before calling the network down
ETAG_TIMEOUT = 10.0  # seconds huggingface_hub waits for the first answer from the hub
READ_TIMEOUT = 30.0  # seconds urllib waits on a stalled download
DEFAULT_DOWNLOADS = (DEFAULT_SAM2, DEFAULT_CLIP)

_TRUE = {"1", "true", "yes", "on"}


class NetworkUnavailable(OSError):
    """The download host did not answer; ``str()`` is the short reason shown to the user."""


def default_checkpoints_dir() -> Path:
    """``$TRACKER_CHECKPOINTS`` if set, else ``<repo>/checkpoints`` (not created here)."""
    env = os.environ.get(ENV_CHECKPOINTS, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "checkpoints"


def is_offline(offline: bool | None = None) -> bool:
    """True when downloads are off: ``offline=True``, ``HF_HUB_OFFLINE`` or ``TRACKER_OFFLINE`` set.

    ``offline=False`` (the default of :class:`~tracker.settings.Settings`) means "not asked
    for": the environment variables still switch the network off.
    """
    if offline:
        return True
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", ENV_OFFLINE))


def fix_command(spec: ModelSpec, checkpoints_dir: Path | None = None) -> str:
    """The sentence that tells a person how to get ``spec``'s weights."""
    folder = checkpoints_dir or default_checkpoints_dir()
    where = f"copy {spec.local_filename} into {folder}"
    if spec.url and not spec.hf_repo:
        where = f"download {spec.url} into {folder}"
    return f"run `python -m tracker download {spec.name}` (or {where})."


def local_candidates(spec: ModelSpec, checkpoints_dir: Path) -> list[Path]:
    """Paths in the checkpoints folder that count as ``spec``'s weights, preferred first.

    For CLIP models also ``<dir>/<repo name>/<hub file>`` (what ``huggingface-cli download
    <repo> --local-dir checkpoints/<repo name>`` leaves behind).
    """
    if isinstance(spec, ClipSpec):
        paths = [checkpoints_dir / name for name in spec.local_filenames]
        if spec.hf_repo:
            repo_dir = checkpoints_dir / spec.hf_repo.split("/")[-1]
            paths += [repo_dir / name for name in spec.hf_filenames]
        return paths
    return [checkpoints_dir / spec.local_filename]


def describe_local_search(spec: ModelSpec, checkpoints_dir: Path) -> list[str]:
    """:func:`local_candidates`, condensed for messages (one entry per folder)."""
    if not isinstance(spec, ClipSpec):
        return [str(path) for path in local_candidates(spec, checkpoints_dir)]
    suffixes = " or ".join(Path(name).suffix for name in spec.local_filenames[1:])
    places = [f"{checkpoints_dir / spec.local_filename} (or {suffixes})"]
    if spec.hf_repo:
        repo_dir = checkpoints_dir / spec.hf_repo.split("/")[-1]
        places.append(f"{repo_dir}{os.sep}{' or '.join(spec.hf_filenames)}")
    return places


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "the Hugging Face cache"


def find_in_hf_cache(spec: ModelSpec) -> Path | None:
    """``spec``'s weights in the Hugging Face cache, without touching the network."""
    if not spec.hf_repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in spec.hf_filenames:
        try:
            found = try_to_load_from_cache(spec.hf_repo, filename)
        except Exception as error:  # a malformed cache must not stop the search
            logger.debug("Hugging Face cache lookup for %s/%s failed: %s", spec.hf_repo, filename, error)
            continue
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def resolve_checkpoint(
    spec: ModelSpec,
    explicit: Path | str | None = None,
    checkpoints_dir: Path | str | None = None,
    offline: bool | None = None,
    download: bool = True,
) -> Path:
    """The path of ``spec``'s weights file, downloading it if allowed (see module docstring).

    ``explicit`` may be a file or a folder holding ``spec.local_filename``; when given, nothing
    else is searched. Raises :class:`~tracker.errors.WeightsUnavailable` (never a network
    traceback) when the file cannot be had.
    """
    folder = Path(checkpoints_dir).expanduser() if checkpoints_dir else default_checkpoints_dir()
    fix = fix_command(spec, folder)

    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_dir():
            for candidate in local_candidates(spec, path):
                if candidate.is_file():
                    return candidate
            searched = describe_local_search(spec, path)
        elif path.is_file():
            return path
        else:
            searched = [str(path)]
        raise WeightsUnavailable(
            spec.display_name,
            path.name if not path.is_dir() else spec.local_filename,
            searched,
            f"check the path given as the checkpoint, or leave it out and {fix}",
            reason="the given checkpoint path does not exist",
        )

    for candidate in local_candidates(spec, folder):
        if candidate.is_file():
            logger.debug("%s: using %s", spec.name, candidate)
            return candidate
    searched = describe_local_search(spec, folder)

    if spec.hf_repo:
        cached = find_in_hf_cache(spec)
        if cached is not None:
            logger.debug("%s: using cached %s", spec.name, cached)
            return cached
        files = " or ".join(spec.hf_filenames)
        searched.append(f"Hugging Face cache {_hf_cache_dir()} ({spec.hf_repo}: {files})")

    reason: str | None = None
    if not download:
        reason = None
    elif is_offline(offline):
        reason = "offline mode, download skipped"
    else:
        source = f"https://huggingface.co/{spec.hf_repo}" if spec.hf_repo else spec.url
        try:
            if spec.hf_repo:
                return _download_hf(spec, local_dir=None, progress=True)
            return _download_url(spec, folder, progress=True)
        except Exception as error:  # any network / disk failure becomes the one project error
            reason = short_reason(error)
            searched.append(str(source))
            logger.debug("download of %s failed", spec.name, exc_info=True)
    raise WeightsUnavailable(spec.display_name, spec.local_filename, searched, fix, reason=reason)


def download(
    names: list[str] | tuple[str, ...] | None = None,
    checkpoints_dir: Path | str | None = None,
    progress: bool = True,
    force: bool = False,
) -> list[Path]:
    """Fetch each named model's weights into the checkpoints folder; return their paths.

    ``names`` are any registry keys or aliases (``"tiny"``, ``"ViT-B-32"``, ``"sam1:vit_b"``);
    empty or ``None`` means the defaults (SAM 2.1 tiny and the default CLIP). Files already in
    the folder are kept unless ``force``. Raises :class:`~tracker.errors.InputError` for an
    unknown name and :class:`~tracker.errors.WeightsUnavailable` when a download fails.
    """
    specs = [find_spec(name) for name in (names or DEFAULT_DOWNLOADS)]
    folder = Path(checkpoints_dir).expanduser() if checkpoints_dir else default_checkpoints_dir()
    paths = []
    for spec in specs:
        existing = next((p for p in local_candidates(spec, folder) if p.is_file()), None)
        if existing is not None and not force:
            logger.info("%s is already in %s", existing.name, folder)
            paths.append(existing)
            continue
        source = f"https://huggingface.co/{spec.hf_repo}" if spec.hf_repo else spec.url
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if spec.hf_repo:
                path = _download_hf(spec, local_dir=folder, progress=progress)
            else:
                path = _download_url(spec, folder, progress=progress)
        except Exception as error:
            logger.debug("download of %s failed", spec.name, exc_info=True)
            raise WeightsUnavailable(
                spec.display_name,
                spec.local_filename,
                [str(folder / spec.local_filename), str(source)],
                f"check the network connection and run `python -m tracker download {spec.name}` again, "
                f"or copy {spec.local_filename} into {folder} yourself.",
                reason=short_reason(error),
            ) from None
        logger.info("saved %s", path)
        paths.append(path)
    return paths


def file_sha256(path: Path | str, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk_size`` chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def checkpoint_sha256(path: Path | str) -> str:
    """:func:`file_sha256`, remembered per (path, size, mtime) so a model reload costs nothing."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    digest = file_sha256(resolved)
    with _sha_lock:
        _sha_cache[key] = digest
    return digest


def short_reason(error: BaseException) -> str:
    """One short line describing a download failure."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise :class:`NetworkUnavailable` unless a TCP connection to ``url``'s host (or its proxy) opens.

    Runs in a daemon thread joined with ``timeout`` so a hanging DNS lookup cannot stall the
    caller either.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or host, proxy_parts.port or 8080
    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(error)

    thread = threading.Thread(target=probe, name="tracker-net-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        raise NetworkUnavailable(f"no answer from {host} within {timeout:.0f} s (offline?)")
    if outcome[0] is not None:
        raise NetworkUnavailable(f"cannot reach {host}: {outcome[0]}")


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT
    except ImportError:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _quiet_tqdm() -> type:
    from tqdm.auto import tqdm

    class QuietTqdm(tqdm):
        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return QuietTqdm


def _download_hf(spec: ModelSpec, local_dir: Path | None, progress: bool) -> Path:
    """Fetch from the hub: into the HF cache (``local_dir=None``) or atomically into ``local_dir``."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError as error:
        raise NetworkUnavailable("huggingface_hub is not installed (pip install huggingface_hub)") from error
    check_reachable(_hub_endpoint())
    if not spec.hf_repo:
        raise NetworkUnavailable(f"{spec.name} is not on the Hugging Face hub")
    tqdm_class = None if progress else _quiet_tqdm()  # None: huggingface_hub's own bars
    last_error: Exception | None = None
    for filename in spec.hf_filenames:
        logger.info("downloading %s/%s", spec.hf_repo, filename)
        try:
            if local_dir is None:
                return Path(
                    hf_hub_download(
                        spec.hf_repo, filename, etag_timeout=ETAG_TIMEOUT, tqdm_class=tqdm_class
                    )
                )
            with tempfile.TemporaryDirectory(prefix=".download-", dir=local_dir) as tmp:
                fetched = Path(
                    hf_hub_download(
                        spec.hf_repo,
                        filename,
                        local_dir=tmp,
                        etag_timeout=ETAG_TIMEOUT,
                        tqdm_class=tqdm_class,
                    )
                )
                target = local_dir / _local_name(spec, filename)
                os.replace(fetched, target)
                return target
        except EntryNotFoundError as error:  # this repo keeps the other file format
            last_error = error
            continue
    raise NetworkUnavailable(f"{spec.hf_repo} has none of {', '.join(spec.hf_filenames)}: {last_error}")


def _local_name(spec: ModelSpec, hub_filename: str) -> str:
    if isinstance(spec, ClipSpec):
        return spec.local_stem + Path(hub_filename).suffix
    return spec.local_filename


def _download_url(spec: ModelSpec, folder: Path, progress: bool) -> Path:
    """Fetch ``spec.url`` into ``folder / spec.local_filename`` via a temporary file and a rename."""
    if not spec.url:
        raise NetworkUnavailable(f"{spec.name} has no download address")
    check_reachable(spec.url)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.local_filename
    handle, tmp_name = tempfile.mkstemp(prefix=f".{spec.local_filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(spec.url, timeout=READ_TIMEOUT) as response,
        ):
            total = int(response.headers.get("Content-Length") or 0)
            report = _progress_reporter(spec.local_filename, total, progress)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                report(len(chunk))
            report(-1)
        if total and tmp.stat().st_size != total:
            raise NetworkUnavailable(f"download cut short ({tmp.stat().st_size} of {total} bytes)")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _progress_reporter(label: str, total: int, enabled: bool) -> Callable[[int], None]:
    """``report(n)`` advances by ``n`` bytes; ``report(-1)`` closes. tqdm when available, else logging."""
    if not enabled:
        return lambda n: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return lambda n: None
    bar = tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024, desc=label)

    def report(n: int) -> None:
        if n < 0:
            bar.close()
        else:
            bar.update(n)

    return report


def remove_partial_downloads(checkpoints_dir: Path | str | None = None) -> int:
    """Delete leftovers of interrupted downloads (``.*.part`` files, ``.download-*`` folders); return how many."""
    folder = Path(checkpoints_dir).expanduser() if checkpoints_dir else default_checkpoints_dir()
    if not folder.is_dir():
        return 0
    removed = 0
    for leftover in list(folder.glob(".*.part")) + list(folder.glob(".download-*")):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed += 1
    return removed


__all__ = [
    "CheckpointError",
    "NetworkUnavailable",
    "WeightsUnavailable",
    "check_reachable",
    "checkpoint_sha256",
    "default_checkpoints_dir",
    "describe_local_search",
    "download",
    "file_sha256",
    "find_in_hf_cache",
    "fix_command",
    "is_offline",
    "local_candidates",
    "remove_partial_downloads",
    "resolve_checkpoint",
]
