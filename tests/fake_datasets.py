"""Tiny fake CIFAR-10, CIFAR-100 and Tiny-ImageNet trees in the official on-disk formats.

CIFAR files are written as the official Python-2 ``cPickle`` protocol-2 files are: dicts with
byte-string keys, ``b"data"`` a uint8 ``N x 3072`` numpy array (R, G, B planes), labels as a
list of ints, every string a py2 ``str`` (``BINSTRING`` opcode) and the array rebuilt by
``numpy.core.multiarray._reconstruct``. Tiny-ImageNet is a ``tiny-imagenet-200/`` tree of
64x64 JPEG files with ``wnids.txt`` and ``val/val_annotations.txt``.

Every writer returns what it wrote, so tests can compare what the loader reads back.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class _Py2Pickler(pickle._Pickler):
    """Pure-Python pickler emitting ``str``/``bytes`` as Python-2 byte strings."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle_bytes(obj) -> bytes:
    """``obj`` pickled as Python 2's ``cPickle.dumps(obj, 2)`` would write it (numpy arrays
    referring to ``numpy.core.multiarray._reconstruct``)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(
        b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n"
    )


def _write_pickle(path: Path, obj) -> None:
    path.write_bytes(py2_pickle_bytes(obj))


@dataclass
class FakeSplit:
    images: np.ndarray  # N x 3 x 32 x 32 uint8 (CIFAR) or N x 3 x 64 x 64 uint8 (Tiny-ImageNet)
    labels: np.ndarray  # N int64


def _random_cifar(rng: np.random.Generator, n: int, num_classes: int, start: int) -> FakeSplit:
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = (np.arange(start, start + n) % num_classes).astype(np.int64)
    return FakeSplit(images, labels)


def write_cifar10(root: str | Path, per_batch: int = 3, n_test: int = 4, seed: int = 0) -> dict:
    """Write ``root/cifar-10-batches-py/`` (5 train batches of ``per_batch`` images, a test
    batch of ``n_test``, ``batches.meta``); returns ``{"train": FakeSplit, "test": FakeSplit}``."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = [_random_cifar(rng, per_batch, 10, i * per_batch) for i in range(5)]
    test = _random_cifar(rng, n_test, 10, 7)
    named = [(f"data_batch_{i + 1}", b) for i, b in enumerate(batches)] + [("test_batch", test)]
    for i, (fname, split) in enumerate(named):
        _write_pickle(
            folder / fname,
            {
                b"batch_label": f"training batch {i + 1} of 5" if i < 5 else "testing batch 1 of 1",
                b"labels": [int(v) for v in split.labels],
                b"data": split.images.reshape(len(split.labels), -1),
                b"filenames": [f"img_{i}_{j}.png" for j in range(len(split.labels))],
            },
        )
    _write_pickle(
        folder / "batches.meta",
        {b"num_cases_per_batch": per_batch, b"label_names": [f"c{k}" for k in range(10)],
         b"num_vis": 3072},
    )  # fmt: skip
    train = FakeSplit(
        np.concatenate([b.images for b in batches]), np.concatenate([b.labels for b in batches])
    )
    return {"train": train, "test": test}


def write_cifar100(root: str | Path, n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict:
    """Write ``root/cifar-100-python/{train,test,meta}``; returns ``{"train", "test"}`` splits
    (fine labels)."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {"train": _random_cifar(rng, n_train, 100, 95), "test": _random_cifar(rng, n_test, 100, 3)}
    for split, data in out.items():
        _write_pickle(
            folder / split,
            {
                b"filenames": [f"{split}_{j}.png" for j in range(len(data.labels))],
                b"batch_label": f"{split}ing batch 1 of 1",
                b"fine_labels": [int(v) for v in data.labels],
                b"coarse_labels": [int(v) // 5 for v in data.labels],
                b"data": data.images.reshape(len(data.labels), -1),
            },
        )
    _write_pickle(
        folder / "meta",
        {b"fine_label_names": [f"f{k}" for k in range(100)],
         b"coarse_label_names": [f"c{k}" for k in range(20)]},
    )  # fmt: skip
    return out


def write_tinyimagenet(
    root: str | Path,
    wnids: tuple[str, ...] = ("n02", "n01", "n03"),
    train_per_class: int = 2,
    val_per_class: int = 2,
) -> dict:
    """Write ``root/tiny-imagenet-200/`` with 64x64 JPEGs. Image ``j`` of class ``k`` (``k`` the
    position in sorted ``wnids``) is a constant colour ``colour(k, j)``; the last training image
    of every class is stored as greyscale (as some real ones are). ``wnids.txt`` lists the
    wnids unsorted. Returns ``{"wnids": sorted wnids, "train"/"test": FakeSplit}`` (64x64)."""
    from PIL import Image

    base = Path(root) / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True, exist_ok=True)
    (base / "test" / "images").mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\tclass {w}\n" for w in wnids))
    ordered = sorted(wnids)

    def colour(k: int, j: int, split: int) -> tuple[int, int, int]:
        return ((40 + 60 * k) % 256, (200 - 50 * j) % 256, 30 + 100 * split)

    train_images, train_labels, val_images, val_labels, annotations = [], [], [], [], []
    for k, wnid in enumerate(ordered):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True, exist_ok=True)
        boxes = []
        for j in range(train_per_class):
            rgb = colour(k, j, 0)
            img = Image.new("RGB", (64, 64), rgb)
            if j == train_per_class - 1:
                img = img.convert("L")
                grey = int(np.asarray(img)[0, 0])
                rgb = (grey, grey, grey)
            img.save(folder / f"{wnid}_{j}.JPEG", format="JPEG", quality=95)
            boxes.append(f"{wnid}_{j}.JPEG\t0\t0\t63\t63\n")
            train_images.append(np.broadcast_to(np.array(rgb, np.uint8)[:, None, None], (3, 64, 64)))
            train_labels.append(k)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    for j in range(val_per_class):
        for k, wnid in enumerate(ordered[::-1]):  # interleaved classes, as in the real file
            k = ordered.index(wnid)
            fname = f"val_{len(annotations)}.JPEG"
            rgb = colour(k, j, 1)
            Image.new("RGB", (64, 64), rgb).save(base / "val" / "images" / fname, format="JPEG", quality=95)
            annotations.append(f"{fname}\t{wnid}\t1\t2\t60\t61\n")
            val_images.append(np.broadcast_to(np.array(rgb, np.uint8)[:, None, None], (3, 64, 64)))
            val_labels.append(k)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(base / "test" / "images" / "test_0.JPEG", format="JPEG")
    (base / "val" / "val_annotations.txt").write_text("".join(annotations))
    return {
        "wnids": ordered,
        "train": FakeSplit(np.stack(train_images), np.array(train_labels, np.int64)),
        "test": FakeSplit(np.stack(val_images), np.array(val_labels, np.int64)),
    }
