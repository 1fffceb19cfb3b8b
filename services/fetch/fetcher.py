"""The fetcher: bytes of an asset's content from http(s)://, file:// or data: URIs, bounded and SSRF-guarded.

>>> import asyncio
>>> from services.config import FetchSettings
>>> async def demo() -> bytes:
...     async with Fetcher(FetchSettings()) as fetcher:
...         return await fetcher.fetch("data:,hello")
>>> asyncio.run(demo())
b'hello'
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import aiohttp
from yarl import URL

from schemas.dead_letter import Reason
from services.config import FetchSettings
from services.fetch.errors import FetchError
from services.fetch.files import FileReader
from services.fetch.guard import HTTP_SCHEMES, AddressGuard, GuardedResolver, is_valid_host
from services.fetch.inline import decode_base64, decode_data_uri
from services.lifecycle import AsyncResource

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NOT_FOUND_STATUSES = frozenset({404, 410})
# Client errors that say "later": retried like 5xx.
TRANSIENT_4XX = frozenset({408, 429})
_CHUNK = 64 * 1024
_INLINE_THREAD_BYTES = 256 * 1024  # larger data: URIs are decoded off the event loop
_HEADERS = {"User-Agent": "xmodal-fetch/0.1", "Accept": "image/*,*/*;q=0.8", "Accept-Encoding": "identity"}


class Fetcher(AsyncResource):
    """Fetches content bytes. Use as ``async with Fetcher(settings) as f`` or call start() and close().

    http(s): the SSRF guard checks every hop before connecting (redirects are followed here, one checked hop
    at a time), at most ``max_bytes`` are accepted (Content-Length first, then while streaming), and transient
    failures (timeouts, connection errors, 5xx, 408, 429) are retried ``retries`` times with a short backoff.
    Every error raised is a final :class:`FetchError` whose ``reason`` is the dead-letter code.
    """

    def __init__(
        self, settings: FetchSettings, *, retry_backoff_s: float = 0.2, backoff_max_s: float = 2.0
    ) -> None:
        self.settings = settings
        self.guard = AddressGuard(settings.allow_networks)
        self.files = FileReader(settings.file_roots, max_bytes=settings.max_bytes)
        self._backoff_s = retry_backoff_s
        self._backoff_max_s = backoff_max_s
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        s = self.settings
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard), limit=100)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=s.read_timeout_s, sock_connect=s.connect_timeout_s),
            headers=_HEADERS,
            # No proxies from the environment (they would bypass the guard), no cookies carried between
            # fetches, and no transparent gzip (a small compressed body could inflate past max_bytes).
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


    async def fetch(self, uri: str) -> bytes:
        """The content ``uri`` points at. Raises :class:`FetchError` (final, with a dead-letter reason)."""
        scheme = uri.partition(":")[0].lower()
        if scheme in HTTP_SCHEMES:
            return await self._fetch_http(uri)
        if scheme == "file":
            return await self.files.read(uri)
        if scheme == "data":
            if len(uri) > _INLINE_THREAD_BYTES:
                return await asyncio.to_thread(decode_data_uri, uri, max_bytes=self.settings.max_bytes)
            return decode_data_uri(uri, max_bytes=self.settings.max_bytes)
        raise FetchError(Reason.invalid_event, f"unsupported URI scheme {scheme!r}; use http(s), file, data")

    def decode_base64(self, data: str) -> bytes:
        """An event's inline ``data``: too_large past ``max_bytes``, invalid_event when malformed."""
        return decode_base64(data, max_bytes=self.settings.max_bytes)

    async def _fetch_http(self, uri: str) -> bytes:
        url = parse_http_url(uri)
        attempt = 0
        while True:
            try:
                return await self._follow_redirects(url)
            except FetchError as exc:
                if not exc.retriable:
                    raise
                if attempt >= self.settings.retries:
                    raise FetchError(
                        Reason.fetch_failed, f"{exc} (gave up after {attempt + 1} attempts)"
                    ) from exc
            attempt += 1
            await asyncio.sleep(min(self._backoff_s * 2 ** (attempt - 1), self._backoff_max_s))

    async def _follow_redirects(self, url: URL) -> bytes:
        for _ in range(self.settings.max_redirects + 1):
            self.guard.check_url(url)  # names are checked again by the resolver, at connect time
            with translate_client_errors(url):
                body, url = await self._get_once(url)
            if body is not None:
                return body
        raise FetchError(Reason.fetch_failed, f"{url}: more than {self.settings.max_redirects} redirects")

    async def _get_once(self, url: URL) -> tuple[bytes | None, URL]:
        """(body, url) for a final response, (None, next url) for a redirect."""
        if self._session is None:
            raise RuntimeError("Fetcher is not started: use `async with Fetcher(settings)` or await start()")
        async with self._session.get(url, allow_redirects=False) as resp:
            status = resp.status
            if status in REDIRECT_STATUSES:
                return None, redirect_target(url, resp.headers.get("Location"))
            if status >= 500 or status in TRANSIENT_4XX:
                raise FetchError(Reason.fetch_failed, f"{url}: HTTP {status}", retriable=True)
            if status in NOT_FOUND_STATUSES:
                raise FetchError(Reason.fetch_not_found, f"{url}: HTTP {status}")
            if not 200 <= status < 300:
                raise FetchError(Reason.fetch_failed, f"{url}: HTTP {status} {resp.reason or ''}".rstrip())
            return await self._read_bounded(resp, url), url

    async def _read_bounded(self, resp: aiohttp.ClientResponse, url: URL) -> bytes:
        limit = self.settings.max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            resp.close()  # drop the connection rather than drain a body we refuse
            raise FetchError(Reason.too_large, f"{url}: Content-Length {resp.content_length}; limit {limit}")
        buf = bytearray()
        while chunk := await resp.content.read(min(_CHUNK, limit + 1 - len(buf))):
            buf += chunk
            if len(buf) > limit:
                resp.close()
                raise FetchError(Reason.too_large, f"{url}: body larger than the limit of {limit} bytes")
        return bytes(buf)


