"""The look of fedbench's widgets: one style sheet for the `fb-*` classes, shipped as an HTML widget.

Forms and dashboards include `style_sheet()` once, so they look the same in JupyterLab and in Voila (where
the `fedbench` template adds the page frame around them).
"""

from __future__ import annotations

import ipywidgets as widgets

__all__ = ["CSS", "row", "style_sheet"]

CSS = """
.fb-app, .fb-form, .fb-monitor { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: #24292f; font-size: 13px; }
.fb-app { max-width: 1080px; }
.fb-app-title { font-size: 22px; font-weight: 600; margin: 4px 0 2px 0; }
.fb-party-chip { display: inline-block; border-radius: 12px; padding: 2px 10px; background: #ddf4ff;
  color: #0969da; font-size: 12px; font-weight: 600; vertical-align: middle; margin-left: 8px; }
.fb-card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px 14px 16px;
  margin: 10px 0 14px 0; background: #ffffff; }
.fb-section { font-weight: 600; font-size: 15px; margin: 8px 0 6px 0; color: #24292f; }
.fb-help { color: #57606a; font-size: 12px; }
.fb-label { font-weight: 600; }
.fb-required { color: #cf222e; }
.fb-param-name { color: #8c959f; font-size: 11px; background: none; }
.fb-message { color: #cf222e; }
.fb-ok { color: #1a7f37; }
.fb-field-invalid input, .fb-field-invalid textarea, .fb-field-invalid select {
  border-color: #cf222e !important; }
.fb-table { border-collapse: collapse; font-size: 12px; margin: 4px 0; }
.fb-table th { text-align: left; color: #57606a; font-weight: 600; border-bottom: 1px solid #d0d7de; }
.fb-table th, .fb-table td { padding: 3px 10px 3px 0; border-bottom: 1px solid #eaeef2; text-align: left;
  vertical-align: top; }
.fb-state { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px;
  background: #eaeef2; color: #57606a; }
.fb-state-active, .fb-state-succeeded, .fb-state-reused { background: #dafbe1; color: #1a7f37; }
.fb-state-pending, .fb-state-proposed, .fb-state-running, .fb-state-queued { background: #fff8c5;
  color: #9a6700; }
.fb-state-revoked, .fb-state-failed, .fb-state-rejected, .fb-state-cancelled, .fb-state-suspended {
  background: #ffebe9; color: #cf222e; }
.fb-log-lines { max-height: 180px; overflow: auto; font-size: 11px; margin: 0; }
.fb-json { font-size: 12px; margin: 2px 0; }
.fb-form-title { font-size: 13px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; margin-bottom: 4px; }
.fb-form-title b { font-size: 17px; margin-right: 8px; }
.fb-muted { color: #8c959f; font-style: italic; }
.fb-terms { margin: 2px 0 8px 0 !important; padding-left: 22px !important; }
.fb-terms li { margin: 0 !important; line-height: 1.6; }
.fb-project-audit { max-height: 340px; overflow: auto; }
.fb-app-header { flex: 1 1 auto; }
.fb-row { gap: 8px 20px; align-items: center; flex-wrap: wrap; }
.fb-row-top { align-items: flex-start; }
.fb-choice-set { gap: 2px 28px; }
.fb-download { display: inline-block; border-radius: 6px; padding: 6px 14px; margin: 6px 0; background: #1f6feb;
  color: #ffffff !important; font-weight: 600; text-decoration: none !important; }
.fb-download:hover { background: #0969da; }
.fb-figures { display: flex; flex-wrap: wrap; gap: 10px 14px; margin: 8px 0; }
.fb-figure { border: 1px solid #d0d7de; border-radius: 8px; padding: 8px 14px; min-width: 130px; }
.fb-figure-value { font-size: 22px; font-weight: 600; }
.fb-figure-label { color: #57606a; font-size: 12px; }
.fb-plots { display: flex; flex-wrap: wrap; gap: 8px 16px; margin: 8px 0; align-items: flex-start; }
.fb-plot { max-width: 100%; height: auto; }
.fb-subsection { font-weight: 600; font-size: 13px; margin: 10px 0 4px 0; }
.fb-reuse { margin: 6px 0; padding: 6px 10px; border-left: 3px solid #2da44e; background: #f6f8fa; }
"""


def style_sheet() -> widgets.HTML:
    """An (invisible) widget carrying fedbench's style sheet."""
    sheet = widgets.HTML(f"<style>{CSS}</style>", layout=widgets.Layout(height="0px", margin="0"))
    sheet.add_class("fb-style")
    return sheet


def row(children: list[widgets.Widget], *, top: bool = False) -> widgets.HBox:
    """Widgets side by side with even spacing (wrapping when narrow); `top` aligns them at the top."""
    box = widgets.HBox(children)
    box.add_class("fb-row")
    if top:
        box.add_class("fb-row-top")
    return box
