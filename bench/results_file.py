"""bench/results.md: generated blocks between markers, everything else kept as written.

Each block has a name (`core`, `feature-keys`, `soak`, ...) and sits between

    <!-- generated: NAME (bench/run.py replaces this block; write outside the markers) -->
    ...
    <!-- end generated: NAME -->

A run replaces the blocks it made and leaves every other block, and every line outside the
markers, as they were. A block the file does not have yet goes after the last generated
block (or at the top of a file that has none), in the order given.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["begin", "end", "update", "update_file"]


def begin(name: str) -> str:
    return (
        f"<!-- generated: {name} (bench/run.py replaces this block; write outside the markers) -->"
    )


def end(name: str) -> str:
    return f"<!-- end generated: {name} -->"


_BEGIN = re.compile(r"^<!-- generated: ([\w.-]+) .*-->$", re.MULTILINE)


def _span(text: str, name: str) -> tuple[int, int] | None:
    """Start and end offsets of block `name`, markers included."""
    for match in _BEGIN.finditer(text):
        if match.group(1) != name:
            continue
        closing = text.find(end(name), match.end())
        if closing < 0:
            raise ValueError(f"results.md: block {name!r} has no end marker")
        return match.start(), closing + len(end(name))
    return None


def update(text: str, blocks: dict[str, str]) -> str:
    """`text` with each of `blocks` (name → markdown) replaced or added."""
    for name, body in blocks.items():
        block = f"{begin(name)}\n{body.strip()}\n{end(name)}"
        span = _span(text, name)
        if span is not None:
            text = text[: span[0]] + block + text[span[1] :]
            continue
        ends = [m.end() for m in re.finditer(r"^<!-- end generated: [\w.-]+ -->$", text, re.M)]
        at = ends[-1] if ends else 0
        before, after = text[:at], text[at:]
        sep_before = "\n\n" if before.strip() else ""
        sep_after = "\n\n" if after.strip() else "\n"
        text = before.rstrip("\n") + sep_before + block + sep_after + after.lstrip("\n")
    return text


def update_file(path: Path, blocks: dict[str, str]) -> None:
    text = path.read_text() if path.exists() else ""
    path.write_text(update(text, blocks))
