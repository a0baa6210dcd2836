"""The `surblocage-collector` command's entry point: the collector's stack, or a clear error.

The base install is the probe's (pyproject.toml): a volunteer's machine gets no database driver.
Run without the `collector` extra, the command says what to install instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Top-level modules the collector imports from its `collector` and `parquet` extras.
EXTRA_MODULES = frozenset(
    {"sqlalchemy", "alembic", "psycopg", "prometheus_client", "maxminddb", "msgspec"}
)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from collector import cli
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] not in EXTRA_MODULES:
            raise
        print(
            f"surblocage-collector: error: {e.name} is not installed; the collector needs its "
            "extra: pip install 'surblocage[collector]'",
            file=sys.stderr,
        )
        return 1
    return cli.main(argv)
