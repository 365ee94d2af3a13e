"""Regenerate the marked tables of the docs (performance.md, hardware.md) from the raw benchmark output in
benchmarks/results/.

    python benchmarks/render_tables.py            # rewrite the tables whose JSON file exists
    python benchmarks/render_tables.py --check    # exit 1 if a table differs from its JSON

A table is marked by ``<!-- table from benchmarks/results/NAME.json#TABLE; made by: COMMAND -->`` and
``<!-- end of table -->`` (hqdm.bench.results). Tables whose JSON file does not exist yet are left alone
and listed with the command that measures them.
"""

import argparse
import sys
from pathlib import Path

from hqdm.bench.results import render_markdown

ROOT = Path(__file__).resolve().parents[1]
#: the docs that hold marked tables
DOCS = (ROOT / "docs" / "performance.md", ROOT / "docs" / "hardware.md")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "markdown", nargs="*", type=Path, default=DOCS, help="default: " + ", ".join(d.name for d in DOCS)
    )
    parser.add_argument("--check", action="store_true", help="only report whether the tables are current")
    args = parser.parse_args()
    stale = 0
    for markdown in args.markdown:
        text = markdown.read_text(encoding="utf-8")
        result = render_markdown(text, ROOT)
        for missing in result.missing:
            print(f"not measured yet: {missing}")
        if args.check:
            current = result.text == text
            stale += not current
            print(f"{markdown}: {'current' if current else 'out of date'} ({len(result.rendered)} table(s))")
        else:
            markdown.write_text(result.text, encoding="utf-8")
            print(
                f"{markdown}: {len(result.rendered)} table(s) rendered: {', '.join(result.rendered) or '-'}"
            )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
