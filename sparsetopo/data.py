"""Datasets read from local files (nothing is ever downloaded) and deterministic loaders.

``DATASETS``:

- ``cifar10``: ``<data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (the python
  version of the official release: pickled dicts with ``b"data"`` uint8 ``N x 3072`` in
  R, G, B planes of 32x32 and ``b"labels"``).
- ``cifar100``: ``<data_dir>/cifar-100-python/{train,test}`` (``b"fine_labels"`` used, 100 classes).
- ``tinyimagenet``: ``<data_dir>/tiny-imagenet-200/`` (``wnids.txt``,
  ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` + ``val/val_annotations.txt``); the
  ``test`` split is the labelled validation set. Images are 64x64, their real resolution;
  ``image_size=32`` (``--input-size 32``: the paper's setting) decodes them to 32x32 with Pillow's
  box filter (2x2 mean, as uint8), as the paper's code does. Class ``k`` is the k-th wnid in
  sorted order.
- ``digits``: scikit-learn's bundled 8x8 digits scaled to [0, 1] (``/16``), upsampled to
  1x32x32 (bilinear, ``align_corners=False``), split by
  ``train_test_split(test_size=0.25, random_state=0, stratify=y)`` (1347 train, 450 test).
- ``synthetic``: i.i.d. standard Gaussian images of ``shape=(C, H, W)`` with uniformly random
  labels in ``range(num_classes)``, ``n`` per split, drawn from ``data_seed`` (shape-only work).

Samples are ``(float32 C x H x W tensor, int label)`` with ``x = (v - mean_c) / std_c``, ``v``
the pixel in [0, 1] and ``mean_c``, ``std_c`` the per-channel statistics of the training set
(``NORMALISATION``; for digits computed from its training split; synthetic is not normalised).
Augmentation (training): pad 4 pixels of black (``v = 0``, before normalisation, as
``RandomCrop(32, padding=4)`` on images), take a random crop of the image's size, flip
horizontally with probability 1/2; written with batched torch ops.

Decoded arrays are cached in memory only (per process); the digits' stratified split is also
kept in ``cache_dir()`` (no scikit-learn import on later runs). ``data_dir=None`` means
``$SPARSETOPO_DATA_DIR`` or ``./data``.

References
    Krizhevsky, A. (2009). Learning Multiple Layers of Features from Tiny Images. Technical
    report, University of Toronto (CIFAR-10, CIFAR-100).

    Le, Y., Yang, X. (2015). Tiny ImageNet Visual Recognition Challenge. Stanford CS231N.

    Alpaydin, E., Kaynak, C. (1998). Optical Recognition of Handwritten Digits. UCI Machine
    Learning Repository (scikit-learn's ``load_digits``).

    He, K., Zhang, X., Ren, S., Sun, J. (2016). Deep Residual Learning for Image Recognition.
    CVPR (the CIFAR augmentation: 4 pixels of padding, a random crop, a random horizontal
    flip).
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from sparsetopo.errors import DataError, InputError
from sparsetopo.io import atomic_path, ensure_dir, show_progress

__all__ = [
    "AUGMENTED_BY_DEFAULT", "DATASETS", "NORMALISATION", "PADDING", "SPLITS", "DatasetInfo",
    "ImageDataset", "cache_dir", "clear_cache", "crop_flip", "dataset_info", "get_dataset",
    "make_loader", "random_crop_flip_params", "resize_dataset", "subset_indices",
]

#: The datasets :func:`get_dataset` reads (module docstring).
DATASETS = ("cifar10", "cifar100", "tinyimagenet", "digits", "synthetic")
#: The splits of every dataset.
SPLITS = ("train", "test")
#: Pixels of zero padding (before normalisation) of the random crop.
PADDING = 4
#: Datasets whose training split is augmented (crop and flip) unless asked otherwise.
AUGMENTED_BY_DEFAULT = ("cifar10", "cifar100", "tinyimagenet")

#: Per-channel ``(mean, std)`` of the training pixels in [0, 1].
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
}

_LAYOUT = {
    "cifar10": "CIFAR-10 not found: expected {root}/cifar-10-batches-py/"
    "{{data_batch_1..5,test_batch}} (the python version from the official site); "
    "nothing is downloaded",
    "cifar100": "CIFAR-100 not found: expected {root}/cifar-100-python/{{train,test}} "
    "(the python version from the official site); nothing is downloaded",
    "tinyimagenet": "Tiny-ImageNet not found: expected {root}/tiny-imagenet-200/"
    "{{wnids.txt,train/<wnid>/images/*.JPEG,val/images/*.JPEG,val/val_annotations.txt}} "
    "(tiny-imagenet-200.zip unpacked); nothing is downloaded",
}

_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset: its images are ``in_channels x image_size x width``.

    Parameters
    ----------
    name : str
        The dataset's name, as :data:`DATASETS` spells it.
    in_channels : int
        Channels of an image (3 for RGB, 1 for digits).
    num_classes : int
        Number of classes; labels are ``0 .. num_classes - 1``.
    image_size : int
        Height of an image in pixels.
    width : int, optional
        Width of an image in pixels; ``None``: square images (``image_size``).
    """

    name: str
    in_channels: int
    num_classes: int
    image_size: int
    width: int | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one sample (``width`` defaults to ``image_size``)."""
        return (self.in_channels, self.image_size, self.width or self.image_size)


def _check_name(name: str) -> str:
    """The dataset's name as ``DATASETS`` spells it (names are case-insensitive)."""
    canonical = str(name).strip().lower().replace("-", "")
    if canonical not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return canonical


