"""Where `xmodal publish` gets events from: a JSONL file or a folder of images, audio clips and texts.

A source is read as a stream, never held in memory: ``validate()`` reads it once and keeps only a count (a bad
event stops it, naming its line or file, before anything is sent), ``events(start)`` reads it again from the
``start``-th event, skipping the earlier ones without parsing them (a resumed backfill), and ``fingerprint()``
says, without reading the content, whether it changed since a checkpoint was written.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.asset_event import AssetEvent
from services.errors import ConfigError
from services.publish.producer import MAX_REQUEST_BYTES, encode, record_size

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt", ".md"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})
INLINE_LIMIT = 700 * 1024  # Kafka's default max message is 1 MiB; base64 adds a third


class Fingerprint(BaseModel):
    """What a source looked like, from its files' sizes and times: a changed source cannot be resumed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(description="Bytes of the file, or of every file a folder publishes (sidecars included).")
    mtime_ns: int = Field(description="The newest modification time among those files, ns since the epoch.")
    files: int = Field(description="1 for a JSONL file; the files a folder publishes, sidecars included.")
    listing: str = Field("", description="A folder: sha256 of each file's relative path, size and mtime.")

    def changes(self, now: Fingerprint) -> str:
        """What differs from ``now``, in words ("" when nothing does).

        >>> Fingerprint(size=10, mtime_ns=0, files=1).changes(Fingerprint(size=12, mtime_ns=0, files=1))
        'size 10 -> 12 bytes'
        """
        out = []
        if self.size != now.size:
            out.append(f"size {self.size:,} -> {now.size:,} bytes")
        if self.files != now.files:
            out.append(f"{self.files:,} -> {now.files:,} files")
        if self.mtime_ns != now.mtime_ns:
            out.append(f"modified {_when(self.mtime_ns)} -> {_when(now.mtime_ns)}")
        if not out and self.listing != now.listing:
            out.append("files renamed or replaced")
        return ", ".join(out)


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


class Source(Protocol):
    """A JSONL file or a folder, read as a stream (see the module's docstring)."""

    @property
    def path(self) -> Path: ...

    def fingerprint(self) -> Fingerprint: ...

    def validate(self, progress: Callable[[int], None] = ...) -> int: ...

    def events(self, start: int = 0) -> Iterator[AssetEvent]: ...


def check_size(event: AssetEvent, where: str) -> None:
    """Refuse, before anything is sent, an event that Kafka would refuse as too large."""
    size = record_size(*encode(event))
    if size > MAX_REQUEST_BYTES:
        raise ConfigError(f"{where}: event {event.asset_id!r} is {size:,} bytes as a Kafka record, more than the "
                          f"{MAX_REQUEST_BYTES:,} Kafka takes; give large content by uri instead")


def _no_progress(n: int) -> None:
    pass


def with_tenant(event: AssetEvent, tenant: str | None, where: str) -> AssetEvent:
    """``event`` in ``tenant`` (``xmodal publish --tenant``): set where the event names none, kept where it names
    the same one, refused where it names another. None leaves the event as it is."""
    if tenant is None or event.tenant == tenant:
        return event
    if event.tenant is not None:
        raise ConfigError(f"{where}: the event is for tenant {event.tenant!r}, but --tenant says {tenant!r}")
    try:
        return AssetEvent.model_validate({**event.model_dump(exclude_none=True), "tenant": tenant})
    except ValidationError as exc:
        raise ConfigError(f"--tenant {tenant!r}: {exc.errors()[0]['msg']}") from exc


