"""file:// content: only under the configured roots, symlinks and ``..`` resolved first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schemas.dead_letter import Reason
from services.config import FetchSettings
from services.fetch import Fetcher, FetchError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root/{a.png, sub/b.png} inside the root; tmp/secret.txt and tmp/outside/c.png outside it."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(b"image-a")
    (root / "sub" / "b.png").write_bytes(b"image-b")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "c.png").write_bytes(b"image-c")
    return tmp_path


def fetcher(roots: list[Path], max_bytes: int = 1024) -> Fetcher:
    return Fetcher(FetchSettings(file_roots=roots, max_bytes=max_bytes))


async def read(uri: str, roots: list[Path], max_bytes: int = 1024) -> bytes:
    async with fetcher(roots, max_bytes) as f:
        return await f.fetch(uri)


async def read_error(uri: str, roots: list[Path], max_bytes: int = 1024) -> FetchError:
    with pytest.raises(FetchError) as info:
        await read(uri, roots, max_bytes)
    return info.value


async def test_reads_files_under_the_root(tree: Path) -> None:
    roots = [tree / "root"]
    assert await read((tree / "root" / "a.png").as_uri(), roots) == b"image-a"
    assert await read((tree / "root" / "sub" / "b.png").as_uri(), roots) == b"image-b"
    assert await read(f"file://localhost{tree}/root/a.png", roots) == b"image-a"


async def test_percent_encoded_names(tree: Path) -> None:
    (tree / "root" / "with space#1.png").write_bytes(b"spaced")
    assert await read((tree / "root" / "with space#1.png").as_uri(), [tree / "root"]) == b"spaced"


async def test_no_roots_means_no_files(tree: Path) -> None:
    err = await read_error((tree / "root" / "a.png").as_uri(), [])
    assert err.reason is Reason.fetch_forbidden
    assert "XMODAL_FETCH__FILE_ROOTS" in str(err)


async def test_missing_file_is_not_found(tree: Path) -> None:
    err = await read_error((tree / "root" / "nope.png").as_uri(), [tree / "root"])
    assert err.reason is Reason.fetch_not_found


async def test_file_outside_the_roots_is_forbidden(tree: Path) -> None:
    err = await read_error((tree / "secret.txt").as_uri(), [tree / "root"])
    assert err.reason is Reason.fetch_forbidden


@pytest.mark.parametrize("escape", ["../secret.txt", "sub/../../secret.txt", "%2E%2E/secret.txt",
                                    "sub/%2e%2e/%2e%2e/outside/c.png", "../../../../../../etc/hostname"])
async def test_dot_dot_traversal_is_forbidden(tree: Path, escape: str) -> None:
    err = await read_error(f"file://{tree}/root/{escape}", [tree / "root"])
    assert err.reason is Reason.fetch_forbidden
    assert "outside the file roots" in str(err)


async def test_a_sibling_with_the_root_as_prefix_is_outside(tree: Path) -> None:
    (tree / "root-evil").mkdir()
    (tree / "root-evil" / "x.png").write_bytes(b"x")
    err = await read_error((tree / "root-evil" / "x.png").as_uri(), [tree / "root"])
    assert err.reason is Reason.fetch_forbidden


async def test_symlink_escaping_the_root_is_forbidden(tree: Path) -> None:
    (tree / "root" / "link.txt").symlink_to(tree / "secret.txt")
    (tree / "root" / "linkdir").symlink_to(tree / "outside", target_is_directory=True)
    for name in ["link.txt", "linkdir/c.png", "linkdir/missing.png"]:
        err = await read_error(f"file://{tree}/root/{name}", [tree / "root"])
        assert err.reason is Reason.fetch_forbidden, name


async def test_symlink_inside_the_root_is_followed(tree: Path) -> None:
    (tree / "root" / "alias.png").symlink_to(tree / "root" / "sub" / "b.png")
    assert await read((tree / "root" / "alias.png").as_uri(), [tree / "root"]) == b"image-b"


async def test_a_root_that_is_a_symlink_matches_its_real_files(tree: Path) -> None:
    (tree / "root-link").symlink_to(tree / "root", target_is_directory=True)
    roots = [tree / "root-link"]
    assert await read((tree / "root-link" / "a.png").as_uri(), roots) == b"image-a"
    assert await read((tree / "root" / "a.png").as_uri(), roots) == b"image-a"


async def test_size_limit(tree: Path) -> None:
    (tree / "root" / "big.bin").write_bytes(b"b" * 11)
    (tree / "root" / "fits.bin").write_bytes(b"f" * 10)
    err = await read_error((tree / "root" / "big.bin").as_uri(), [tree / "root"], max_bytes=10)
    assert err.reason is Reason.too_large
    assert await read((tree / "root" / "fits.bin").as_uri(), [tree / "root"], max_bytes=10) == b"f" * 10


async def test_directory_and_fifo_are_not_read(tree: Path) -> None:
    os.mkfifo(tree / "root" / "pipe")  # reading it would block forever
    for name in ["sub", "pipe"]:
        err = await read_error((tree / "root" / name).as_uri(), [tree / "root"])
        assert err.reason is Reason.fetch_failed, name
        assert "not a regular file" in str(err)


@pytest.mark.parametrize(("uri", "reason"), [
    ("file://example.com/etc/passwd", Reason.fetch_forbidden),
    ("file:///tmp/a.png?x=1", Reason.invalid_event),
    ("file:///tmp/a.png#frag", Reason.invalid_event),
    ("file:relative/a.png", Reason.invalid_event),
    ("file:///tmp/a%00.png", Reason.invalid_event),
])
async def test_malformed_or_remote_file_uris(tree: Path, uri: str, reason: Reason) -> None:
    err = await read_error(uri, [tree / "root"])
    assert err.reason is reason
