"""The conformance report: totals, an op-by-op table, and JSON, Markdown and HTML files."""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["OUTCOMES", "summary_line", "by_op", "write_report"]

OUTCOMES = ("passed", "failed", "unsupported", "xfailed")
OP_COLUMNS = ("op", "domain", "opsets", "dtypes", *OUTCOMES, "first_failure")


def summary_line(cases: list[dict[str, Any]]) -> str:
    counts = Counter(case["outcome"] for case in cases)
    return ", ".join(f"{counts[o]} {o}" for o in OUTCOMES)


def by_op(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (domain, op): a case counts under every op its graph uses."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for case in cases:
        for domain, op, opset in case["ops"]:
            row = rows.setdefault((domain, op), {
                "op": op, "domain": domain, "opsets": set(), "dtypes": set(),
                **dict.fromkeys(OUTCOMES, 0), "first_failure": "",
            })
            row["opsets"].add(opset)
            row["dtypes"].update(case["dtypes"])
            row[case["outcome"]] += 1
            if case["outcome"] == "failed" and not row["first_failure"]:
                row["first_failure"] = f"{case['name']}: {case['message']}"
    return [
        {**row, "opsets": sorted(row["opsets"]), "dtypes": sorted(row["dtypes"])}
        for _, row in sorted(rows.items())
    ]


def _cell(value: Any) -> str:
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _markdown_table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]).replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        f'<tr class="{html.escape(str(row.get("outcome", "")))}">'
        + "".join(f"<td>{html.escape(_cell(row[c]))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(data: dict[str, Any]) -> list[tuple[str, tuple[str, ...], list[dict[str, Any]]]]:
    cases = data["cases"]
    return [
        ("Provider contract", ("name", "outcome", "message"), [c for c in cases if c["kind"] == "contract"]),
        ("Operators", OP_COLUMNS, data["ops"]),
        ("Failures", ("name", "kind", "message"), [c for c in cases if c["outcome"] == "failed"]),
        ("Expected failures", ("name", "kind", "message"), [c for c in cases if c["outcome"] == "xfailed"]),
    ]


def _header(data: dict[str, Any]) -> list[str]:
    p = data["provider"]
    state = "available" if p["available"] else f"unavailable: {p['reason']}"
    return [
        f"provider {p['name']} ({p['distribution']} {p['version']}), device {p['device']}, {state}",
        f"{data['mode']} run, onnx {data['onnx']}, expected failures from {data['expected_failures']['file']}",
        data["summary"],
    ]


def write_report(directory: str | Path, data: dict[str, Any]) -> list[Path]:
    """Write report.json, report.md and report.html into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    title = f"ortcore conformance: {data['provider']['name']}"
    md = [f"# {title}", "", *(f"{line}  " for line in _header(data))]
    body = [f"<h1>{html.escape(title)}</h1>", *(f"<p>{html.escape(line)}</p>" for line in _header(data))]
    for heading, columns, rows in _sections(data):
        md += ["", f"## {heading} ({len(rows)})", "", _markdown_table(columns, rows) if rows else "none"]
        body += [f"<h2>{heading} ({len(rows)})</h2>", _html_table(columns, rows) if rows else "<p>none</p>"]
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 6px;font-size:13px;vertical-align:top}tr.failed{background:#fdd}"
    )
    paths = [out / "report.json", out / "report.md", out / "report.html"]
    paths[0].write_text(json.dumps(data, indent=1) + "\n")
    paths[1].write_text("\n".join(md) + "\n")
    paths[2].write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    return paths
