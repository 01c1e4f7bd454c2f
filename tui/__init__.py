"""tunelab's faces: the command line (cli.py) and, later, the Textual app."""
