from __future__ import annotations

from sqlqueue.cli import main

main()
