"""Search filters: a JSON tree the gateway validates with these pydantic models, made into Weaviate filters.

A filter is ``{"and": [...]}``, ``{"or": [...]}`` or a condition on one field: a metadata key or one of
``asset_id``, ``modality``, ``event_time``, ``indexed_at`` (these shadow metadata keys of the same name).
A condition has exactly one of ``eq``, ``ne``, ``in`` (a list), or range bounds ``gt``/``gte``/``lt``/``lte``
(numbers or RFC 3339 times with a zone; a lower and an upper bound may combine). On a list metadata value,
``eq`` matches when any element equals, ``in`` when any element is in the list.

>>> f = parse_filter({"and": [{"field": "color", "in": ["red", "blue"]},
...                          {"field": "price", "gte": 10, "lt": 20}]})
>>> [c.field for c in f.and_]
['color', 'price']

The trees are bounded: at most :data:`MAX_DEPTH` levels, :data:`MAX_CONDITIONS` conditions,
:data:`MAX_CHILDREN` children per node and :data:`MAX_IN` values per ``in``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from weaviate.classes.query import Filter
from weaviate.collections.classes.filters import FilterReturn

from services.store.errors import InvalidFilter, UnknownField
from services.store.schema import PropKind, SchemaView

MAX_DEPTH = 5
MAX_CONDITIONS = 64
MAX_CHILDREN = 32
MAX_IN = 256

FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


def _time_string(value: object) -> object:
    # A string bound must be an RFC 3339 time; without this, pydantic would read "5" as a unix timestamp.
    if isinstance(value, str):
        return _parse_time(value)
    return value


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (add Z or +hh:mm)")
    return parsed


Scalar = StrictBool | StrictInt | StrictFloat | AwareDatetime | StrictStr
Bound = Annotated[StrictInt | StrictFloat | AwareDatetime, BeforeValidator(_time_string)]
_FORBID = ConfigDict(
    extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True, allow_inf_nan=False
)


class Condition(BaseModel):
    """One comparison on one field."""

    model_config = _FORBID
    field: str = Field(pattern=FIELD_PATTERN, description="A metadata key, or asset_id, modality, "
                       "event_time, indexed_at.")
    eq: Scalar | None = Field(None, description="Equal to (on a list value: any element equal).")
    ne: Scalar | None = Field(None, description="Not equal to.")
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1, max_length=MAX_IN,
                                     description="Equal to one of these.")
    gt: Bound | None = Field(None, description="Greater than (number or RFC 3339 time).")
    gte: Bound | None = Field(None, description="Greater than or equal.")
    lt: Bound | None = Field(None, description="Less than.")
    lte: Bound | None = Field(None, description="Less than or equal.")

    @model_validator(mode="after")
    def _one_comparison(self) -> Condition:
        given = [n for n in ("eq", "ne", "in_", "gt", "gte", "lt", "lte") if getattr(self, n) is not None]
        ranges = [n for n in given if n in ("gt", "gte", "lt", "lte")]
        if not given:
            raise ValueError("a condition needs one of eq, ne, in, gt, gte, lt, lte")
        if len(given) > len(ranges) and len(given) > 1:
            raise ValueError("eq, ne and in cannot be combined with another comparison")
        if {"gt", "gte"} <= set(ranges) or {"lt", "lte"} <= set(ranges):
            raise ValueError("a range has at most one lower (gt/gte) and one upper (lt/lte) bound")
        kinds = {isinstance(getattr(self, n), datetime) for n in ranges}
        if len(kinds) > 1:
            raise ValueError("range bounds must be all numbers or all times")
        return self

    def size(self) -> int:
        return 1

    def depth(self) -> int:
        return 1


class _Node(BaseModel):
    model_config = _FORBID

    def _children(self) -> list[FilterExpr]:
        raise NotImplementedError

    def size(self) -> int:
        return sum(c.size() for c in self._children())

    def depth(self) -> int:
        return 1 + max(c.depth() for c in self._children())

    @model_validator(mode="after")
    def _bounded(self) -> _Node:
        if self.depth() > MAX_DEPTH:
            raise ValueError(f"filter is nested deeper than {MAX_DEPTH} levels")
        if self.size() > MAX_CONDITIONS:
            raise ValueError(f"filter has more than {MAX_CONDITIONS} conditions")
        return self


class And(_Node):
    """All children match."""

    and_: list[FilterExpr] = Field(alias="and", min_length=1, max_length=MAX_CHILDREN)

    def _children(self) -> list[FilterExpr]:
        return self.and_


class Or(_Node):
    """At least one child matches."""

    or_: list[FilterExpr] = Field(alias="or", min_length=1, max_length=MAX_CHILDREN)

    def _children(self) -> list[FilterExpr]:
        return self.or_


def _node_tag(value: Any) -> str | None:
    # Route by the key present, so errors are reported against one shape instead of all three.
    if isinstance(value, dict):
        return "and" if "and" in value else "or" if "or" in value else "condition"
    if isinstance(value, And | Or | Condition):
        return {And: "and", Or: "or", Condition: "condition"}[type(value)]
    return None


FilterExpr = Annotated[
    Annotated[And, Tag("and")] | Annotated[Or, Tag("or")] | Annotated[Condition, Tag("condition")],
    Discriminator(_node_tag, custom_error_type="filter_node",
                  custom_error_message="a filter is an object with 'and', 'or' or 'field'"),
]
And.model_rebuild()
Or.model_rebuild()
_ADAPTER: TypeAdapter[FilterExpr] = TypeAdapter(FilterExpr)


def parse_filter(data: object) -> FilterExpr:
    """Validate a filter given as parsed JSON (or models); raises :class:`InvalidFilter` with the reasons."""
    try:
        return _ADAPTER.validate_python(data, by_alias=True)
    except ValidationError as e:
        raise InvalidFilter(_describe(e)) from None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        parts.append(f"{_path(item['loc'])}: {item['msg'].removeprefix('Value error, ')}")
    return "invalid filter: " + "; ".join(parts)


def _path(loc: tuple[int | str, ...]) -> str:
    # pydantic's loc holds the union tag before each node's key ('and', 'and', 1, 'condition', 'gt');
    # drop the tags so the path reads like the JSON: and[1].gt
    steps: list[int | str] = []
    for p in loc:
        if p == "condition" or (steps and p == steps[-1] and p in ("and", "or")):
            continue
        steps.append(p)
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in steps).lstrip(".")
    return text or "filter"


def to_weaviate(expr: FilterExpr, schema: SchemaView) -> FilterReturn:
    """The Weaviate filter of ``expr``; :class:`InvalidFilter` on unknown fields and type mismatches."""
    if isinstance(expr, And):
        return Filter.all_of([to_weaviate(c, schema) for c in expr.and_])
    if isinstance(expr, Or):
        return Filter.any_of([to_weaviate(c, schema) for c in expr.or_])
    return _condition(expr, schema)


def _condition(cond: Condition, schema: SchemaView) -> FilterReturn:
    found = schema.field_kind(cond.field)
    if found is None:
        raise UnknownField(f"unknown filter field {cond.field!r}: no stored asset has this metadata key")
    name, kind = found
    prop = Filter.by_property(name)
    if cond.eq is not None:
        return prop.equal(_value(cond, kind, cond.eq))
    if cond.ne is not None:
        return prop.not_equal(_value(cond, kind, cond.ne))
    if cond.in_ is not None:
        return prop.contains_any([_value(cond, kind, v) for v in cond.in_])
    return _range(cond, kind, name)


def _range(cond: Condition, kind: PropKind, name: str) -> FilterReturn:
    if kind not in (PropKind.NUMBER, PropKind.INT, PropKind.DATE):
        raise InvalidFilter(
            f"field {cond.field!r} holds {kind.value} values: gt/gte/lt/lte need numbers or times"
        )
    prop = Filter.by_property(name)
    parts = []
    for op, bound in (("gt", cond.gt), ("gte", cond.gte), ("lt", cond.lt), ("lte", cond.lte)):
        if bound is None:
            continue
        value = _value(cond, kind, bound)
        parts.append({"gt": prop.greater_than, "gte": prop.greater_or_equal,
                      "lt": prop.less_than, "lte": prop.less_or_equal}[op](value))
    return Filter.all_of(parts)


def _value(cond: Condition, kind: PropKind, value: object) -> Any:
    """``value`` converted for a property of type ``kind``; InvalidFilter when the types do not match."""
    if isinstance(value, bool):  # before numbers: a bool is an int to Python
        if kind is PropKind.BOOL:
            return value
    elif isinstance(value, int | float):
        if kind in (PropKind.NUMBER, PropKind.INT):
            # Weaviate compares a number property with a float value; an int would be typed valueInt.
            return float(value) if kind is PropKind.NUMBER else value
    elif isinstance(value, datetime):
        if kind is PropKind.DATE:
            return value
    elif isinstance(value, str):
        if kind in (PropKind.TEXT, PropKind.TEXT_ARRAY):
            return value
        if kind is PropKind.DATE:
            try:
                return _parse_time(value)
            except ValueError as e:
                raise InvalidFilter(f"field {cond.field!r} holds times: {e}") from None
    raise InvalidFilter(
        f"field {cond.field!r} holds {_KIND_WORDS[kind]}; got {type(value).__name__} {value!r}"
    )


_KIND_WORDS = {
    PropKind.TEXT: "strings", PropKind.TEXT_ARRAY: "lists of strings", PropKind.NUMBER: "numbers",
    PropKind.INT: "integers", PropKind.BOOL: "booleans", PropKind.DATE: "RFC 3339 times",
    PropKind.BLOB: "binary data (not filterable)",
}
