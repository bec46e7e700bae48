"""Widgets the screens share: the virtual runs table, the screen tabs, the status line, curves, log, images."""
