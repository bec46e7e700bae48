"""Images in the terminal (textual-image): Kitty's graphics protocol or Sixel where the terminal has them,
half-cell blocks otherwise.

textual-image asks the terminal what it supports when it is imported, which only works before Textual owns the
terminal: ``ganaug_tui.cli`` imports this module before the app starts. ``GANAUG_TUI_IMAGES`` picks a renderer
by hand (``auto``, ``tgp``, ``sixel``, ``halfcell``, ``unicode``): for a terminal that answers the probe wrongly,
and for tests, whose screenshots must not depend on the terminal they run in.
"""

from __future__ import annotations

import os

from textual.widget import Widget
from textual_image import widget as tiw

IMAGES_ENV = "GANAUG_TUI_IMAGES"
RENDERERS: dict[str, type[Widget]] = {
    "auto": tiw.Image, "tgp": tiw.TGPImage, "sixel": tiw.SixelImage, "halfcell": tiw.HalfcellImage,
    "unicode": tiw.UnicodeImage,
}


def picture(image: object = None, *, id: str | None = None, classes: str | None = None) -> Widget:
    """An image widget of the renderer ``GANAUG_TUI_IMAGES`` names (default: what the terminal supports)."""
    choice = os.environ.get(IMAGES_ENV, "auto").lower()
    cls = RENDERERS.get(choice, RENDERERS["auto"])
    return cls(image, id=id, classes=classes)  # type: ignore[call-arg]
