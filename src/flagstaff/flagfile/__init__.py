"""Flag files: flags as code, the demo data and the SDK's offline mode (contract §8).

``loads``/``load_file`` read YAML or JSON in the canonical format or the spec's format and
return canonical, engine-validated definitions; every problem is a :class:`FlagFileError`
whose message names ``file:line``.  ``dumps`` writes the canonical format back, so
``loads(dumps(...))`` round-trips exactly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flagstaff.flagfile.dumper import dumps
from flagstaff.flagfile.errors import FlagFileError
from flagstaff.flagfile.loader import SERVER_MANAGED, FlagFile, load_file, loads
from flagstaff.flagfile.pipeline import (
    DEFAULT_PIPELINE,
    environments_in_pipeline_order,
    in_pipeline_order,
    pipeline_order,
)

__all__ = [
    "DEFAULT_PIPELINE",
    "SERVER_MANAGED",
    "FlagFile",
    "FlagFileError",
    "demo_path",
    "dumps",
    "environments_in_pipeline_order",
    "in_pipeline_order",
    "load_file",
    "loads",
    "pipeline_order",
]


def demo_path() -> Path:
    """The bundled demo file: the spec's four predefined flags, in the spec's format."""
    return Path(str(resources.files(__package__).joinpath("demo.yaml")))
