"""Raw benchmark output: every ``hqdm bench`` table as JSON, and markdown tables rendered back from it.

A :class:`Table` holds what one benchmark measured: ``info`` (the machine line, peer versions, settings
that shape the table) and ``rows`` (one JSON object per measurement, with its parameters). Its printed
lines come from a formatter of ``(info, rows)`` alone, the same one the live command prints through, so
a table rendered from a JSON file is the table the run printed.

``hqdm bench ... --json PATH`` writes a record: the command, start time, git commit and the tables.
Markdown files mark generated tables with a pair of comments::

    <!-- table from benchmarks/results/quantum.json#quantum; made by: hqdm bench quantum ... -->
    ...
    <!-- end of table -->

and :func:`render_markdown` replaces what is between them with the table rendered from that file
(``python benchmarks/render_tables.py``).
"""

from __future__ import annotations

import datetime
import importlib
import json
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1

#: kind -> "module:function" of the formatter ``(info, rows) -> printed lines``.
FORMATTERS = {
    "quantum": "hqdm.bench.quantum:format_quantum",
    "depth": "hqdm.bench.quantum:format_depth",
    "train-step": "hqdm.bench.compute:format_train_step",
    "sample": "hqdm.bench.compute:format_sample",
    "fid": "hqdm.bench.compute:format_fid",
    "workers": "hqdm.bench.workers:format_workers",
    "floor": "hqdm.bench.floor:format_floor",
    "readout": "hqdm.bench.readout:format_readout",
}

MARKER = re.compile(
    r"(?P<open><!-- table from (?P<source>[^#\s]+)#(?P<table>[\w-]+); made by: (?P<command>[^>]*?) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- end of table -->)",
    re.DOTALL,
)


@dataclass
class Table:
    """One benchmark's measurements; :meth:`lines` is exactly what the command printed for them."""

    kind: str
    info: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        if self.kind not in FORMATTERS:
            raise ValueError(f"unknown benchmark table kind {self.kind!r}; known: {', '.join(FORMATTERS)}")
        module, _, name = FORMATTERS[self.kind].partition(":")
        formatter: Callable[[dict, list[dict]], list[str]] = getattr(importlib.import_module(module), name)
        return formatter(self.info, self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "info": self.info, "rows": self.rows}


def command_line(kind: str, options: Mapping[str, object]) -> str:
    """``hqdm bench KIND --opt value ...`` with every option spelled out (flags only when set)."""
    words = ["hqdm", "bench", kind]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is not None and value is not False:
            words += [flag, str(value)]
    return shlex.join(words)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_state() -> dict[str, Any]:
    """The git commit of the hqdm source that ran (None outside a checkout) and whether src/ had edits."""
    commit = _git("rev-parse", "--short", "HEAD")
    changes = _git("status", "--porcelain", "--", ".") if commit else None
    return {"commit": commit, "local_changes": bool(changes)}


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_record(command: str, started: str, tables: Mapping[str, Table]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "command": command,
        "started": started,
        "finished": utc_now(),
        **source_state(),
        "tables": {name: table.as_dict() for name, table in tables.items()},
    }


def write_record(path: str | Path, record: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def read_table(path: str | Path, name: str) -> tuple[dict[str, Any], Table]:
    """The record in ``path`` and its table ``name``; errors say which file and which table."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: benchmark record schema {record.get('schema')!r}, expected {SCHEMA}")
    tables = record["tables"]
    if name not in tables:
        raise ValueError(f"{path} has no table {name!r}; it has {', '.join(tables)}")
    raw = tables[name]
    return record, Table(raw["kind"], raw["info"], raw["rows"])


def markdown_block(record: dict[str, Any], table: Table, source: str) -> str:
    """The docs version of a table: where it comes from, its notes as a list, then the table itself."""
    commit = record["commit"] or "unknown commit"
    if record["local_changes"]:
        commit += " with local changes"
    lines = [f"Rendered from `{source}`: `{record['command']}`, started {record['started']} at {commit}.", ""]
    printed = table.lines()
    notes = [line[2:] for line in printed if line.startswith("# ")]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    lines += [line for line in printed if line.startswith("|")]
    return "\n".join(lines) + "\n"


@dataclass
class RenderResult:
    text: str
    rendered: list[str] = field(default_factory=list)  # "source#table" of every block replaced
    missing: list[str] = field(default_factory=list)  # "source#table: command" of blocks without a file


def render_markdown(text: str, root: str | Path) -> RenderResult:
    """``text`` with every marked table replaced by its rendering; sources are relative to ``root``.

    A block whose JSON file does not exist yet is left as it is and reported in ``missing`` with the
    command that makes the file.
    """
    result = RenderResult(text)

    def replace(match: re.Match[str]) -> str:
        source, name = match["source"], match["table"]
        path = Path(root) / source
        if not path.is_file():
            result.missing.append(f"{source}#{name}: {match['command']}")
            return match[0]
        record, table = read_table(path, name)
        result.rendered.append(f"{source}#{name}")
        return match["open"] + markdown_block(record, table, source) + match["close"]

    result.text = MARKER.sub(replace, text)
    return result
