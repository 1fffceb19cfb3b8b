"""`python -m schemas` rewrites schemas/asset_event.schema.json from the pydantic model (check it in)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.asset_event import json_schema

SCHEMA_FILE = Path(__file__).with_name("asset_event.schema.json")


def render() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(render())
    print(f"wrote {SCHEMA_FILE}")
