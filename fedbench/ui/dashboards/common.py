"""What every dashboard shares: connecting from the environment Voila gives it, the header, tables, notices.

Voila starts one kernel per page with the environment of `fedbench dashboards`: `FEDBENCH_HOME` (a node
home or a sandbox home) and `FEDBENCH_PARTY` choose whose node the dashboard talks to.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

import fedbench
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError
from fedbench.ui.style import style_sheet

__all__ = [
    "DashboardApp",
    "Notice",
    "card",
    "connect_from_env",
    "download_link",
    "figure_box",
    "format_when",
    "header",
    "labelled",
    "table_html",
]

HOME_VARIABLE = "FEDBENCH_HOME"
PARTY_VARIABLE = "FEDBENCH_PARTY"


def connect_from_env() -> Workbench:
    """`fedbench.connect()` on the node named by `$FEDBENCH_HOME` / `$FEDBENCH_PARTY` (each optional)."""
    home = os.environ.get(HOME_VARIABLE) or None
    party = os.environ.get(PARTY_VARIABLE) or None
    return fedbench.connect(party=party, home=home)


def unavailable_page(title: str, problem: FedbenchError) -> widgets.HTML:
    """The page a dashboard shows instead of a traceback when our node cannot be reached."""
    page = widgets.HTML(
        f'<div class="fb-app-title">{escape(title)}</div><div class="fb-message">This dashboard cannot '
        f'reach your organisation\'s node: {escape(str(problem))}</div><div class="fb-help">Start the node '
        "(<code>fedbench node start</code>, or <code>fedbench sandbox up</code> to try fedbench), then reload "
        "this page.</div>"
    )
    page.add_class("fb-app")
    page.add_class("fb-app-unavailable")
    return page


def header(workbench: Workbench, title: str, subtitle: str) -> widgets.HTML:
    """The dashboard's title, what it is for, and which party the user acts as."""
    box = widgets.HTML(
        f'<div class="fb-app-title">{escape(title)}'
        f'<span class="fb-party-chip fb-party" title="the organisation whose node this dashboard uses">'
        f"you are {escape(workbench.party)}</span></div>"
        f'<div class="fb-help">{escape(subtitle)}</div>'
    )
    box.add_class("fb-app-header")
    return box


class DashboardApp(widgets.VBox):
    """The root widget of a dashboard: style, header with the party, body; `refresh()` reloads its data.

    Voila pre-heats a kernel per dashboard (`fedbench dashboards`), so a page may have been built before it
    was opened: the `fedbench` template then clicks the hidden `fb-refresh-on-open` button, which reloads
    the data and marks the app `fb-opened`.
    """

    opened = traitlets.Bool(False, help="whether the page was opened and its data reloaded since")

    def frame(
        self,
        workbench: Workbench,
        title: str,
        subtitle: str,
        name: str,
        body: Sequence[Any],
        tools: Sequence[Any] = (),
    ) -> None:
        """Fill the app: style, header (with `tools` at its right), body; with its stable classes."""
        top = widgets.HBox(
            [header(workbench, title, subtitle), *tools], layout=widgets.Layout(align_items="center")
        )
        on_open = widgets.Button(description="reload", layout=widgets.Layout(display="none"))
        on_open.add_class("fb-refresh-on-open")
        on_open.on_click(lambda _button: self.page_opened())
        self.children = (style_sheet(), on_open, top, *body)
        self.add_class("fb-app")
        self.add_class(f"fb-app-{name}")

    def refresh(self) -> None:
        """Reload what the app shows from the node."""
        raise NotImplementedError

    def page_opened(self) -> None:
        """The page was opened: reload the data, then mark the app `fb-opened`."""
        with contextlib.suppress(FedbenchError):
            self.refresh()
        self.opened = True
        self.add_class("fb-opened")


def card(title: str, children: list[Any], css: str, help_text: str = "") -> widgets.VBox:
    """A titled, bordered section of a dashboard."""
    parts: list[Any] = [widgets.HTML(f'<div class="fb-section">{escape(title)}</div>')]
    if help_text:
        parts.append(widgets.HTML(f'<div class="fb-help">{escape(help_text)}</div>'))
    box = widgets.VBox([*parts, *children])
    box.add_class("fb-card")
    box.add_class(css)
    return box


def labelled(text: str, widget: widgets.Widget) -> widgets.VBox:
    """A widget with its label above it."""
    return widgets.VBox([widgets.HTML(f'<span class="fb-label">{escape(text)}</span>'), widget])


def figure_box(label: str, value: str, css: str) -> str:
    """One headline number with its label under it (HTML; `css` names it for tests and styling)."""
    return (
        f'<div class="fb-figure {escape(css)}"><div class="fb-figure-value">{escape(value)}</div>'
        f'<div class="fb-figure-label">{escape(label)}</div></div>'
    )


def format_when(stamp: Any, *, seconds: bool = False) -> str:
    """A timestamp as local day and time ("26 Nov 2025 14:03", with ":07" seconds if asked)."""
    if stamp is None or (isinstance(stamp, float) and pd.isna(stamp)):
        return ""
    try:
        if isinstance(stamp, pd.Timestamp):
            moment = stamp.to_pydatetime()
        elif isinstance(stamp, datetime):
            moment = stamp
        else:
            moment = datetime.fromisoformat(str(stamp))
        return moment.astimezone().strftime("%d %b %Y %H:%M" + (":%S" if seconds else ""))
    except (TypeError, ValueError):
        return str(stamp)


def table_html(frame: pd.DataFrame, empty: str = "nothing yet", *, index: bool = False) -> str:
    """A DataFrame as a compact HTML table (or a muted sentence when it is empty)."""
    if frame is None or frame.empty:
        return f'<div class="fb-muted">{escape(empty)}</div>'
    return str(
        frame.to_html(
            index=index,
            border=0,
            classes="fb-table",
            escape=True,
            na_rep="",
            float_format=lambda v: f"{v:,.6g}",
        )
    )


def download_link(
    content: bytes, file_name: str, label: str, *, mime: str = "text/csv", css: str = ""
) -> str:
    """An HTML link, drawn as a button, that saves `content` as `file_name` when clicked.

    The file travels inside the link (a `data:` URI), so no server route is needed and nothing is written on
    the node's side; that suits files of a few tens of megabytes, what a browser download is for anyway.
    """
    data = base64.b64encode(content).decode("ascii")
    return (
        f'<a class="fb-download {escape(css)}" download="{escape(file_name)}" '
        f'href="data:{escape(mime)};base64,{data}" title="{escape(file_name)}">{escape(label)}</a>'
    )


class Notice(widgets.HTML):
    """A one-line message under an action: success in green, problems in red (never a traceback)."""

    def ok(self, text: str) -> None:
        """Show a success."""
        self.value = f'<div class="fb-ok">{escape(text)}</div>'

    def problem(self, text: str) -> None:
        """Show what went wrong."""
        self.value = f'<div class="fb-message">{escape(text)}</div>'

    def clear(self) -> None:
        """Show nothing."""
        self.value = ""

    @property
    def text(self) -> str:
        """The message as plain text."""
        import html
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.value)).strip()
