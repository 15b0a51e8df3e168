"""Studies: grids of pruned networks -> topology features + trained accuracy -> predictors.

``config`` (TOML -> ``StudyConfig`` -> ``RunSpec`` list), ``runner.run_study`` (local or Ray),
``store`` (SQLite results, ``load_runs``, ``export``), ``features.network_features``; the
command line is ``sparsetopo study`` (``cli.app``).
"""

from sparsetopo.study.config import (
    ConfigError,
    RunSpec,
    StudyConfig,
    expand_runs,
    load_config,
    load_preset,
    preset_names,
)
from sparsetopo.study.runner import execute_run, run_study
from sparsetopo.study.store import ResultsStore, StoreError, export, load_runs

__all__ = [
    "ConfigError",
    "ResultsStore",
    "RunSpec",
    "StoreError",
    "StudyConfig",
    "execute_run",
    "expand_runs",
    "export",
    "load_config",
    "load_preset",
    "load_runs",
    "preset_names",
    "run_study",
]
