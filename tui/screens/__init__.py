"""The screens of the terminal UI, one module each, all belonging to `tui.app.TunelabApp`.
They read the store through `tui.source` and `tunelab.store` in workers; no SQL, no torch at import."""
