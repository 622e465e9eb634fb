"""How a spend record becomes a ledger row: made fit for its columns, and written in the
driver's own SQL.

`clean_row` (and `driver_row`, the same values as the driver takes them) makes a record fit
its columns whatever the call carried: text clipped to the column's length, NULs and
unpaired surrogates removed, counts clamped to the column's range, non-finite numbers
dropped, so that one odd request cannot fail a batch. The `driver_*` statements are the
ledger writer's SQL in the driver's own paramstyle, compiled once per shape: SQLAlchemy's
building of the same statements cost the event loop up to a millisecond each, in the middle
of the requests it serves.
"""

from __future__ import annotations

import functools
import math
import operator
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Integer, String

from genroute.store.models import BudgetHold, SpendLog
from genroute.store.repo import utcnow

__all__ = [
    "INT_MAX",
    "Row",
    "clean_ident",
    "clean_row",
    "driver_add_spend",
    "driver_delete_holds",
    "driver_insert",
    "driver_row",
    "valid_text",
]

INT_MAX = 2**31 - 1  # an Integer column on PostgreSQL


def valid_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # unpaired surrogates
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _clean_text(value: Any, length: int | None) -> str:
    if type(value) is str and value.isascii() and "\x00" not in value:  # nearly always
        return value[:length] if length is not None else value
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = valid_text(text)
    return text[:length] if length is not None else text


def clean_ident(value: str, length: int = 256) -> str:
    """A key hash, team or end-user id as its column stores it (see `clean_row`)."""
    return _clean_text(value, length)


def _clean_value(column: Any, value: Any) -> Any:
    kind = column.type
    if value is None:
        return None if column.nullable else _default(kind)
    if isinstance(kind, String):
        return _clean_text(value, kind.length)
    if isinstance(kind, Boolean):
        return bool(value)
    if isinstance(kind, Integer):
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            return None if column.nullable else 0
        return max(-INT_MAX, min(INT_MAX, number))
    if isinstance(kind, Float):
        try:
            real = float(value)
        except (TypeError, ValueError, OverflowError):
            real = math.nan
        if math.isfinite(real):
            return real
        return None if column.nullable else 0.0
    if isinstance(kind, DateTime):
        return value if isinstance(value, datetime) else utcnow()
    return value


def _default(kind: Any) -> Any:
    if isinstance(kind, String):
        return ""
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, (Integer, Float)):
        return 0
    return utcnow()


_COLUMNS = [c for c in SpendLog.__table__.columns if c.key != "id"]


def _fits(column: Any) -> Callable[[Any], bool]:
    """A quick test that a value already fits its column as it is (what `_clean_value`
    would return unchanged): true for nearly every value a call leaves, so that building a
    batch's rows costs a few type checks per field (the flush runs on the event loop)."""
    kind, nullable = column.type, column.nullable
    if isinstance(kind, String):
        length = kind.length or sys.maxsize
        return lambda v: (
            (type(v) is str and len(v) <= length and v.isascii() and "\x00" not in v)
            or (v is None and nullable)
        )
    if isinstance(kind, Boolean):
        return lambda v: type(v) is bool or (v is None and nullable)
    if isinstance(kind, Integer):
        return lambda v: (type(v) is int and -INT_MAX <= v <= INT_MAX) or (v is None and nullable)
    if isinstance(kind, Float):
        return lambda v: (type(v) is float and math.isfinite(v)) or (v is None and nullable)
    if isinstance(kind, DateTime):
        return lambda v: type(v) is datetime
    return lambda v: False


_KEYS = [c.key for c in _COLUMNS]
_VALUES = operator.attrgetter(*_KEYS)
_FITS = [_fits(c) for c in _COLUMNS]
# The text columns, checked in one pass (nearly every value fits as it is), and the others.
_TEXT = [
    (i, c.type.length or sys.maxsize) for i, c in enumerate(_COLUMNS) if isinstance(c.type, String)
]
_OTHER = [i for i, c in enumerate(_COLUMNS) if not isinstance(c.type, String)]


def _clean_values(record: Any) -> tuple[list[Any], bool]:
    """The record's values, in `_COLUMNS` order, made fit for their columns, and whether
    anything had to change. A value that already fits (nearly all) costs a type check."""
    values = list(_VALUES(record))
    odd = [
        i
        for i, length in _TEXT
        if (v := values[i]) is not None
        and not (type(v) is str and len(v) <= length and v.isascii() and "\x00" not in v)
    ]
    odd += [i for i in _OTHER if not _FITS[i](values[i])]
    changed = False
    for i in odd:
        value = values[i]
        cleaned = _clean_value(_COLUMNS[i], value)
        if cleaned != value and not (value is None and cleaned is None):
            changed = True
        values[i] = cleaned
    return values, changed


def clean_row(record: Any) -> tuple[dict[str, Any], bool]:
    """The record as a row that fits its columns, and whether anything had to change."""
    values, changed = _clean_values(record)
    return dict(zip(_KEYS, values, strict=True)), changed


def _marks(dialect: Any, count: int) -> list[str]:
    """`count` parameter placeholders in the driver's own style."""
    if dialect.paramstyle == "qmark":
        return ["?"] * count
    if dialect.paramstyle == "numeric_dollar":
        return [f"${i}" for i in range(1, count + 1)]
    raise ValueError(f"unsupported paramstyle {dialect.paramstyle!r}")


@functools.cache
def driver_insert(dialect: Any, rows: int) -> str:
    """The INSERT of `rows` rows as the driver's own SQL (see `_Batch.insert`)."""
    width = len(_KEYS)
    marks = _marks(dialect, rows * width)
    groups = ("(" + ", ".join(marks[r * width : (r + 1) * width]) + ")" for r in range(rows))
    return (
        f"INSERT INTO {SpendLog.__tablename__} ({', '.join(_KEYS)}) VALUES "
        + ", ".join(groups)
        + " ON CONFLICT (row_id) DO NOTHING RETURNING row_id"
    )


@functools.cache
def _processors(dialect: Any) -> list[tuple[int, Callable[[Any], Any]]]:
    """The columns whose values the dialect converts before the driver sees them (a
    SQLite DATETIME as text, a Boolean as an integer), with the converter: what
    SQLAlchemy itself would apply."""
    found: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(_COLUMNS):
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((index, process))
    return found


@functools.cache
def driver_delete_holds(dialect: Any, rows: int) -> str:
    """The DELETE of `rows` budget holds by id, as the driver's own SQL."""
    marks = ", ".join(_marks(dialect, rows))
    return f"DELETE FROM {BudgetHold.__tablename__} WHERE hold_id IN ({marks})"


Row = tuple[tuple[Any, ...], bool]


def driver_row(dialect: Any, record: Any) -> Row:
    """The record's values in column order, made fit for their columns and converted as
    SQLAlchemy would for the dialect (what the driver takes for one row of `_Batch.insert`),
    and whether anything had to change. The writer makes it when a record is queued, so
    that a flush on the event loop only joins rows."""
    values, changed = _clean_values(record)
    for index, process in _processors(dialect):
        if values[index] is not None:
            values[index] = process(values[index])
    return tuple(values), changed


@functools.cache
def driver_add_spend(dialect: Any, table: str, pk: str) -> str:
    """The UPDATE adding an amount to one row's spend, as the driver's own SQL."""
    amount, ident = _marks(dialect, 2)
    return f"UPDATE {table} SET spend = spend + {amount} WHERE {pk} = {ident}"
