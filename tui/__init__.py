"""tunelab's faces: the `tunelab` command (`cli/`) and the one Textual app (`app.py`,
`screens/`, `widgets/`, `app.tcss`). May import engine, store, textual, rich; never SQL itself."""
