"""Start the web chat on the bundled documents: `python app.py`, then open http://127.0.0.1:7860.

Settings come from docqa.toml and DOCQA_* variables as for the CLI (`docqa serve` does the same).
Relative paths (docs/, index/, docqa.toml) are read from this file's folder, wherever it is run from.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    from docqa.errors import DocqaError
    from docqa.settings import Settings

    os.chdir(Path(__file__).resolve().parent)
    try:
        from docqa.serve.web import serve

        serve(Settings.load())
    except DocqaError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