class JsonlSource:
    """One AssetEvent per line; blank lines are skipped and not counted as events. With ``tenant``, every event
    goes to that tenant (see :func:`with_tenant`)."""

    def __init__(self, path: Path, *, tenant: str | None = None) -> None:
        self._path = path
        self._tenant = tenant

    @property
    def path(self) -> Path:
        return self._path

    def fingerprint(self) -> Fingerprint:
        st = self._path.stat()
        return Fingerprint(size=st.st_size, mtime_ns=st.st_mtime_ns, files=1)

    def _lines(self, start: int) -> Iterator[tuple[int, str]]:
        """(line number, line) of the events from the ``start``-th on."""
        seen = 0
        with self._path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                seen += 1
                if seen > start:
                    yield n, line

    def _parse(self, n: int, line: str) -> AssetEvent:
        try:
            event = AssetEvent.model_validate_json(line)
        except ValidationError as exc:
            raise ConfigError(f"{self._path}:{n}: not a valid asset event: {exc.errors()[0]['msg']}") from exc
        return with_tenant(event, self._tenant, f"{self._path}:{n}")

    def validate(self, progress: Callable[[int], None] = _no_progress) -> int:
        count = 0
        for n, line in self._lines(0):
            check_size(self._parse(n, line), f"{self._path}:{n}")
            count += 1
            progress(1)
        return count

    def events(self, start: int = 0) -> Iterator[AssetEvent]:
        for n, line in self._lines(start):
            yield self._parse(n, line)


class FolderSource:
    """Images, audio clips and texts under ``root``; asset_id = relative path; metadata from ``<file>.json``.

    Images and clips up to 700 KiB travel inline (base64); larger ones as file:// URIs, which the worker reads only
    under its XMODAL_FETCH__FILE_ROOTS. ``event_time`` is ``now`` (default: when the source is opened); every
    event goes to ``tenant`` when one is given.
    """

    def __init__(self, root: Path, *, now: datetime | None = None, tenant: str | None = None) -> None:
        self._root = root
        self._when = now or datetime.now(UTC)
        self._tenant = tenant

    @property
    def path(self) -> Path:
        return self._root

    def _files(self) -> list[Path]:
        suffixes = IMAGE_SUFFIXES | TEXT_SUFFIXES | AUDIO_SUFFIXES
        return sorted(p for p in self._root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)

    def fingerprint(self) -> Fingerprint:
        digest = hashlib.sha256()
        size = mtime_ns = files = 0
        for media in self._files():
            for path in (media, _sidecar(media)):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                digest.update(f"{path.relative_to(self._root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                size, mtime_ns, files = size + st.st_size, max(mtime_ns, st.st_mtime_ns), files + 1
        return Fingerprint(size=size, mtime_ns=mtime_ns, files=files, listing=digest.hexdigest())

    def _event(self, path: Path) -> AssetEvent:
        meta_file = _sidecar(path)
        try:
            metadata = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{meta_file}: not valid JSON ({exc})") from exc
        common: dict[str, Any] = {"schema_version": 1, "asset_id": path.relative_to(self._root).as_posix(),
                                  "op": "upsert", "metadata": metadata, "event_time": self._when}
        if self._tenant is not None:
            common["tenant"] = self._tenant
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            content: dict[str, Any] = {"modality": "text", "text": path.read_text()}
        else:
            modality = "audio" if suffix in AUDIO_SUFFIXES else "image"
            inline = path.stat().st_size <= INLINE_LIMIT
            content = ({"modality": modality, "data": base64.b64encode(path.read_bytes()).decode()} if inline
                       else {"modality": modality, "uri": path.resolve().as_uri()})
        try:
            return AssetEvent.model_validate({**common, **content})
        except ValidationError as exc:
            raise ConfigError(f"{path}: not a valid asset event: {exc.errors()[0]['msg']}") from exc

    def validate(self, progress: Callable[[int], None] = _no_progress) -> int:
        files = self._files()
        for path in files:
            check_size(self._event(path), str(path))
            progress(1)
        return len(files)

    def events(self, start: int = 0) -> Iterator[AssetEvent]:
        for path in self._files()[start:]:
            yield self._event(path)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def open_source(path: Path, *, tenant: str | None = None) -> JsonlSource | FolderSource:
    """A folder or a JSONL file (its events in ``tenant`` when given); ConfigError when ``path`` is neither."""
    if path.is_dir():
        return FolderSource(path, tenant=tenant)
    if path.is_file():
        return JsonlSource(path, tenant=tenant)
    raise ConfigError(f"{path} does not exist")


def from_jsonl(path: Path) -> Iterator[AssetEvent]:
    """One event per line; a bad line stops with its line number."""
    return JsonlSource(path).events()


def from_folder(root: Path, *, now: datetime | None = None) -> Iterator[AssetEvent]:
    """The events of a folder (see :class:`FolderSource`)."""
    return FolderSource(root, now=now).events()