def _synthetic_shape(shape) -> tuple[int, int, int]:
    try:
        c, h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"synthetic shape must be (C, H, W), got {shape!r}") from None
    if min(c, h, w) < 1:
        raise InputError(f"synthetic shape must be positive, got {shape!r}")
    return c, h, w


def dataset_info(
    name: str, shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
    image_size: int = 0,
) -> DatasetInfo:
    """Channels, classes and image size of a dataset, without reading it.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (case-insensitive; ``tiny-imagenet`` is ``tinyimagenet``).
    shape : tuple of int
        ``(C, H, W)`` of a ``synthetic`` image; ignored by the other datasets.
    num_classes : int
        Classes of ``synthetic``; ignored by the other datasets.
    image_size : int
        > 0: the images as :func:`resize_dataset` gives them, ``image_size x image_size``;
        0: the dataset's own size.

    Returns
    -------
    DatasetInfo
        cifar10 and cifar100: 3 x 32 x 32 (10, 100 classes); tinyimagenet: 3 x 64 x 64 (200
        classes); digits: 1 x 32 x 32 (10 classes); synthetic: ``shape``, ``num_classes``.

    Raises
    ------
    InputError
        An unknown dataset, or a ``synthetic`` shape that is not three positive integers.
    """
    name = _check_name(name)
    if name == "synthetic":
        c, h, w = _synthetic_shape(shape)
        info = DatasetInfo(name, c, int(num_classes), h, w)
    else:
        fixed = {"cifar10": (3, 10, 32), "cifar100": (3, 100, 32), "tinyimagenet": (3, 200, 64),
                 "digits": (1, 10, 32)}
        channels, classes, size = fixed[name]
        info = DatasetInfo(name, channels, classes, size)
    if image_size:
        info = replace(info, image_size=int(image_size), width=None)
    return info


# ---------------------------------------------------------------- CIFAR pickles


