"""One page of rows that belong to an owner (a team, or a key without one): files,
cached contents and batches are listed the same way.

A page is newest first, `size` rows after `after` (the created_at and id of the last row
of the previous page), narrowed to one owner unless `all_owners` (the master key), and to
the rows one key made when `key_hash` is given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select

__all__ = ["owned_page"]

Query = TypeVar("Query", bound=Select[Any])


def owned_page(
    query: Query,
    table: Any,
    ident: Any,
    owner: str | None,
    all_owners: bool,
    after: tuple[datetime, str] | None,
    size: int,
    key_hash: str | None = None,
) -> Query:
    """`query` (a select of `table`, whose id column is `ident`) narrowed to one page."""
    if not all_owners:
        query = query.where(table.owner.is_(None) if owner is None else table.owner == owner)
    if key_hash is not None:  # made by this key
        query = query.where(table.key_hash == key_hash)
    if after is not None:
        created, last = after
        query = query.where(
            (table.created_at < created) | ((table.created_at == created) & (ident < last))
        )
    return query.order_by(table.created_at.desc(), ident.desc()).limit(size)
