"""Regenerate the marked tables of docs/performance.md from the raw benchmark output in benchmarks/results/.

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("markdown", nargs="?", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--check", action="store_true", help="only report whether the tables are current")
    args = parser.parse_args()
    text = args.markdown.read_text(encoding="utf-8")
    result = render_markdown(text, ROOT)
    for missing in result.missing:
        print(f"not measured yet: {missing}")
    if args.check:
        current = result.text == text
        print(f"{args.markdown}: {'current' if current else 'out of date'} ({len(result.rendered)} table(s))")
        return 0 if current else 1
    args.markdown.write_text(result.text, encoding="utf-8")
    print(f"{args.markdown}: {len(result.rendered)} table(s) rendered: {', '.join(result.rendered) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
