"""`medslim report`: one standalone HTML file to inspect a study and pick a model.

Compute, then draw: `report_data` gathers plain data, `report_figures` turns it into
sections (figures and tables), and `write_report` writes one HTML page with plotly.js
inlined, so it opens without a server; its width never exceeds the window (wide tables
scroll inside their own box).
"""

from __future__ import annotations

import html
from pathlib import Path

from medslim.search.inspection.front_table import FrontTable
from medslim.search.inspection.report_data import ReportData, report_data
from medslim.search.inspection.report_figures import Section, sections
from medslim.search.inspection.report_validation import validation_data, validation_sections
from medslim.search.stored import StudyRef

STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { margin: 0 auto; padding: 0 16px 32px; max-width: 1800px;
       font-family: system-ui, sans-serif; line-height: 1.4; color: #222; }
h1 { font-size: 1.5em; overflow-wrap: anywhere; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p, li { overflow-wrap: anywhere; }
.table-box { max-width: 100%; overflow-x: auto; border: 1px solid #ddd; }
table.front, table.specs { border-collapse: collapse; font-size: 13px; white-space: nowrap; }
table.front th, table.front td, table.specs th, table.specs td {
  padding: 3px 8px; border-bottom: 1px solid #eee; }
table.front th, table.specs th {
  position: sticky; top: 0; background: #f4f4f4; text-align: center; }
table.front td.r, table.specs td.r { text-align: right; font-variant-numeric: tabular-nums; }
table.front tr.teacher { background: #fdecef; }
table.front tr.flagged td { color: #a33; }
table.front tr.details td { white-space: normal; border-bottom: 1px solid #ddd; }
table.front details summary { cursor: pointer; color: #555; font-size: 12px;
  overflow-wrap: anywhere; }
table.front .cells { display: flex; flex-wrap: wrap; gap: 2px 16px; padding: 4px 0 6px;
  font-size: 12px; }
table.front .cells span { font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
table.front .cells b { font-weight: 600; color: #555; }
table.front code { font-size: 12px; }
ul.notes { font-size: 13px; color: #444; }
table.specs tr.flagged td { color: #a33; }
h3 { font-size: 1em; margin: 1.2em 0 0.4em; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: 6px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; }
.thumbs figure { margin: 0; min-width: 170px; max-width: 270px; font-size: 11px; }
.thumbs figure.lost figcaption { color: #a33; }
.thumbs img { height: 84px; width: auto; image-rendering: pixelated; border: 1px solid #ccc; }
.plotly-graph-div { max-width: 100%; }
"""


def render_page(data: ReportData, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>medslim report: {html.escape(data.study)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(data.study)}</h1>",
        f"<p>Dataset {html.escape(data.dataset)}; {data.finished} finished trials; objectives "
        f"{html.escape(', '.join(data.objectives))}. The front is chosen on the validation "
        "split; the test split is scored once, for the teacher and the front only.</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(section.body)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    ref: StudyRef, table: FrontTable, out: Path, *, data_dir: Path | None = None
) -> ReportData:
    """The page; the validation sections (criteria, robustness, what the members forget,
    subgroups, the model card) follow the calibration figure."""
    data = report_data(ref, table)
    parts = sections(data)
    validation = validation_sections(table, validation_data(ref, table, data_dir))
    at = next((i + 1 for i, s in enumerate(parts) if s.title.startswith("Calibration")), 1)
    parts[at:at] = [Section(block.title, block.body) for block in validation]
    out.write_text(render_page(data, parts), encoding="utf-8")
    return data
