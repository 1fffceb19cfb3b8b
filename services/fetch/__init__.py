"""Fetching and decoding asset content: http(s) behind an SSRF guard, file:// under configured roots, data:
URIs and inline base64, images decoded into bounded RGB pictures, and audio into bounded mono clips at the
model's rate.

Every failure is a :class:`FetchError` whose ``reason`` is the dead-letter reason code.
"""

from services.fetch.audio import AudioClip, decode_audio
from services.fetch.errors import FetchError
from services.fetch.fetcher import Fetcher
from services.fetch.guard import AddressGuard
from services.fetch.images import decode_image

__all__ = ["AddressGuard", "AudioClip", "FetchError", "Fetcher", "decode_audio", "decode_image"]
