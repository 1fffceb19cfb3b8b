"""``file://`` content, readable only under the configured roots (``XMODAL_FETCH__FILE_ROOTS``)."""

from __future__ import annotations

import asyncio
import io
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from schemas.dead_letter import Reason
from services.fetch.errors import FetchError

ROOTS_HINT = "XMODAL_FETCH__FILE_ROOTS"
_CHUNK = 1024 * 1024


class FileReader:
    """Reads ``file://`` URIs whose real path (symlinks and ``..`` resolved) lies under one of ``roots``."""

    def __init__(self, roots: Iterable[Path], *, max_bytes: int) -> None:
        # Roots are resolved too, so a root that is itself a symlink still matches its real paths.
        self.roots: tuple[Path, ...] = tuple(Path(os.path.realpath(r)) for r in roots)
        self.max_bytes = max_bytes

    async def read(self, uri: str) -> bytes:
        path = self.resolve(uri)
        return await asyncio.to_thread(self._read_bounded, path)

    def resolve(self, uri: str) -> Path:
        """The real path ``uri`` names, or fetch_forbidden when it lies outside every root."""
        path = path_from_uri(uri)
        if not self.roots:
            raise FetchError(
                Reason.fetch_forbidden,
                f"file:// content is off; set {ROOTS_HINT} to the folders to read (a JSON list)",
            )
        real = Path(os.path.realpath(path))
        if not any(real.is_relative_to(root) for root in self.roots):
            roots = ", ".join(str(r) for r in self.roots)
            raise FetchError(
                Reason.fetch_forbidden, f"{uri}: {real} is outside the file roots ({roots}); see {ROOTS_HINT}"
            )
        return real

    def _read_bounded(self, path: Path) -> bytes:
        # O_NOFOLLOW: a symlink swapped in after resolve() is refused; O_NONBLOCK: a FIFO cannot hang us.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError as exc:
            raise FetchError(Reason.fetch_not_found, f"{path}: no such file") from exc
        except OSError as exc:
            raise FetchError(Reason.fetch_failed, f"{path}: cannot open: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(Reason.fetch_failed, f"{path}: not a regular file")
            if info.st_size > self.max_bytes:
                raise FetchError(Reason.too_large, f"{path}: {info.st_size} bytes; limit {self.max_bytes}")
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
                return self._read_at_most(f, path)
        finally:
            os.close(fd)

    def _read_at_most(self, f: io.FileIO, path: Path) -> bytes:
        buf = bytearray()
        while len(buf) <= self.max_bytes:  # the file may have grown since fstat
            chunk = f.read(min(_CHUNK, self.max_bytes + 1 - len(buf)))
            if not chunk:
                return bytes(buf)
            buf += chunk
        raise FetchError(Reason.too_large, f"{path}: more than {self.max_bytes} bytes")


def path_from_uri(uri: str) -> Path:
    """The absolute local path of a ``file:`` URI (``file:///p`` or ``file://localhost/p``)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        raise FetchError(Reason.invalid_event, f"not a file: URI: {uri}")
    if parts.netloc not in ("", "localhost"):
        raise FetchError(Reason.fetch_forbidden, f"{uri}: file:// of another host ({parts.netloc}) refused")
    if parts.query or parts.fragment:
        raise FetchError(
            Reason.invalid_event, f"{uri}: a file URI has no query or fragment; encode ? as %3F, # as %23"
        )
    try:
        # Bytes first, then the file system's own decoding: names that are not UTF-8 stay reachable.
        path = os.fsdecode(unquote_to_bytes(parts.path))
    except UnicodeError as exc:
        raise FetchError(Reason.invalid_event, f"{uri}: malformed path: {exc}") from exc
    if not path.startswith("/") or "\x00" in path:
        raise FetchError(Reason.invalid_event, f"{uri}: needs an absolute path without NUL bytes")
    return Path(path)