def parse_http_url(uri: str) -> URL:
    try:
        url = URL(uri)
        port = url.port  # an out-of-range port raises only here
    except (ValueError, TypeError) as exc:
        raise FetchError(Reason.invalid_event, f"malformed URL {uri!r}: {exc}") from exc
    if not url.raw_host or port is None:
        raise FetchError(Reason.invalid_event, f"malformed URL {uri!r}: no host")
    if not is_valid_host(url.raw_host):
        raise FetchError(Reason.invalid_event, f"malformed URL {uri!r}: bad host name {url.raw_host!r}")
    return url


def redirect_target(url: URL, location: str | None) -> URL:
    if not location:
        raise FetchError(Reason.fetch_failed, f"{url}: redirect without a Location header")
    try:
        target = url.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise FetchError(Reason.fetch_failed, f"{url}: malformed redirect Location {location!r}") from exc
    if target.raw_host and not is_valid_host(target.raw_host):
        raise FetchError(Reason.fetch_failed, f"{url}: redirect to a bad host name {target.raw_host!r}")
    return target


@contextlib.contextmanager
def translate_client_errors(url: URL) -> Iterator[None]:
    """aiohttp's exceptions as FetchErrors: transient ones retriable, the rest final."""
    try:
        yield
    except aiohttp.InvalidURL as exc:
        raise FetchError(Reason.invalid_event, f"{url}: invalid URL: {exc}") from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise FetchError(Reason.fetch_failed, f"{url}: TLS certificate refused: {exc}") from exc
    except TimeoutError as exc:
        raise FetchError(Reason.fetch_failed, f"{url}: timed out", retriable=True) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise FetchError(Reason.fetch_failed, f"{url}: {type(exc).__name__}: {exc}", retriable=True) from exc
    except aiohttp.ClientError as exc:
        raise FetchError(Reason.fetch_failed, f"{url}: {type(exc).__name__}: {exc}") from exc