def _numpy_reconstruct() -> Callable:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")  # pragma: no cover


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the official CIFAR files: only numpy array reconstruction is allowed
    (builtins such as dict, list and bytes need no global lookup)."""

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: a CIFAR file only holds numpy arrays, "
            "lists and bytes"
        )


def _load_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path} is not a CIFAR python pickle: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR python pickle: expected a dict, got {type(obj)}")
    return obj


def _cifar_arrays(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _load_cifar_pickle(path)
    if b"data" not in batch or label_key not in batch:
        keys = ", ".join(repr(k) for k in batch)
        raise DataError(f"{path} lacks b'data' or {label_key!r} (keys: {keys})")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: b'data' must be uint8 N x 3072, got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or (labels.size and not 0 <= labels.min() <= labels.max() < num_classes):
        raise DataError(f"{path}: {label_key!r} must be {data.shape[0]} labels in [0, {num_classes})")
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar(name: str, root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key, num_classes = b"labels", 10
    else:
        folder = root / "cifar-100-python"
        files = [split]
        label_key, num_classes = b"fine_labels", 100
    paths = [folder / f for f in files]
    if not all(p.is_file() for p in paths):
        raise DataError(_LAYOUT[name].format(root=root))
    parts = [_cifar_arrays(p, label_key, num_classes) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ---------------------------------------------------------------- Tiny-ImageNet


def _decode_resized(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BOX)
        return np.asarray(img, dtype=np.uint8)


def _read_tinyimagenet(root: Path, split: str, quiet: bool,
                       size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    base = root / "tiny-imagenet-200"
    layout = _LAYOUT["tinyimagenet"].format(root=root)
    if not (base / "wnids.txt").is_file():
        raise DataError(layout)
    wnids = sorted(w.strip() for w in (base / "wnids.txt").read_text().split() if w.strip())
    index = {w: k for k, w in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    if split == "train":
        for wnid in wnids:
            found = sorted((base / "train" / wnid / "images").glob("*.JPEG"))
            if not found:
                raise DataError(f"{layout} (no images for class {wnid})")
            files += found
            labels += [index[wnid]] * len(found)
    else:
        annotations = base / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise DataError(layout)
        rows = [line.split("\t") for line in annotations.read_text().splitlines() if line.strip()]
        bad = [r for r in rows if len(r) < 2 or r[1] not in index]
        if bad:
            raise DataError(
                f"{annotations}: {len(bad)} lines without a known wnid, e.g. {bad[0]!r}"
            )
        files = [base / "val" / "images" / r[0] for r in rows]
        labels = [index[r[1]] for r in rows]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{layout} (missing {len(missing)} images, e.g. {missing[0]})")
    try:
        import PIL  # noqa: F401
    except ImportError:  # pragma: no cover
        raise DataError("reading Tiny-ImageNet needs Pillow (pip install pillow)") from None
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(
            tqdm(
                pool.map(lambda p: _decode_resized(p, size), files),
                total=len(files),
                desc=f"tinyimagenet {split}",
                disable=not show_progress(not quiet),
            )
        )
    images = np.stack(decoded).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------- digits, synthetic


def cache_dir() -> Path:
    """The folder where derived data small enough to keep is cached.

    Returns
    -------
    Path
        ``$SPARSETOPO_CACHE_DIR``, else ``$XDG_CACHE_HOME/sparsetopo``, else
        ``~/.cache/sparsetopo`` (not created here).
    """
    if os.environ.get("SPARSETOPO_CACHE_DIR"):
        return Path(os.environ["SPARSETOPO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sparsetopo"


def _digits_arrays() -> dict[str, np.ndarray]:
    """The digits (``x`` 1797x64 in 0..16, ``y``) and the indices of the stratified split
    (``train``, ``test``), from ``cache_dir()`` when a file written for this scikit-learn
    version is there: importing scikit-learn costs more than a second, a third of a warm
    ``analyze``. Otherwise computed with scikit-learn and cached (best effort: a cache that
    cannot be written is skipped). The file is an ``.npz`` of integer arrays, read with
    ``allow_pickle=False``."""
    from importlib.metadata import version

    path = cache_dir() / f"digits-split-sklearn-{version('scikit-learn')}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x", "y", "train", "test")}
        if arrays["x"].shape == (1797, 64) and arrays["train"].size + arrays["test"].size == 1797:
            return arrays
    except (OSError, KeyError, ValueError):
        pass
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    train, test = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0, stratify=y)
    arrays = {"x": x.astype(np.uint8), "y": y.astype(np.int64), "train": train, "test": test}
    try:
        ensure_dir(path.parent)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except (OSError, InputError):
        pass
    return arrays


def _read_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    arrays = _digits_arrays()
    idx = arrays["train"] if split == "train" else arrays["test"]
    x = arrays["x"][idx].astype(np.float64)
    small = torch.from_numpy((x / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    images = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    return images.contiguous(), torch.from_numpy(arrays["y"][idx].astype(np.int64))


def _digits_normalisation() -> tuple[tuple[float], tuple[float]]:
    images, _ = _cached(("digits", "train"), lambda: _read_digits("train"))
    pixels = images.double()
    return (float(pixels.mean()),), (float(pixels.std()),)


def _synthetic(
    split: str, shape, num_classes: int, n: int, data_seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    c, h, w = _synthetic_shape(shape)
    if int(num_classes) < 1 or int(n) < 1:
        raise InputError(f"synthetic needs num_classes >= 1 and n >= 1, got {num_classes}, {n}")
    gen = torch.Generator().manual_seed(2 * int(data_seed) + SPLITS.index(split))
    images = torch.randn(int(n), c, h, w, generator=gen)
    labels = torch.randint(0, int(num_classes), (int(n),), generator=gen)
    return images, labels


def _cached(key: tuple, read: Callable[[], tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    if key not in _CACHE:
        images, labels = read()
        _CACHE[key] = (torch.as_tensor(images), torch.as_tensor(labels, dtype=torch.int64))
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every decoded dataset held in memory (the next read decodes the files again)."""
    _CACHE.clear()


