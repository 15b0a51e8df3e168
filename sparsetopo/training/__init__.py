"""Training of sparse networks: masked SGD with the paper's schedules (``loop``), with fixed
masks (pruning at initialization) or masks that training moves (dynamic sparse training,
``dst``), the topology of a mask over training (``trajectory``) and the category of every
method (``categories``)."""

from .categories import CATEGORIES, category, methods_by_category
from .dst import (
    DST_METHODS,
    UPDATERS,
    DSTConfig,
    DynamicSparsity,
    MaskUpdater,
    is_dst,
    sparse_init,
)
from .loop import (
    CIFAR_SCHEDULE,
    TINYIMAGENET_SCHEDULE,
    WIDE_WEIGHT_DECAY_MODELS,
    TrainConfig,
    TrainResult,
    autocast,
    default_device,
    deterministic,
    evaluate,
    scale_milestones,
    train,
)
from .trajectory import TRAJECTORY_METRICS, TopologyRecorder, mask_topology

__all__ = [
    "CATEGORIES",
    "CIFAR_SCHEDULE",
    "DST_METHODS",
    "DSTConfig",
    "DynamicSparsity",
    "MaskUpdater",
    "TINYIMAGENET_SCHEDULE",
    "TRAJECTORY_METRICS",
    "TopologyRecorder",
    "TrainConfig",
    "TrainResult",
    "UPDATERS",
    "WIDE_WEIGHT_DECAY_MODELS",
    "autocast",
    "category",
    "default_device",
    "deterministic",
    "evaluate",
    "is_dst",
    "mask_topology",
    "methods_by_category",
    "scale_milestones",
    "sparse_init",
    "train",
]
