"""``python -m sqlqueue``: the ``sqlqueue`` command."""

from __future__ import annotations

from sqlqueue.cli import main

# Guarded: process-pool children (multiprocessing's spawn) import the parent's __main__.
if __name__ == "__main__":
    main()
