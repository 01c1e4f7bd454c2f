"""Widgets shared by the screens of the terminal UI (tables, plots, curves).
They import textual and the store's value types only; no screen, no I/O."""