# ---------------------------------------------------------------- augmentation


def random_crop_flip_params(
    n: int, generator: torch.Generator, padding: int = PADDING
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop offsets and flip flags of ``n`` images.

    The offsets are drawn first, then the flags, from ``generator`` alone: the same generator
    state gives the same augmentation on any device.

    Parameters
    ----------
    n : int
        Number of images.
    generator : torch.Generator
        Source of the draws (a CPU generator).
    padding : int
        Padding of the crop: offsets are uniform in ``0 .. 2 * padding``.

    Returns
    -------
    offsets : torch.Tensor
        int64, ``n x 2``: ``(dy, dx)`` of every image.
    flips : torch.Tensor
        bool, ``n``: whether each image is flipped horizontally (probability 1/2).
    """
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return offsets, flips


def crop_flip(
    images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int = PADDING
) -> torch.Tensor:
    """Batched random crop with padding and horizontal flip.

    ``out[b] = P[b, :, dy:dy+H, dx:dx+W]`` with ``P`` the images zero-padded by ``padding`` on
    every side and ``(dy, dx) = offsets[b]``, then mirrored along W where ``flips[b]``. Runs on
    the images' device (the parameters are moved there): on a GPU the whole batch is one gather,
    no per-sample step.

    Parameters
    ----------
    images : torch.Tensor
        ``B x C x H x W`` float images (pixels in [0, 1], before normalisation, so that the
        padding is black).
    offsets : torch.Tensor
        ``B x 2`` crop offsets ``(dy, dx)`` in ``0 .. 2 * padding``
        (:func:`random_crop_flip_params`).
    flips : torch.Tensor
        ``B`` booleans: mirror image ``b`` along W.
    padding : int
        Zero padding on every side before the crop.

    Returns
    -------
    torch.Tensor
        ``B x C x H x W``, contiguous, on the images' device.
    """
    b, _, h, w = images.shape
    device = images.device
    offsets, flips = offsets.to(device), flips.to(device)
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=device)  # b x h
    cols = offsets[:, 1, None] + torch.arange(w, device=device)  # b x w
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=device)[:, None, None]
    # advanced indices around a slice: the result is b x h x w x C
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- datasets and loaders


class ImageDataset(Dataset):
    """In-memory image dataset yielding ``(normalised float32 C x H x W tensor, int label)``.

    A sample is ``x = (v - mean_c) / std_c`` with ``v`` the pixel in [0, 1]. With ``augment``
    every ``__getitem__`` draws a crop and flip from the dataset's own generator. Loaders from
    :func:`make_loader` instead draw all randomness in the main process and call
    :meth:`batch`.

    Parameters
    ----------
    images : torch.Tensor
        ``N x C x H x W``, uint8 (pixel ``v = x / 255``) or float (``v = x``).
    labels : torch.Tensor
        ``N`` int64 labels.
    mean, std : tuple of float
        Per-channel normalisation statistics.
    info : DatasetInfo
        What the images are.
    augment : bool
        Random crop (padding :data:`PADDING`) and horizontal flip in ``__getitem__``.
    seed : int
        Seed of the augmentation generator.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        info: DatasetInfo,
        augment: bool = False,
        seed: int = 0,
    ):
        self.images = images
        self.labels = labels
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.info = info
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(
        self,
        indices: torch.Tensor,
        offsets: torch.Tensor | None = None,
        flips: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``indices`` as one normalised batch.

        Parameters
        ----------
        indices : torch.Tensor
            ``B`` sample indices.
        offsets, flips : torch.Tensor, optional
            Crop and flip the samples (:func:`crop_flip`) when both are given.

        Returns
        -------
        x : torch.Tensor
            ``B x C x H x W`` float32, on the dataset's device.
        y : torch.Tensor
            ``B`` int64 labels.
        """
        indices = indices.to(self.images.device)
        x = self.images[indices]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if offsets is not None and flips is not None:
            x = crop_flip(x, offsets, flips)
        return (x - self.mean) / self.std, self.labels[indices]

    @property
    def device(self) -> torch.device:
        """Where the images are."""
        return self.images.device

    def to(self, device: torch.device | str) -> ImageDataset:
        """This dataset with its images, labels and normalisation on ``device``.

        The augmentation generator stays on the CPU, so the same seed draws the same crops and
        flips wherever the images are.

        Parameters
        ----------
        device : torch.device or str
            Target device.

        Returns
        -------
        ImageDataset
            A new dataset on ``device``, or this one when it is already there.
        """
        device = torch.device(device)
        if self.images.device == device:
            return self
        moved = ImageDataset.__new__(ImageDataset)
        moved.__dict__.update(self.__dict__)
        moved.images, moved.labels = self.images.to(device), self.labels.to(device)
        moved.mean, moved.std = self.mean.to(device), self.std.to(device)
        return moved

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        idx = torch.tensor([int(index) % n])
        offsets = flips = None
        if self.augment:
            offsets, flips = random_crop_flip_params(1, self.generator)
        x, y = self.batch(idx, offsets, flips)
        return x[0], int(y[0])


def resize_dataset(dataset: ImageDataset, size: int) -> ImageDataset:
    """``dataset`` with every image resized to ``size x size`` before normalisation.

    Block means (``F.interpolate(mode="area")``) when shrinking, bilinear interpolation
    (``align_corners=False``) when enlarging. The normalisation statistics are kept.

    Parameters
    ----------
    dataset : ImageDataset
        The images to resize.
    size : int
        New height and width; 0 keeps the images as they are.

    Returns
    -------
    ImageDataset
        The resized dataset (float images), or ``dataset`` itself when ``size`` is 0 or its
        images already are ``size x size``.
    """
    if not size or tuple(dataset.images.shape[-2:]) == (size, size):
        return dataset
    x = dataset.images
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if size <= min(x.shape[-2:]):
        x = F.interpolate(x, size=(size, size), mode="area")
    else:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    info = replace(dataset.info, image_size=size, width=None)
    return ImageDataset(x.contiguous(), dataset.labels, tuple(dataset.mean.flatten().tolist()),
                        tuple(dataset.std.flatten().tolist()), info, augment=dataset.augment)


def subset_indices(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """A seeded random subset of ``range(n)``: the first ``size`` of a random permutation.

    Parameters
    ----------
    n : int
        Number of samples.
    size : int
        Samples wanted; 0 or at least ``n``: all of them.
    seed : int
        Seed of the permutation (``torch.randperm``).

    Returns
    -------
    torch.Tensor
        int64 indices: ``size`` of them in permutation order, or ``arange(n)``.
    """
    if not size or size >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


def _resolve_root(data_dir: str | os.PathLike | None) -> Path:
    if data_dir is None:
        data_dir = os.environ.get("SPARSETOPO_DATA_DIR", "data")
    return Path(data_dir).expanduser().resolve()


def get_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    augment: bool = False,
    *,
    seed: int = 0,
    quiet: bool = False,
    shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    n: int = 256,
    data_seed: int = 0,
    image_size: int = 0,
) -> ImageDataset:
    """One split of a dataset, decoded into memory (nothing is downloaded).

    The datasets, their files and their normalisation are described in the module docstring.
    Decoded arrays are cached per process.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    split : {"train", "test"}
        The split (Tiny-ImageNet's ``test`` is its labelled validation set).
    data_dir : str or path-like, optional
        Folder holding cifar10, cifar100 or tinyimagenet; ``None``: ``$SPARSETOPO_DATA_DIR``
        or ``./data``.
    augment : bool
        Random crop and flip in ``__getitem__`` (:class:`ImageDataset`).
    seed : int
        Seed of that per-item augmentation.
    quiet : bool
        No progress bar while decoding Tiny-ImageNet.
    shape : tuple of int
        ``(C, H, W)`` of ``synthetic`` images.
    num_classes : int
        Classes of ``synthetic``.
    n : int
        Images per split of ``synthetic``.
    data_seed : int
        Seed of the ``synthetic`` images and labels.
    image_size : int
        > 0: images resized to ``image_size x image_size`` (:func:`resize_dataset`, cached;
        Tiny-ImageNet at 32 is decoded with Pillow's box filter, as the paper's code does).

    Returns
    -------
    ImageDataset
        The split's images, labels and normalisation.

    Raises
    ------
    InputError
        An unknown dataset or split, or bad ``synthetic`` settings.
    DataError
        A dataset file missing or malformed on disk.
    """
    name = _check_name(name)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    info = dataset_info(name, shape=shape, num_classes=num_classes)
    if name == "synthetic":
        images, labels = _synthetic(split, shape, num_classes, n, data_seed)
        mean, std = (0.0,) * info.in_channels, (1.0,) * info.in_channels
    elif name == "digits":
        images, labels = _cached(("digits", split), lambda: _read_digits(split))
        mean, std = _digits_normalisation()
    else:
        root = _resolve_root(data_dir)
        size = info.image_size
        if name == "tinyimagenet":
            # the paper's 32x32 are Pillow's box-filtered uint8 images, decoded as such
            size = 32 if image_size == 32 else size
            info = replace(info, image_size=size)
            reader = lambda: _read_tinyimagenet(root, split, quiet, size)  # noqa: E731
        else:
            reader = lambda: _read_cifar(name, root, split)  # noqa: E731
        images, labels = _cached((name, split, str(root), size), reader)
        mean, std = NORMALISATION[name]
    dataset = ImageDataset(images, labels, mean, std, info, augment=augment, seed=seed)
    if image_size and tuple(images.shape[-2:]) != (image_size, image_size):
        key = ("resized", name, split, str(data_dir), image_size, shape, num_classes, n,
               data_seed)
        small = _cached(key, lambda: _resized_arrays(dataset, image_size))
        dataset = ImageDataset(*small, mean, std, replace(info, image_size=image_size,
                                                          width=None), augment=augment, seed=seed)
    return dataset


def _resized_arrays(dataset: ImageDataset, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    small = resize_dataset(dataset, size)
    return small.images, small.labels


class _EpochPlan(Sampler):
    """Yields one ``(indices, offsets, flips)`` batch plan at a time; an epoch's order and
    augmentation parameters are drawn from one generator in the main process, so a loader is
    reproducible for any ``num_workers``."""

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, augment: bool, seed: int, drop_last: bool,
        indices: torch.Tensor | None = None,
    ):
        self.indices = indices
        self.n = n if indices is None else len(indices)
        self.batch_size = batch_size
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[tuple]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        if self.indices is not None:
            order = self.indices[order]
        offsets = flips = None
        if self.augment:
            offsets, flips = random_crop_flip_params(self.n, self.generator)
        for k in range(len(self)):
            s = slice(k * self.batch_size, (k + 1) * self.batch_size)
            if offsets is None:
                yield (order[s], None, None)
            else:
                yield (order[s], offsets[s], flips[s])


class _Batches(Dataset):
    """Adapter: item = a batch plan from :class:`_EpochPlan`; ``len`` = number of samples."""

    def __init__(self, base: ImageDataset, n: int | None = None):
        self.base = base
        self.info = base.info
        self.n = len(base) if n is None else n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, plan):
        if isinstance(plan, tuple):
            return self.base.batch(*plan)
        return self.base[plan]


def make_loader(
    name: str,
    split: str = "train",
    batch_size: int = 128,
    data_dir: str | os.PathLike | None = None,
    shuffle: bool | None = None,
    augment: bool | None = None,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    indices: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    **kw,
) -> DataLoader:
    """A deterministic loader of batches of :func:`get_dataset`.

    The sample order and augmentation of every epoch come from
    ``torch.Generator().manual_seed(seed)`` in the main process: two loaders with the same
    arguments yield the same batches, whatever ``num_workers`` and whatever the device.
    ``len(loader.dataset)`` is the number of samples.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    split : {"train", "test"}
        The split.
    batch_size : int
        Samples per batch (the last batch may be smaller unless ``drop_last``).
    data_dir : str or path-like, optional
        As in :func:`get_dataset`.
    shuffle : bool, optional
        A new random order every epoch; ``None``: for the train split.
    augment : bool, optional
        Random crop (padding :data:`PADDING`) and horizontal flip; ``None``: for the train
        split of the datasets in :data:`AUGMENTED_BY_DEFAULT`.
    seed : int
        Seed of the order and the augmentation.
    num_workers : int
        Worker processes of the ``DataLoader``.
    drop_last : bool
        Leave out the last, incomplete batch.
    indices : torch.Tensor, optional
        Restrict the loader to these samples (e.g. :func:`subset_indices`).
    device : torch.device or str, optional
        e.g. ``cuda``: the dataset is copied there once and every batch, its crop and its flip
        are computed there (the order and augmentation parameters are still drawn on the CPU,
        so the batches hold the same samples as on CPU); needs ``num_workers=0``.
    **kw
        Passed to :func:`get_dataset` (``image_size``, the ``synthetic`` settings, ...).

    Returns
    -------
    torch.utils.data.DataLoader
        Batches ``(x: B x C x H x W float32, y: B int64)``.

    Raises
    ------
    InputError
        A batch size that is not a positive integer, a device loader with workers, or what
        :func:`get_dataset` refuses.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    base = get_dataset(name, split, data_dir, augment=False, **kw)
    if device is not None and torch.device(device).type != "cpu":
        if num_workers:
            raise InputError("a loader with its data on a device needs num_workers=0, got "
                             f"{num_workers}")
        base = base.to(device)
    if shuffle is None:
        shuffle = split == "train"
    if augment is None:
        augment = split == "train" and name in AUGMENTED_BY_DEFAULT
    plan = _EpochPlan(len(base), batch_size, bool(shuffle), bool(augment), seed, drop_last,
                      indices)
    return DataLoader(_Batches(base, plan.n), batch_size=None, sampler=plan,
                      num_workers=num_workers)
