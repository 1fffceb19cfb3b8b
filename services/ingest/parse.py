"""Record -> event, or the reason it can never become one."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from schemas.asset_event import AssetEvent, Modality, Op
from schemas.dead_letter import Reason
from services.ingest.records import Parsed, Record


class Rejected(Exception):
    """A record that must be dead-lettered; never raised past the pipeline."""

    def __init__(self, reason: Reason, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


def parse(record: Record, spaces_of: Mapping[Modality, Sequence[str]], *, multi_tenant: bool = False) -> Parsed:
    """Validate one record against the event contract; raise :class:`Rejected` with a reason code.

    ``spaces_of`` maps each modality to the embedding spaces that accept it; an upsert of a modality no space
    accepts can never be embedded here. ``multi_tenant``: every event must name its tenant; else none may.
    """
    if record.value is None:
        raise Rejected(Reason.invalid_event, "record has no value (a Kafka tombstone); send op=delete instead")
    try:
        raw = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(Reason.invalid_json, f"value is not UTF-8 JSON: {exc}") from exc
    try:
        event = AssetEvent.model_validate(raw)
    except ValidationError as exc:
        raise Rejected(Reason.invalid_event, _summarise(exc)) from exc
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    if key != event.asset_id:
        raise Rejected(
            Reason.invalid_event,
            f"Kafka key {key!r} must equal asset_id {event.asset_id!r} (per-asset ordering depends on it)",
        )
    _check_tenant(event, multi_tenant)
    if event.op is Op.upsert and event.modality is not None and not spaces_of.get(event.modality):
        configured = sorted({s for spaces in spaces_of.values() for s in spaces})
        raise Rejected(
            Reason.unsupported_modality,
            f"no embedding space of this worker takes {event.modality.value} (spaces: {', '.join(configured)}); "
            "configure one with XMODAL_SPACES",
        )
    return Parsed(record, event)


def _check_tenant(event: AssetEvent, multi_tenant: bool) -> None:
    if multi_tenant and event.tenant is None:
        raise Rejected(Reason.tenant_required, f"this deployment is multi-tenant: {event.op.value} of "
                       f"{event.asset_id!r} names no `tenant`, so it belongs to no customer; send it again with one")
    if not multi_tenant and event.tenant is not None:
        raise Rejected(Reason.tenant_not_allowed, f"this deployment is single-tenant "
                       f"(XMODAL_WEAVIATE__MULTI_TENANCY=false) but the event names tenant {event.tenant!r}: storing "
                       "it would mix that customer's asset with everyone's; drop `tenant` or run multi-tenant")


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid event: " + "; ".join(parts)
