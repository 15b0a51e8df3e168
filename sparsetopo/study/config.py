"""Study configuration: a TOML file -> validated :class:`StudyConfig` -> list of :class:`RunSpec`.

Schema (every key optional except the grid lists)::

    [study]
    name = "my-study"

    [grid]
    models = ["conv6", "resnet20"]
    datasets = ["digits"]
    methods = ["uniform", "snip"]     # dense baselines (sparsity 0) are added automatically
    controls = ["layer-shuffle"]      # optional: adds METHOD+CONTROL runs of every method
    sparsities = [0.8, 0.9]           # each in (0, 1)
    seeds = [0, 1]

    [training]                        # overrides of TrainConfig.paper_defaults(model, dataset)
    epochs = 5                        # milestones scale with it unless given
    lr = 0.1
    momentum = 0.9
    weight_decay = 1e-4
    batch_size = 128
    milestones = [2, 4]
    gamma = 0.1
    augment = true
    amp = false                       # bfloat16 autocast (GPU throughput; CPU too)
    channels_last = false             # NHWC memory format

    [data]
    data_dir = "path/to/data"         # relative paths are taken from the config file's folder
    train_subset = 0                  # > 0: seeded random subset of that many training images
    test_subset = 0
    image_size = 0                    # > 0: images resized to image_size x image_size

    [metrics]
    identity_skips = false            # MGE option (docs/encodings.md)

    [dst]                             # dynamic sparse training (training.DSTConfig); unset =
    update_interval = 0.05            # each method's own default; fractions of training
    drop_fraction = 0.3
    [dst.rigl]                        # overrides for one method
    update_end = 0.75

Each run is identified by ``run_id`` = sha256 of the canonical JSON (sorted keys, no spaces) of
its full configuration: model, dataset, method, sparsity, seed, resolved training config, data
subset settings and metric options. ``data_dir`` is where the data lives, not what it is, so it
is not part of the hash (moving the data does not invalidate finished runs); nor is where a run
trains (CPU or GPU, ``--gpus-per-run``). ``training.amp`` and ``training.channels_last`` enter
the hash only when true, so that the runs of results files written before they existed keep
their ids. A dynamic sparse training run (grid method ``set``, ``rigl``, ``snfs``, ``dsr`` or
``itop``) adds ``dst``: the hyper-parameters its method reads, resolved against the method's
defaults; other runs have no ``dst`` key, so their ids do not depend on the ``[dst]`` section.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from sparsetopo.errors import ConfigError
from sparsetopo.study.vocabulary import DENSE
from sparsetopo.training import DST_METHODS, DSTConfig, TrainConfig, is_dst
from sparsetopo.training.dst import resolve

SECTIONS: dict[str, tuple[str, ...]] = {
    "study": ("name",),
    "grid": ("models", "datasets", "methods", "sparsities", "seeds", "controls"),
    "training": tuple(f.name for f in fields(TrainConfig)),
    "data": ("data_dir", "train_subset", "test_subset", "image_size"),
    "metrics": ("identity_skips",),
    "dst": (*(f.name for f in fields(DSTConfig)), *DST_METHODS),  # [dst.<method>] tables
}
REQUIRED_GRID = ("models", "datasets", "methods", "sparsities", "seeds")
DST_KEYS = tuple(f.name for f in fields(DSTConfig))




@dataclass(frozen=True)
class DataSettings:
    """Where the data of a study lives, which part of it is used, at what size.

    Parameters
    ----------
    data_dir : str, optional
        Folder holding the datasets (not part of a run's identity).
    train_subset : int
        > 0: a seeded random subset of that many training images; 0: all.
    test_subset : int
        > 0: a seeded random subset of that many test images; 0: all.
    image_size : int
        > 0: every image resized to ``image_size x image_size``; 0: the dataset's own size.
    """

    data_dir: str | None = None
    train_subset: int = 0
    test_subset: int = 0
    image_size: int = 0


@dataclass(frozen=True)
class MetricSettings:
    """Options of the metric computations that change their values.

    Parameters
    ----------
    identity_skips : bool
        Encode identity shortcuts in the MGE of the paper's topometrics (the path metrics
        always include them).
    """

    identity_skips: bool = False


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: the grid, training overrides of the paper defaults, data and metric
    settings (the TOML schema is in the module docstring; :func:`load_config` reads one).

    Parameters
    ----------
    name : str
        The study's name.
    models : tuple of str
        Zoo models of the grid.
    datasets : tuple of str
        Datasets of the grid.
    methods : tuple of str
        Pruning methods (or ``METHOD+CONTROL``, or dynamic sparse training methods) of the
        grid; the dense baselines are added by :func:`expand_runs`.
    sparsities : tuple of float
        Sparsities of the grid, each in (0, 1).
    seeds : tuple of int
        Seeds of the grid.
    training : dict
        Overrides of ``TrainConfig.paper_defaults(model, dataset)``.
    data : DataSettings
        Data location, subsets and image size.
    metrics : MetricSettings
        Options of the metrics.
    controls : tuple of str
        Mask controls added for every pruning-at-initialization method (``pruning.CONTROLS``).
    dst : dict
        The ``[dst]`` values, and ``[dst.<method>]`` tables under the method's name.
    """

    name: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    training: dict[str, Any] = field(default_factory=dict)
    data: DataSettings = field(default_factory=DataSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    controls: tuple[str, ...] = ()
    dst: dict[str, Any] = field(default_factory=dict)

    def train_config(self, model: str, dataset: str) -> TrainConfig:
        """The training settings of one (model, dataset) pair.

        Parameters
        ----------
        model : str
            Zoo model.
        dataset : str
            Dataset.

        Returns
        -------
        TrainConfig
            ``TrainConfig.paper_defaults(model, dataset)`` with this study's overrides.
        """
        overrides = dict(self.training)
        epochs = overrides.pop("epochs", None)
        return TrainConfig.paper_defaults(model, dataset, epochs=epochs, **overrides)

    def dst_config(self, method: str) -> DSTConfig:
        """The hyper-parameters of one dynamic sparse training method.

        Parameters
        ----------
        method : str
            One of ``training.DST_METHODS``.

        Returns
        -------
        DSTConfig
            The ``[dst]`` values, overridden by those of ``[dst.<method>]``, then the method's
            defaults (``training.dst.resolve``).
        """
        values = {k: v for k, v in self.dst.items() if k not in DST_METHODS}
        values.update(self.dst.get(method, {}))
        return resolve(method, DSTConfig.from_dict(values))


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: everything needed to reproduce it.

    Its identity is :attr:`run_id`, the SHA-256 of the canonical JSON of :meth:`to_dict`
    without ``data.data_dir`` (module docstring).

    Parameters
    ----------
    model : str
        Zoo model.
    dataset : str
        Dataset.
    method : str
        Pruning method, ``METHOD+CONTROL``, dynamic sparse training method, or ``dense``.
    sparsity : float
        Target sparsity (0 for ``dense``).
    seed : int
        Seed of the initialization, the mask, the data order and training.
    training : TrainConfig
        Resolved training settings.
    data : DataSettings
        Data location, subsets and image size.
    metrics : MetricSettings
        Options of the metrics.
    dst : DSTConfig, optional
        A dynamic sparse training run's resolved hyper-parameters; ``None`` for other runs.
    """

    model: str
    dataset: str
    method: str
    sparsity: float
    seed: int
    training: TrainConfig
    data: DataSettings = field(default_factory=DataSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    dst: DSTConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable configuration (includes ``data.data_dir``); ``dst`` only for
        a dynamic sparse training run."""
        out = {
            "model": self.model,
            "dataset": self.dataset,
            "method": self.method,
            "sparsity": float(self.sparsity),
            "seed": int(self.seed),
            "training": self.training.to_dict(),
            "data": {
                "data_dir": self.data.data_dir,
                "train_subset": int(self.data.train_subset),
                "test_subset": int(self.data.test_subset),
                "image_size": int(self.data.image_size),
            },
            "metrics": {"identity_skips": bool(self.metrics.identity_skips)},
        }
        if self.dst is not None:
            out["dst"] = self.dst.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """The run of a plain configuration (:meth:`to_dict`, as stored in a results file)."""
        training = dict(d["training"])
        training["milestones"] = tuple(training.get("milestones", ()))
        return cls(
            model=d["model"],
            dataset=d["dataset"],
            method=d["method"],
            sparsity=float(d["sparsity"]),
            seed=int(d["seed"]),
            training=TrainConfig(**training),
            data=DataSettings(**d.get("data", {})),
            metrics=MetricSettings(**d.get("metrics", {})),
            dst=DSTConfig.from_dict(d["dst"]) if d.get("dst") is not None else None,
        )

    @property
    def run_id(self) -> str:
        """sha256 hex digest of the canonical JSON of the configuration without ``data_dir``."""
        return config_hash(self.to_dict())

    @property
    def label(self) -> str:
        """A short human-readable name: ``model/dataset/method/s=<sparsity>/seed=<seed>``."""
        return f"{self.model}/{self.dataset}/{self.method}/s={self.sparsity:g}/seed={self.seed}"


def hashed_part(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration that identifies a run: everything except ``data.data_dir``."""
    out = json.loads(json.dumps(config))
    out.get("data", {}).pop("data_dir", None)
    return out


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces (NaN refused): one text per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of ``canonical_json(hashed_part(config))``."""
    return hashlib.sha256(canonical_json(hashed_part(config)).encode()).hexdigest()


# --- parsing and validation -------------------------------------------------------------------


def _known(kind: str) -> tuple[str, ...]:
    if kind == "model":
        from sparsetopo import models

        return tuple(models.names())
    if kind == "dataset":
        from sparsetopo import data

        return tuple(data.DATASETS)
    from sparsetopo import pruning

    return tuple(pruning.METHODS) + DST_METHODS


def _list(section: dict, key: str, types: tuple[type, ...], what: str) -> list:
    value = section[key]
    if not isinstance(value, list):
        raise ConfigError(f"grid.{key} must be a list of {what}, got {value!r}")
    if not value:
        raise ConfigError(f"grid.{key} is empty: the study grid needs at least one value")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, types):
            raise ConfigError(f"grid.{key} must be a list of {what}, got element {v!r}")
    return list(dict.fromkeys(value))  # drop duplicates, keep order


def _names(section: dict, key: str, kind: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    values = _list(section, key, (str,), "names")
    known = _known(kind) + extra
    for v in values:
        if v not in known:
            raise ConfigError(f"unknown {kind} {v!r} in grid.{key}; available: {', '.join(known)}")
    return tuple(values)


def _method_names(grid: dict) -> list[str]:
    """``grid.methods``: each ``dense``, a known method or ``METHOD+CONTROL`` (checked by
    ``pruning.check_method`` against the methods a study runs)."""
    from sparsetopo import pruning
    from sparsetopo.errors import InputError

    values = _list(grid, "methods", (str,), "names")
    for v in values:
        if v == DENSE:
            continue
        try:
            pruning.check_method(v, known=_known("method"))
        except InputError as exc:
            raise ConfigError(f"{exc} (in grid.methods; also: {DENSE})") from None
        if v != v.strip().lower():
            raise ConfigError(f"grid.methods: write {v!r} as {v.strip().lower()!r}")
        base, control = pruning.split_method(v)
        if control is not None and is_dst(base):
            raise ConfigError(f"grid.methods: {v!r}: mask controls apply to pruning at "
                              f"initialization only ({base}'s mask changes during training)")
    return values


def _control_names(grid: dict) -> tuple[str, ...]:
    """``grid.controls`` (optional): names of ``pruning.CONTROLS``."""
    from sparsetopo import pruning

    if "controls" not in grid:
        return ()
    values = _list(grid, "controls", (str,), "control names")
    for v in values:
        if v not in pruning.CONTROLS:
            raise ConfigError(f"unknown control {v!r} in grid.controls; supported controls: "
                              f"{', '.join(pruning.CONTROLS)}")
    return tuple(values)


def _check_keys(raw: dict, source: str) -> None:
    for section, content in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section [{section}]; valid sections: {', '.join(SECTIONS)}"
            )
        if not isinstance(content, dict):
            raise ConfigError(f"{source}: [{section}] must be a table (section), got {content!r}")
        for key in content:
            if key not in SECTIONS[section]:
                raise ConfigError(
                    f"{source}: unknown key {section}.{key!s}; valid keys in [{section}]: "
                    f"{', '.join(SECTIONS[section])}"
                )


def _training(raw: dict, source: str) -> dict[str, Any]:
    types = {"epochs": int, "batch_size": int, "lr": float, "momentum": float,
             "weight_decay": float, "gamma": float, "augment": bool, "milestones": list,
             "amp": bool, "channels_last": bool}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        want = types[key]
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if key == "milestones" and ok:
            ok = all(isinstance(m, int) and not isinstance(m, bool) for m in value)
            value = tuple(value)
        if not ok:
            raise ConfigError(f"{source}: training.{key} must be {want.__name__}, got {value!r}")
        out[key] = value
    try:  # validate once with any model so that bad values are reported before running
        TrainConfig.paper_defaults("conv6", "cifar10", epochs=out.get("epochs"),
                                   **{k: v for k, v in out.items() if k != "epochs"})
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return out


_DST_TYPES: dict[str, type] = {"drop_decay": str, "init_density": str, "grow_init": str,
                               "redistribution": str, "reset_momentum": bool,
                               "dsr_interval_doubling": list}


def _dst_values(raw: dict, where: str, source: str) -> dict[str, Any]:
    """Type-checked ``[dst]`` (or ``[dst.<method>]``) values."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        want = _DST_TYPES.get(key, float)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if want is float and number:
            value = float(value)
        elif want is list and isinstance(value, list) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            value = tuple(float(v) for v in value)
        elif not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            what = "a list of numbers" if want is list else want.__name__
            raise ConfigError(f"{source}: {where}.{key} must be {what}, got {value!r}")
        out[key] = value
    return out


def _dst(raw: dict, source: str) -> dict[str, Any]:
    out = _dst_values({k: v for k, v in raw.items() if k not in DST_METHODS}, "dst", source)
    for method in DST_METHODS:
        if method not in raw:
            continue
        table = raw[method]
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [dst.{method}] must be a table (section), got "
                              f"{table!r}")
        unknown = sorted(set(table) - set(DST_KEYS))
        if unknown:
            raise ConfigError(f"{source}: unknown key dst.{method}.{unknown[0]}; valid keys: "
                              f"{', '.join(DST_KEYS)}")
        out[method] = _dst_values(table, f"dst.{method}", source)
    try:  # validate every combination before running
        for method in DST_METHODS:
            StudyConfig("check", (), (), (), (), (), dst=out).dst_config(method)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return out


def _count(raw: dict, key: str, source: str) -> int:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{source}: data.{key} must be an integer >= 0 (0 = the dataset's "
                          f"own), got {value!r}")
    return value


def parse_config(raw: dict[str, Any], source: str = "config", base_dir: str | None = None
                 ) -> StudyConfig:
    """Validate a parsed TOML document (see module docstring) into a :class:`StudyConfig`.

    Parameters
    ----------
    raw : dict
        The parsed TOML document.
    source : str
        Where it came from, named in error messages.
    base_dir : str, optional
        Folder against which a relative ``data.data_dir`` is resolved.

    Returns
    -------
    StudyConfig
        The validated study.

    Raises
    ------
    ConfigError
        The first problem: unknown section or key (with the valid ones), missing or empty grid
        list, sparsity outside (0, 1), negative seed, unknown model / dataset / method /
        control, badly typed or out-of-range value.
    """
    _check_keys(raw, source)
    grid = raw.get("grid")
    if not grid:
        raise ConfigError(f"{source}: missing [grid] section with keys {', '.join(REQUIRED_GRID)}")
    for key in REQUIRED_GRID:
        if key not in grid:
            raise ConfigError(f"{source}: missing grid.{key} (the grid needs {', '.join(REQUIRED_GRID)})")
    try:
        models = _names(grid, "models", "model")
        datasets = _names(grid, "datasets", "dataset")
        methods = tuple(m for m in _method_names(grid) if m != DENSE)
        if not methods:
            raise ConfigError("grid.methods lists only 'dense'; add at least one pruning method")
        sparsities = tuple(float(s) for s in _list(grid, "sparsities", (int, float), "numbers"))
        seeds = tuple(_list(grid, "seeds", (int,), "integers"))
        controls = _control_names(grid)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for s in sparsities:
        if not 0 < s < 1:
            raise ConfigError(f"{source}: sparsity {s!r} in grid.sparsities is outside (0, 1)")
    for s in seeds:
        if s < 0:
            raise ConfigError(f"{source}: seed {s!r} in grid.seeds must be >= 0")

    data_raw = raw.get("data", {})
    data_dir = data_raw.get("data_dir")
    if data_dir is not None:
        if not isinstance(data_dir, str) or not data_dir:
            raise ConfigError(f"{source}: data.data_dir must be a path string, got {data_dir!r}")
        data_dir = os.path.expanduser(data_dir)
        if base_dir is not None and not os.path.isabs(data_dir):
            data_dir = os.path.normpath(os.path.join(base_dir, data_dir))
    data = DataSettings(data_dir, _count(data_raw, "train_subset", source),
                        _count(data_raw, "test_subset", source),
                        _count(data_raw, "image_size", source))
    skips = raw.get("metrics", {}).get("identity_skips", False)
    if not isinstance(skips, bool):
        raise ConfigError(f"{source}: metrics.identity_skips must be true or false, got {skips!r}")
    name = raw.get("study", {}).get("name", "study")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: study.name must be a non-empty string, got {name!r}")
    return StudyConfig(
        name=name, models=models, datasets=datasets, methods=methods, sparsities=sparsities,
        seeds=seeds, training=_training(raw.get("training", {}), source), data=data,
        metrics=MetricSettings(skips), controls=controls, dst=_dst(raw.get("dst", {}), source),
    )


def load_config(path: str | os.PathLike) -> StudyConfig:
    """Read and validate a study TOML file (schema in the module docstring).

    Parameters
    ----------
    path : str or path-like
        The TOML file; a relative ``data.data_dir`` in it is taken from its folder.

    Returns
    -------
    StudyConfig
        The validated study.

    Raises
    ------
    ConfigError
        A missing file, invalid TOML, or a problem :func:`parse_config` names.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) TOML file") from None
    return parse_config(raw, source=str(path), base_dir=str(path.parent))


