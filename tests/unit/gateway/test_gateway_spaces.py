"""Choosing the space that answers: a request's `space`, the `directions` setting, configured order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.errors import ConfigError
from services.gateway.spaces import candidates, check_directions


@dataclass(frozen=True)
class Space:
    space: str
    modalities: frozenset[str]


CLIP, CLAP, LARGE = (Space("clip", frozenset({"image", "text"})), Space("clap", frozenset({"audio", "text"})),
                     Space("clip_large", frozenset({"image", "text"})))
SPACES = [CLIP, CLAP, LARGE]


def test_directions_put_their_space_first_and_a_named_space_is_the_only_one() -> None:
    assert candidates(SPACES, "image", "text") == [CLIP, LARGE]
    assert candidates(SPACES, "image", "text", directions={"image->text": "clip_large"}) == [LARGE, CLIP]
    assert candidates(SPACES, "text", "image", directions={"image->text": "clip_large"}) == [CLIP, LARGE]
    assert candidates(SPACES, "text", "image", space="clip_large") == [LARGE]
    assert candidates(SPACES, "text", "image", space="clap") == []


@pytest.mark.parametrize(("directions", "message"), [
    ({"image-text": "clip"}, "not a direction"),
    ({"video->text": "clip"}, "not a direction"),
    ({"image->text": "siglip"}, "not configured"),
    ({"audio->text": "clip"}, "cannot answer audio->text"),
])
def test_a_wrong_directions_setting_is_a_config_error(directions: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_directions(SPACES, directions)


def test_a_right_directions_setting_passes() -> None:
    check_directions(SPACES, {"image->text": "clip_large", "text->audio": "clap", "text->any": "clap"})
