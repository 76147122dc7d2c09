"""What every dashboard shares: connecting from the environment Voila gives it, the header, tables, notices.

Voila starts one kernel per page with the environment of `fedbench dashboards`: `FEDBENCH_HOME` (a node
home or a sandbox home) and `FEDBENCH_PARTY` choose whose node the dashboard talks to.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

import fedbench
from fedbench.client.workbench import Workbench
from fedbench.errors import FedbenchError, NodeUnavailable
from fedbench.ui.style import style_sheet

__all__ = [
    "DashboardApp",
    "Notice",
    "UnavailablePage",
    "card",
    "connect_from_env",
    "download_link",
    "figure_box",
    "format_when",
    "header",
    "labelled",
    "table_html",
    "unavailable_page",
]

HOME_VARIABLE = "FEDBENCH_HOME"
PARTY_VARIABLE = "FEDBENCH_PARTY"


def connect_from_env() -> Workbench:
    """`fedbench.connect()` on the node named by `$FEDBENCH_HOME` / `$FEDBENCH_PARTY` (each optional)."""
    home = os.environ.get(HOME_VARIABLE) or None
    party = os.environ.get(PARTY_VARIABLE) or None
    return fedbench.connect(party=party, home=home)


class UnavailablePage(widgets.VBox):
    """What a dashboard shows instead of a traceback when our node cannot be reached: what is wrong, the
    command that starts the node, and a Retry button that builds the dashboard in place once the node answers.

    `retry` builds the dashboard again (it returns the app, or another `UnavailablePage` if the node still
    cannot be reached). A pre-heated page retries by itself when it is opened (the `fb-refresh-on-open`
    button that the `fedbench` Voila template clicks).
    """

    def __init__(
        self, title: str, problem: FedbenchError, retry: Callable[[], widgets.Widget] | None = None
    ) -> None:
        super().__init__()
        self.page_title = title
        self.problem = problem
        self._retry = retry
        self.message = widgets.HTML()
        self.message.add_class("fb-unavailable-message")
        self.retry_button = widgets.Button(
            description="Retry",
            button_style="primary",
            tooltip="try to reach the node again",
            layout=widgets.Layout(display="" if retry else "none", width="auto"),
        )
        self.retry_button.add_class("fb-retry")
        self.retry_button.on_click(lambda _button: self.retry())
        on_open = widgets.Button(description="retry", layout=widgets.Layout(display="none"))
        on_open.add_class("fb-refresh-on-open")
        on_open.on_click(lambda _button: self.retry())
        self._show(problem, again=False)
        self.children = (style_sheet(), *([on_open] if retry else []), self.message, self.retry_button)
        self.add_class("fb-app")
        self.add_class("fb-app-unavailable")

    @property
    def value(self) -> str:
        """The message shown, as HTML."""
        return str(self.message.value)

    def retry(self) -> None:
        """Build the dashboard again: shown in place of this message if our node answers now."""
        if self._retry is None:
            return
        try:
            built = self._retry()
        except FedbenchError as exc:
            self._show(exc, again=True)
            return
        if isinstance(built, UnavailablePage):
            self._show(built.problem, again=True)
            return
        self.children = (built,)
        self.remove_class("fb-app-unavailable")
        self.remove_class("fb-app")

    def _show(self, problem: FedbenchError, *, again: bool) -> None:
        self.problem = problem
        command = problem.command if isinstance(problem, NodeUnavailable) else None
        action = "press Retry" if self._retry else "reload this page"
        if command:
            todo = f"Run <code>{escape(command)}</code> on the node's machine, then {action}."
        elif isinstance(problem, NodeUnavailable):
            todo = f"Once the node runs again, {action}."
        else:
            todo = (
                "Start the node (<code>fedbench node start --home &lt;its home&gt;</code>, or "
                f"<code>fedbench sandbox up</code> to try fedbench), then {action}."
            )
        still = '<div class="fb-help fb-still">Still not reachable.</div>' if again else ""
        self.message.value = (
            f'<div class="fb-app-title">{escape(self.page_title)}</div><div class="fb-message">This dashboard cannot '
            f"reach your organisation's node. {_code_spans(escape(str(problem)))}</div>"
            f'<div class="fb-help">{todo}</div>{still}'
        )


def _code_spans(text: str) -> str:
    """Escaped text with its `backquoted` commands set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def unavailable_page(
    title: str, problem: FedbenchError, retry: Callable[[], widgets.Widget] | None = None
) -> UnavailablePage:
    """The page a dashboard shows instead of a traceback when our node cannot be reached (see `UnavailablePage`)."""
    return UnavailablePage(title, problem, retry)


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
