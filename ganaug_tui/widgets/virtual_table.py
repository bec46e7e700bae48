"""A virtual table (Textual's line API): it draws only the rows on screen.

Why not ``DataTable``: adding 10,000 rows to it costs ~1.5 s of the event loop, paid before the first useful
paint and again whenever rows are added. Here a refresh replaces one list and draws the visible window; a
row's cells are formatted when it scrolls into view. Columns that do not fit the width are dropped in order
of importance, so an 80-column terminal still shows the columns that matter most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Row = TypeVar("Row")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # the minimum; ``flex`` columns share what is left
    priority: int  # lower = dropped last when the table is narrow
    flex: int = 0
    right: bool = False


def layout(width: int, columns: tuple[Column, ...]) -> list[tuple[Column, int]]:
    """The columns that fit ``width`` (one space between two), in display order, with their widths."""
    shown = sorted(columns, key=lambda c: c.priority)
    while shown and sum(c.width for c in shown) + len(shown) - 1 > width:
        shown.pop()
    spare = width - (sum(c.width for c in shown) + len(shown) - 1)
    flex = sum(c.flex for c in shown)
    widths = {c.key: c.width + (spare * c.flex // flex if flex else 0) for c in shown}
    if flex:  # rounding leftovers go to the first flexible column
        first = next(c for c in shown if c.flex)
        widths[first.key] += width - (sum(widths.values()) + len(shown) - 1)
    keep = {c.key for c in shown}
    return [(c, widths[c.key]) for c in columns if c.key in keep]


class VirtualTable(ScrollView, Generic[Row], can_focus=True):
    """Rows with stable keys; the cursor stays on its row when a refresh reorders or adds rows.

    ``key_of(row)`` names a row, ``cell(row, column_key)`` formats one cell, and ``style_of(row)`` (optional)
    gives the component class that colours a row's ``styled`` column."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", id="table.up", show=False, tooltip="Previous row"),
        Binding("down,j", "move(1)", "Down", id="table.down", show=False, tooltip="Next row"),
        Binding("pageup", "page(-1)", "Page up", id="table.page_up", show=False, tooltip="One screen up"),
        Binding("pagedown", "page(1)", "Page down", id="table.page_down", show=False, tooltip="One screen down"),
        Binding("home", "jump(0)", "First", id="table.first", show=False, tooltip="First row"),
        Binding("end", "jump(-1)", "Last", id="table.last", show=False, tooltip="Last row"),
    ]
    COMPONENT_CLASSES = {"virtual-table--header", "virtual-table--cursor", "virtual-table--odd"}
    DEFAULT_CSS = """
    VirtualTable { height: 1fr; overflow-x: hidden; }
    VirtualTable > .virtual-table--header { text-style: bold; color: $text-muted; background: $panel; }
    VirtualTable > .virtual-table--cursor { background: $block-cursor-blurred-background; }
    VirtualTable:focus > .virtual-table--cursor { background: $block-cursor-background;
                                                  color: $block-cursor-foreground; text-style: bold; }
    VirtualTable > .virtual-table--odd { background: $boost; }
    """

    cursor: reactive[int] = reactive(0)

    class Highlighted(Message):
        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    class Chosen(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, columns: tuple[Column, ...], key_of: Callable[[Row], str], cell: Callable[[Row, str], str],
                 *, styled: str | None = None, style_of: Callable[[Row], str] | None = None,
                 empty_text: str = "nothing to show", id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.key_of, self.cell, self.styled, self.style_of = key_of, cell, styled, style_of
        self.empty_text = empty_text
        self.rows: list[Row] = []
        self._row_of: dict[str, int] = {}

    # ------------------------------------------------------------------ data
    def set_rows(self, rows: list[Row]) -> None:
        """Show ``rows`` in this order; the cursor follows the row it was on."""
        keep = self.selected_key
        self.rows = rows
        self._row_of = {self.key_of(r): i for i, r in enumerate(rows)}
        self.virtual_size = Size(self.size.width, len(rows) + 1)
        at = self._row_of.get(keep) if keep is not None else None
        with self.prevent(self.Highlighted):
            self.cursor = at if at is not None else min(self.cursor, max(0, len(rows) - 1))
        self._keep_cursor_visible()
        self.refresh()
        if keep != self.selected_key:
            self.post_message(self.Highlighted(self.selected_key))

    def select_key(self, key: str) -> None:
        if (at := self._row_of.get(key)) is not None:
            self.cursor = at

    @property
    def selected_key(self) -> str | None:
        row = self.selected
        return None if row is None else self.key_of(row)

    @property
    def selected(self) -> Row | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    # ------------------------------------------------------------------ cursor
    def watch_cursor(self, old: int, new: int) -> None:
        self._keep_cursor_visible()
        self.refresh()
        if old != new:
            self.post_message(self.Highlighted(self.selected_key))

    def _keep_cursor_visible(self) -> None:
        rows = max(1, self.scrollable_content_region.height - 1)
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= self.scroll_y + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True)

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.scrollable_content_region.height - 2))

    def action_jump(self, row: int) -> None:
        if self.rows:
            self.cursor = row % len(self.rows)

    def action_choose(self) -> None:
        if (key := self.selected_key) is not None:
            self.post_message(self.Chosen(key))

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_y) + event.y - 1
        if event.y >= 1 and 0 <= row < len(self.rows):
            if row == self.cursor and event.chain > 1:
                self.action_choose()
            self.cursor = row

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        self._keep_cursor_visible()

    # ------------------------------------------------------------------ drawing
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        cols = layout(width, self.columns)
        if y == 0:
            return self._strip([c.title for c, _ in cols], cols, self.get_component_rich_style(
                "virtual-table--header"), width)
        at = int(self.scroll_y) + y - 1
        if at >= len(self.rows):
            if at == 0:
                return Strip([Segment(self.empty_text.center(width), self.rich_style + Style(dim=True))], width)
            return Strip.blank(width, self.rich_style)
        row = self.rows[at]
        base = self.rich_style
        if at == self.cursor:
            base = base + self.get_component_rich_style("virtual-table--cursor")
        elif at % 2:
            base = base + self.get_component_rich_style("virtual-table--odd")
        accent = self.get_component_rich_style(self.style_of(row), partial=True) if self.style_of else None
        return self._strip([self.cell(row, c.key) for c, _ in cols], cols, base, width, accent)

    def _strip(self, cells: list[str], cols: list[tuple[Column, int]], base: Style, width: int,
               accent: Style | None = None) -> Strip:
        segments: list[Segment] = []
        for i, (value, (col, w)) in enumerate(zip(cells, cols, strict=True)):
            if i:
                segments.append(Segment(" ", base))
            shown = value if len(value) <= w else value[:max(0, w - 1)] + "…"
            shown = shown.rjust(w) if col.right else shown.ljust(w)
            segments.append(Segment(shown, base + accent if accent and col.key == self.styled else base))
        return Strip(segments).crop_extend(0, width, base)