def preset_names() -> list[str]:
    """Names of the study presets shipped with the package.

    Returns
    -------
    list of str
        Sorted preset names (``sparsetopo/study/presets/<name>.toml``).
    """
    files = resources.files("sparsetopo.study").joinpath("presets").iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def load_preset(name: str) -> StudyConfig:
    """A study preset shipped with the package.

    Parameters
    ----------
    name : str
        One of :func:`preset_names` (``sparsetopo/study/presets/<name>.toml``).

    Returns
    -------
    StudyConfig
        The validated preset.

    Raises
    ------
    ConfigError
        An unknown preset.
    """
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(names)}")
    text = resources.files("sparsetopo.study").joinpath("presets", f"{name}.toml").read_text()
    return parse_config(tomllib.loads(text), source=f"preset {name}")


def grid_methods(config: StudyConfig) -> tuple[str, ...]:
    """The grid's methods, then the ``METHOD+CONTROL`` runs (``grid.controls``) of every one of
    them that is neither a control itself nor a dynamic sparse training method (whose mask
    training changes), without duplicates."""
    from sparsetopo import pruning

    with_controls = [pruning.control_name(m, c) for m in config.methods
                     if pruning.split_method(m)[1] is None and not is_dst(m)
                     for c in config.controls]
    return tuple(dict.fromkeys([*config.methods, *with_controls]))


def expand_runs(config: StudyConfig) -> list[RunSpec]:
    """All runs of a study's grid.

    Per (model, dataset): one dense run (method ``dense``, sparsity 0) per seed, then every
    (method, sparsity, seed), the methods of :func:`grid_methods` (the grid's methods, then
    their mask controls); a dynamic sparse training run carries its resolved hyper-parameters.

    Parameters
    ----------
    config : StudyConfig
        The study.

    Returns
    -------
    list of RunSpec
        The runs, in that order.
    """
    runs = []
    for model in config.models:
        for dataset in config.datasets:
            training = config.train_config(model, dataset)
            common = {"training": training, "data": config.data, "metrics": config.metrics}
            runs += [RunSpec(model, dataset, DENSE, 0.0, seed, **common) for seed in config.seeds]
            runs += [
                RunSpec(model, dataset, method, sparsity, seed, **common,
                        dst=config.dst_config(method) if is_dst(method) else None)
                for method in grid_methods(config)
                for sparsity in config.sparsities
                for seed in config.seeds
            ]
    return runs
