"""Where the project's own files are, in a checkout and in an installed wheel.

In a checkout the Hydra configs are the top-level ``conf/`` folder; a wheel carries the same files as
``benchmarks/conf`` (``pyproject.toml`` maps that package onto ``conf/``). Everything that reads a config
group asks :data:`CONF_DIR`, never a path of its own.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: the Hydra config folder: ``benchmarks/conf`` in an installed wheel, else the checkout's ``conf/``
CONF_DIR = PACKAGE / "conf" if (PACKAGE / "conf" / "config.yaml").is_file() else PACKAGE.parent / "conf"
DATA_DIR = PACKAGE / "data"  # files shipped with the package: published.json, the example handbook
