"""bench/run.py, with its tables kept out of bench/results.md (run by hand, not a test).

    .venv/bin/python bench/perf_run.py --label NAME [bench/run.py's arguments]

Runs `bench/run.py` with the same arguments, but writes the markdown blocks to
bench/.work/perf/NAME.md and the raw numbers to bench/.work/perf/NAME.json instead of
bench/results.md and bench/.work/results.json: for measuring a change before and after
without touching the results file that is kept by hand.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import results_file
import run
from harness import WORK

OUT = WORK / "perf-runs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--label", required=True)
    ours, rest = parser.parse_known_args()
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"{ours.label}.md"
    original = results_file.update_file

    def update_file(path: Path, blocks: dict[str, str]) -> None:
        original(target, blocks)

    results_file.update_file = update_file  # type: ignore[assignment]
    code = run.main(rest)
    if (WORK / "results.json").exists():
        shutil.copy(WORK / "results.json", OUT / f"{ours.label}.json")
    print(f"tables in {target}")
    return code


if __name__ == "__main__":
    sys.exit(main())
