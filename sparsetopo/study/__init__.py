"""Studies: grids of pruned networks -> topology features + trained accuracy -> predictors.

``config`` (TOML -> ``StudyConfig`` -> ``RunSpec`` list), ``runner.run_study`` (local or Ray),
``store`` (SQLite results, ``load_runs``, ``export``), ``features.network_features``; the
command line is ``sparsetopo study`` (``cli.app``). The names below are imported on first use
(``sparsetopo._lazy``).
"""

from __future__ import annotations

from sparsetopo._lazy import lazy_namespace

_EXPORTS = {
    **dict.fromkeys(("ConfigError", "RunSpec", "StudyConfig", "expand_runs", "load_config",
                     "load_preset", "preset_names"), "config"),
    **dict.fromkeys(("execute_run", "run_study"), "runner"),
    **dict.fromkeys(("ResultsStore", "StoreError", "export", "export_trajectories",
                     "load_runs", "load_trajectories"), "store"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
