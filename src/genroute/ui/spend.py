"""The Spend page: spend over time by key, team, end user or model, per day or hour, as a
chart and the table behind it, for a date range; and the same rows as a CSV download.

The numbers are the management API's `/global/spend/report` (the spend ledger of every
instance), asked for the range's whole UTC days.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from genroute.errors import InvalidRequest
from genroute.ui.chart import stacked_bars
from genroute.ui.context import Page
from genroute.ui.http import Response, with_query

__all__ = ["GROUPS", "MAX_DAYS", "MAX_HOURLY_DAYS", "SpendQuery", "csv_download", "page"]

GROUPS = {"key": "Key", "team": "Team", "end_user": "End user", "model": "Model"}
BUCKETS = {"day": "Day", "hour": "Hour"}
MAX_DAYS = 366
MAX_HOURLY_DAYS = 7
MAX_SERIES = 8  # the biggest spenders; the rest are one series, "other"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class SpendQuery:
    """The page's choices: a range of whole UTC days, a grouping and a bucket."""

    start: date
    end: date  # inclusive
    group: str
    bucket: str

    @classmethod
    def parse(cls, query: dict[str, str], today: date | None = None) -> SpendQuery:
        """From the page's query string (the last 7 days by key per day by default);
        InvalidRequest naming the field for a bad value."""
        today = today or datetime.now(UTC).date()
        end = _day(query.get("end"), "End", today)
        start = _day(query.get("start"), "Start", end - timedelta(days=6))
        group = query.get("group") or "key"
        bucket = query.get("bucket") or "day"
        if group not in GROUPS:
            raise InvalidRequest(f"Group by: one of {', '.join(GROUPS)}")
        if bucket not in BUCKETS:
            raise InvalidRequest("Per: day or hour")
        if start > end:
            raise InvalidRequest("Start: after the end of the range")
        days = (end - start).days + 1
        if days > MAX_DAYS:
            raise InvalidRequest(f"Start: a range of at most {MAX_DAYS} days")
        if bucket == "hour" and days > MAX_HOURLY_DAYS:
            raise InvalidRequest(f"Per: hour is for ranges of at most {MAX_HOURLY_DAYS} days")
        return cls(start, end, group, bucket)

    def params(self) -> dict[str, str]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "group": self.group,
            "bucket": self.bucket,
        }

    def periods(self) -> list[str]:
        """Every day (`2026-12-03`) or hour (`2026-12-03 14:00`) of the range, as the
        report names them."""
        days = [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]
        if self.bucket == "day":
            return [d.isoformat() for d in days]
        return [f"{d.isoformat()} {h:02d}:00" for d in days for h in range(24)]


def _day(value: str | None, label: str, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{label}: {value[:40]!r} is not a date (YYYY-MM-DD)") from None


def _label(group: str, row: dict[str, Any], master_hash: str) -> str:
    value = row.get(group)
    if group == "key":
        if value == master_hash:
            return "master key"
        if row.get("key_alias"):
            return str(row["key_alias"])
        return f"key {str(value)[:8]}…" if value else "(no key)"
    return str(value) if value not in (None, "") else f"(no {GROUPS[group].lower()})"


async def _report(page: Page, choice: SpendQuery) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await page.api(
        "GET",
        "/global/spend/report",
        group_by=choice.group,
        bucket=choice.bucket,
        start_date=choice.start.isoformat(),
        end_date=(choice.end + timedelta(days=1)).isoformat(),
    )
    for row in rows:
        row["label"] = _label(choice.group, row, page.signer.master_hash)
        row["period"] = row[choice.bucket]
    rows.sort(key=lambda r: (r["period"], -r["spend"], r["label"]))
    return rows


def _series(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Spend per series and period: the MAX_SERIES biggest spenders, then `other`."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["label"]] = totals.get(row["label"], 0.0) + row["spend"]
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    kept = set(ranked[:MAX_SERIES]) if len(ranked) > MAX_SERIES + 1 else set(ranked)
    series: dict[str, dict[str, float]] = {name: {} for name in ranked if name in kept}
    for row in rows:
        name = row["label"] if row["label"] in kept else "other"
        values = series.setdefault(name, {})
        values[row["period"]] = values.get(row["period"], 0.0) + row["spend"]
    return series


async def page(page: Page) -> Response:
    """The Spend page."""
    query = page.request.query
    try:
        choice = SpendQuery.parse(query)
    except InvalidRequest as exc:
        fallback = SpendQuery.parse({})
        return _render(page, fallback, [], exc.message, query, 400)
    return _render(page, choice, await _report(page, choice), None, choice.params())


def _render(
    page: Page,
    choice: SpendQuery,
    rows: list[dict[str, Any]],
    error: str | None,
    values: dict[str, str],
    status: int = 200,
) -> Response:
    chart = stacked_bars(choice.periods(), _series(rows))
    name = (
        f"Spend by {GROUPS[choice.group].lower()} per {choice.bucket}, "
        f"{choice.start.isoformat()} to {choice.end.isoformat()}: total ${chart.total:,.4f}"
    )
    return page.render(
        "spend.html",
        status,
        page_name="spend",
        chart=chart,
        chart_name=name,
        rows=rows,
        choice=choice,
        values=values,
        groups=GROUPS,
        buckets=BUCKETS,
        error=error,
        total_requests=sum(r["requests"] for r in rows),
        total_refused=sum(r.get("refused", 0) for r in rows),
        csv_url=with_query("/ui/spend.csv", choice.params()),
    )


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (an alias `=cmd()`)."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


async def csv_download(page: Page) -> Response:
    """The Spend page's rows as CSV."""
    choice = SpendQuery.parse(page.request.query)
    rows = await _report(page, choice)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = [choice.bucket, choice.group]
    if choice.group == "key":
        header.append("key_alias")
    writer.writerow([*header, "requests", "refused", "prompt_tokens", "output_tokens", "spend_usd"])
    for row in rows:
        cells = [row["period"], row.get(choice.group)]
        if choice.group == "key":
            cells.append(row.get("key_alias"))
        cells += [
            row["requests"],
            row.get("refused", 0),
            row["prompt_tokens"],
            row["output_tokens"],
            f"{row['spend']:.10g}",
        ]
        writer.writerow([_cell(c) for c in cells])
    name = f"genroute-spend-{choice.group}-{choice.bucket}-{choice.start}-{choice.end}.csv"
    disposition = f'attachment; filename="{name}"'.encode("latin-1")
    return Response(
        200,
        out.getvalue().encode("utf-8"),
        [(b"content-disposition", disposition)],
        content_type=(b"content-type", b"text/csv; charset=utf-8"),
    )
