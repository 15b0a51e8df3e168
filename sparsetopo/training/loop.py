"""Masked SGD training of sparse networks with the paper's schedules, fixed or dynamic masks.

The model is expected in ``torch.nn.utils.prune`` form: each pruned layer holds the trainable
``weight_orig`` and a ``weight_mask`` buffer, and a forward pre-hook recomputes
``weight = weight_orig * weight_mask``. With fixed masks (pruning at initialization), gradients,
momentum and weight decay may change ``weight_orig`` where the mask is 0, but the effective
weight stays exactly 0 there because the mask multiplies it, so masks stay fixed without any
extra step. With ``dst`` (dynamic sparse training, :mod:`sparsetopo.training.dst`) the masks
are updated in place during training, and ``weight_orig`` and its momentum are held at 0 where
the mask is 0. Layers without a mask are trained as ordinary dense layers.

Where it trains: on CPU the path is deterministic for a fixed thread count (tested); on a CUDA
device the loaders should hold the data on the device (``data.make_loader(device=...)``) so that
batches and their crop + flip are gathered there, and ``amp`` (bfloat16 autocast) and
``channels_last`` are the usual throughput levers. Neither changes which weights are zero: the
pre-hook multiplies by the mask in every forward, whatever the dtype or memory format.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from tqdm.auto import tqdm

from sparsetopo.data import AUGMENTED_BY_DEFAULT
from sparsetopo.errors import InputError
from sparsetopo.io import show_progress
from sparsetopo.training.dst import DynamicSparsity
from sparsetopo.training.trajectory import TopologyRecorder

#: ``(epochs, milestones)`` of the paper's CIFAR training.
CIFAR_SCHEDULE = (160, (80, 120))
#: ``(epochs, milestones)`` of the paper's Tiny-ImageNet training.
TINYIMAGENET_SCHEDULE = (100, (30, 60, 80))
#: Models trained with weight decay 5e-4 instead of 1e-4.
WIDE_WEIGHT_DECAY_MODELS = ("wrn28_2",)


def scale_milestones(milestones: Iterable[int], base_epochs: int, epochs: int) -> tuple[int, ...]:
    """Milestones of a ``base_epochs`` schedule scaled to ``epochs``.

    Each milestone ``m`` becomes ``round(m * epochs / base_epochs)`` (halves up); only distinct
    values in ``1 .. epochs-1`` are kept (a decay at epoch 0 or at the end would have no effect
    or shift the whole schedule).

    Parameters
    ----------
    milestones : iterable of int
        Epochs of the learning-rate decays in the base schedule.
    base_epochs : int
        Length of the base schedule.
    epochs : int
        Length of the new schedule.

    Returns
    -------
    tuple of int
        The scaled milestones, increasing.

    Raises
    ------
    InputError
        A length that is not positive.
    """
    if base_epochs <= 0 or epochs <= 0:
        raise InputError(f"epochs must be positive, got base={base_epochs}, epochs={epochs}")
    scaled = {math.floor(m * epochs / base_epochs + 0.5) for m in milestones}
    return tuple(sorted(m for m in scaled if 0 < m < epochs))


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training: SGD with momentum and weight decay, cross-entropy loss.

    The learning rate is ``lr * gamma^k`` after the ``k``-th milestone epoch. Defaults are the
    paper's CIFAR settings (:meth:`paper_defaults` gives those of any model and dataset).

    Parameters
    ----------
    epochs : int
        Passes over the training data.
    lr : float
        Initial learning rate.
    momentum : float
        SGD momentum, in [0, 1).
    weight_decay : float
        L2 weight decay (SGD's ``weight_decay``).
    batch_size : int
        Samples per batch.
    milestones : tuple of int
        Epochs after which the learning rate is multiplied by ``gamma``, increasing.
    gamma : float
        Learning-rate decay factor, in (0, 1].
    augment : bool
        Random crop (padding 4) and horizontal flip of the training images.
    amp : bool
        Forward passes under ``torch.autocast(dtype=torch.bfloat16)`` (no loss scaling is
        needed for bfloat16). Off by default and, when off, absent from :meth:`to_dict` (and
        so from a study run's identity).
    channels_last : bool
        Model and inputs in the NHWC memory format; like ``amp`` in :meth:`to_dict`.

    Raises
    ------
    InputError
        A value out of its range (every problem named in one message).

    References
    ----------
    Cunegatti, E., Farina, L. L., Bucur, D., Iacca, G. (2024). Understanding Sparse Neural
    Networks from their Topology via Multipartite Graph Representations. *Transactions on
    Machine Learning Research*.

    He, K., Zhang, X., Ren, S., Sun, J. (2016). Deep Residual Learning for Image Recognition.
    *CVPR* (the CIFAR schedule and augmentation).
    """

    epochs: int = 160
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 128
    milestones: tuple[int, ...] = (80, 120)
    gamma: float = 0.1
    augment: bool = True
    amp: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        problems = []
        if int(self.epochs) != self.epochs or self.epochs < 1:
            problems.append(f"epochs must be a positive integer, got {self.epochs!r}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            problems.append(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not 0 < self.gamma <= 1:
            problems.append(f"gamma must be in (0, 1], got {self.gamma!r}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            m < 1 for m in self.milestones
        ):
            problems.append(f"milestones must be increasing positive epochs, got {self.milestones}")
        for name in ("amp", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if problems:
            raise InputError("invalid training config: " + "; ".join(problems))

    @classmethod
    def paper_defaults(
        cls, model_name: str, dataset: str, epochs: int | None = None, **overrides
    ) -> TrainConfig:
        """The paper's settings for a model on a dataset.

        160 epochs with milestones 80/120 (CIFAR and the small datasets), 100 epochs with
        milestones 30/60/80 (Tiny-ImageNet), weight decay 5e-4 for WRN-28-2 else 1e-4, random
        crop + flip for the natural-image datasets (CIFAR, Tiny-ImageNet) and none for
        digits/synthetic; learning rate 0.1, momentum 0.9, batch 128, decay 0.1.

        Parameters
        ----------
        model_name : str
            Zoo name.
        dataset : str
            Dataset name.
        epochs : int, optional
            A shorter or longer schedule: the milestones are scaled proportionally
            (:func:`scale_milestones`).
        **overrides
            Any other field by keyword (an explicit ``milestones`` wins over the scaled ones).

        Returns
        -------
        TrainConfig
            The settings.

        Raises
        ------
        InputError
            A bad value.
        """
        base_epochs, base_milestones = (
            TINYIMAGENET_SCHEDULE if dataset == "tinyimagenet" else CIFAR_SCHEDULE
        )
        config = cls(
            epochs=base_epochs,
            milestones=base_milestones,
            weight_decay=5e-4 if model_name in WIDE_WEIGHT_DECAY_MODELS else 1e-4,
            augment=dataset in AUGMENTED_BY_DEFAULT,
        )
        if epochs is not None:
            config = config.with_epochs(epochs)
        return replace(config, **overrides)

    def with_epochs(self, epochs: int) -> TrainConfig:
        """The same schedule stretched or shrunk to ``epochs`` (milestones scaled by
        :func:`scale_milestones`)."""
        return replace(
            self, epochs=epochs, milestones=scale_milestones(self.milestones, self.epochs, epochs)
        )

    def to_dict(self) -> dict:
        """Plain dict of the fields; ``amp`` and ``channels_last`` only when on, so that the
        configurations written before they existed keep their meaning (and their run ids)."""
        out = {
            "epochs": int(self.epochs),
            "lr": float(self.lr),
            "momentum": float(self.momentum),
            "weight_decay": float(self.weight_decay),
            "batch_size": int(self.batch_size),
            "milestones": list(self.milestones),
            "gamma": float(self.gamma),
            "augment": bool(self.augment),
        }
        for name in ("amp", "channels_last"):
            if getattr(self, name):
                out[name] = True
        return out


@dataclass
class TrainResult:
    """What :func:`train` returns: the accuracy, the curves, where and how fast it trained.

    Parameters
    ----------
    test_accuracy : float
        Top-1 test accuracy (fraction in [0, 1]) after the last epoch.
    train_loss_history : list of float
        Mean training loss of every epoch.
    seconds : float
        Wall-clock seconds of training plus evaluation.
    device : str
        Where it trained, e.g. ``cpu``, ``cuda:0``.
    device_name : str, optional
        The GPU's name on CUDA.
    train_seconds : float
        The epochs only, evaluation excluded (on CUDA up to a synchronisation).
    images : int
        Training samples seen over all epochs (``images_per_second`` = ``images /
        train_seconds``).
    peak_memory_mb : float, optional
        ``torch.cuda.max_memory_allocated`` over the call, in MiB; ``None`` on CPU.
    train_accuracy_history : list of float
        Training accuracy of every epoch (of the batches as they were trained on).
    trajectory : list of dict
        Dynamic sparse training: one record per mask update, the first at step 0 (fields in
        ``docs/sparse-training.md``, *Topology over training*).
    mask_updates : int
        Dynamic sparse training: the number of mask updates.
    mask_update_seconds : float
        Dynamic sparse training: time spent updating masks.
    record_seconds : float
        Dynamic sparse training: time spent recording the trajectory.
    """

    test_accuracy: float
    train_loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    device_name: str | None = None
    train_seconds: float = 0.0
    images: int = 0
    peak_memory_mb: float | None = None
    train_accuracy_history: list[float] = field(default_factory=list)
    trajectory: list[dict] = field(default_factory=list)
    mask_updates: int = 0
    mask_update_seconds: float = 0.0
    record_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Training throughput, ``images / train_seconds`` (NaN without training time)."""
        return self.images / self.train_seconds if self.train_seconds > 0 else float("nan")


def default_device() -> torch.device:
    """Where to train by default.

    Returns
    -------
    torch.device
        ``cuda`` when available, else ``cpu``.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def deterministic(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Deterministic torch algorithms on CPU for the duration of the block.

    ``torch.use_deterministic_algorithms(True, warn_only=True)``; the previous global setting is
    restored on exit. On CUDA this would need ``CUBLAS_WORKSPACE_CONFIG`` set before start-up,
    so it is left as configured.

    Parameters
    ----------
    device : torch.device
        Where the work runs; only ``cpu`` is affected.
    enabled : bool
        False: a no-op.

    Returns
    -------
    contextlib.AbstractContextManager
        The context manager (a ``with`` block).
    """
    if not enabled or device.type != "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def autocast(device: torch.device, enabled: bool):
    """Mixed precision for the forward passes, when asked for.

    Parameters
    ----------
    device : torch.device
        Where the forward passes run.
    enabled : bool
        Autocast to bfloat16; False: a no-op context (so that the default path runs exactly the
        ops it always ran).

    Returns
    -------
    contextlib.AbstractContextManager
        ``torch.autocast(device_type=device.type, dtype=torch.bfloat16)`` or
        ``contextlib.nullcontext()``.
    """
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _inputs(x, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str | None = None,
             amp: bool = False, channels_last: bool = False) -> float:
    """Top-1 accuracy of a model: the fraction of samples whose largest logit is the label.

    ``(# argmax(model(x)) == y) / (# samples)`` over ``loader``, with the model in eval mode
    (its previous mode is restored) and no gradient.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits ``B x classes``.
    loader : iterable
        Batches ``(x, y)``.
    device : torch.device or str, optional
        Where to evaluate; default: the device of the model's parameters.
    amp, channels_last : bool
        As in :class:`TrainConfig`.

    Returns
    -------
    float
        Accuracy in [0, 1].

    Raises
    ------
    InputError
        A loader that yields no sample.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    try:
        for x, y in loader:
            x, y = _inputs(x, device, channels_last), torch.as_tensor(y).to(device)
            with autocast(device, amp):
                logits = model(x)
            correct += (logits.argmax(dim=1) == y).sum()
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise InputError("evaluation loader yielded no samples")
    return int(correct) / total


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """cuDNN autotuning on CUDA (fixed input shapes: it pays off after the first batches)."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _steps_per_epoch(loader: Iterable) -> int:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        raise InputError("dynamic sparse training needs a training loader with a length (its "
                         "schedule is a fraction of the training steps)") from None


def train(
    model: nn.Module,
    train_loader: Iterable,
    test_loader: Iterable,
    config: TrainConfig,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    deterministic_algorithms: bool = False,
    dst: DynamicSparsity | None = None,
) -> TrainResult:
    """Train a sparse network in place with masked SGD and measure its test accuracy.

    Every epoch minimises the mean cross-entropy over ``train_loader`` with
    ``SGD(lr, momentum, weight_decay)``; the learning rate is multiplied by ``gamma`` after each
    milestone epoch. ``torch.manual_seed(seed)`` is set first (dropout, augmentation and any
    loader without its own generator draw from it), so two calls with the same inputs and the
    same number of torch threads give identical results on CPU (its kernels are deterministic
    for a fixed thread count; tested). ``deterministic_algorithms`` additionally switches
    ``torch.use_deterministic_algorithms`` on during CPU training; it is off by default because
    it makes oneDNN convolution backward passes about 3x slower. ``config.amp`` and
    ``config.channels_last`` switch on bfloat16 autocast and the NHWC memory format (on CUDA:
    cuDNN autotuning too, whatever the config).

    With fixed masks (pruning at initialization) the effective weight ``weight_orig *
    weight_mask`` stays exactly 0 where the mask is 0; with ``dst`` the masks move as the
    method says and absent weights are held at 0 (``docs/sparse-training.md``).

    Parameters
    ----------
    model : torch.nn.Module
        The network, masks in ``torch.nn.utils.prune`` form (layers without a mask train as
        dense layers); moved to ``device``.
    train_loader : iterable
        Training batches ``(x, y)`` (with a length for ``dst``).
    test_loader : iterable
        Test batches, evaluated once after the last epoch (:func:`evaluate`).
    config : TrainConfig
        The settings.
    device : torch.device or str, optional
        Where to train; default :func:`default_device`.
    seed : int
        ``torch.manual_seed(seed)`` first, and the seed of a DST method's draws.
    progress : bool
        A progress bar over epochs.
    deterministic_algorithms : bool
        :func:`deterministic` during CPU training.
    dst : DynamicSparsity, optional
        Dynamic sparse training. The model must already hold the method's initial mask
        (:func:`sparse_init`); its masks are updated on the model's device as the method's
        schedule says (a fraction of ``epochs * len(train_loader)`` steps), and its topology
        recorded at every update when ``dst.input_shape`` is given.

    Returns
    -------
    TrainResult
        Test accuracy, loss and accuracy curves, timings, device; the trajectory for ``dst``.

    Raises
    ------
    InputError
        A loader that yields no sample, a ``dst`` training loader without a length, or a model
        not masked for ``dst``.
    """
    device = torch.device(device) if device is not None else default_device()
    start = time.perf_counter()
    torch.manual_seed(seed)
    cuda = device.type == "cuda"
    if cuda:
        device = torch.device("cuda", device.index if device.index is not None
                              else torch.cuda.current_device())
        torch.cuda.reset_peak_memory_stats(device)
    recorder = None
    if dst is not None and dst.input_shape is not None:
        recorder = TopologyRecorder(model, dst.input_shape)  # a CPU copy, before any move
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.milestones), gamma=config.gamma
    )
    updater = None
    if dst is not None:
        per_epoch = _steps_per_epoch(train_loader)
        updater = dst.updater(model, optimizer, config.epochs * per_epoch, per_epoch, seed=seed,
                              recorder=recorder)
    loss_fn = nn.CrossEntropyLoss()
    history: list[float] = []
    accuracy_history: list[float] = []
    images = 0
    step = 0
    try:
        with deterministic(device, deterministic_algorithms), _cudnn_benchmark(device):
            bar = tqdm(range(config.epochs), desc=f"train {dst.method}" if dst else "train",
                       unit="epoch", disable=not show_progress(progress), leave=False)
            train_start = time.perf_counter()
            for _ in bar:
                model.train()
                loss_sum = torch.zeros((), dtype=torch.float64, device=device)
                correct = torch.zeros((), dtype=torch.int64, device=device)
                seen = 0
                for x, y in train_loader:
                    step += 1
                    x = _inputs(x, device, config.channels_last)
                    y = torch.as_tensor(y).to(device, non_blocking=True)
                    optimizer.zero_grad(set_to_none=True)
                    if updater is not None:
                        updater.before_backward(step)
                    with autocast(device, config.amp):
                        logits = model(x)
                        loss = loss_fn(logits, y)
                    loss.backward()
                    if updater is not None:
                        updater.before_optimizer_step(step)
                    optimizer.step()
                    if updater is not None:
                        updater.after_optimizer_step(step)
                    loss_sum += loss.detach().double() * y.numel()
                    correct += (logits.detach().argmax(dim=1) == y).sum()
                    seen += int(y.numel())
                if seen == 0:
                    raise InputError("training loader yielded no samples")
                scheduler.step()
                history.append(float(loss_sum) / seen)  # a device synchronisation on CUDA
                accuracy_history.append(int(correct) / seen)
                images += seen
                postfix = {"loss": f"{history[-1]:.4f}", "acc": f"{accuracy_history[-1]:.3f}",
                           "lr": f"{scheduler.get_last_lr()[0]:.3g}"}
                if updater is not None:
                    postfix["updates"] = len(updater.trajectory) - 1
                bar.set_postfix(postfix)
            train_seconds = time.perf_counter() - train_start
            accuracy = evaluate(model, test_loader, device, amp=config.amp,
                                channels_last=config.channels_last)
    finally:
        trajectory = updater.close() if updater is not None else []
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    name = torch.cuda.get_device_name(device) if cuda else None
    return TrainResult(accuracy, history, time.perf_counter() - start, device=str(device),
                       device_name=name, train_seconds=train_seconds, images=images,
                       peak_memory_mb=peak, train_accuracy_history=accuracy_history,
                       trajectory=trajectory,
                       mask_updates=max(0, len(trajectory) - 1),
                       mask_update_seconds=updater.update_seconds if updater else 0.0,
                       record_seconds=updater.record_seconds if updater else 0.0)
