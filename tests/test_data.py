"""Datasets read back from tiny fake files in the official formats; loaders and augmentation."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fake_datasets import py2_pickle_bytes, write_cifar10, write_cifar100, write_tinyimagenet

from sparsetopo import data

# Published per-channel statistics (typed here, not imported from the package).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
TINY_MEAN, TINY_STD = (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)


def normalised(images_uint8: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(images_uint8.astype(np.float64) / 255.0)
    m = torch.tensor(mean, dtype=torch.float64)[:, None, None]
    s = torch.tensor(std, dtype=torch.float64)[:, None, None]
    return ((x - m) / s).float()


def all_samples(dataset):
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(xs), list(ys)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    written = {
        "cifar10": write_cifar10(root),
        "cifar100": write_cifar100(root),
        "tinyimagenet": write_tinyimagenet(root),
    }
    yield root, written
    data.clear_cache()


@pytest.mark.parametrize(
    "name, mean, std",
    [("cifar10", CIFAR10_MEAN, CIFAR10_STD), ("cifar100", CIFAR100_MEAN, CIFAR100_STD)],
)
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_read_back(fake_root, name, mean, std, split):
    root, written = fake_root
    ds = data.get_dataset(name, split, data_dir=root)
    expected = written[name][split]
    assert len(ds) == len(expected.labels)
    x, y = all_samples(ds)
    assert x.dtype == torch.float32 and x.shape == (len(ds), 3, 32, 32)
    assert all(isinstance(v, int) for v in y)
    assert y == expected.labels.tolist()
    torch.testing.assert_close(x, normalised(expected.images, mean, std), atol=1e-5, rtol=1e-5)
    assert data.dataset_info(name).num_classes == (10 if name == "cifar10" else 100)


def test_cifar_channel_planes_are_rgb(tmp_path):
    # The official layout stores the 1024 red values first, then green, then blue.
    written = write_cifar10(tmp_path, per_batch=1, n_test=1)
    raw = written["test"].images.reshape(1, -1)
    ds = data.get_dataset("cifar10", "test", data_dir=tmp_path)
    x = ds[0][0] * torch.tensor(CIFAR10_STD)[:, None, None] + torch.tensor(CIFAR10_MEAN)[:, None, None]
    for c in range(3):
        plane = raw[0, c * 1024 : (c + 1) * 1024].reshape(32, 32) / 255.0
        torch.testing.assert_close(x[c], torch.from_numpy(plane).float(), atol=1e-5, rtol=0)


def test_tinyimagenet_read_back(fake_root):
    root, written = fake_root
    for split in ("train", "test"):
        ds = data.get_dataset("tinyimagenet", split, data_dir=root, quiet=True)
        expected = written["tinyimagenet"][split]
        x, y = all_samples(ds)
        assert x.shape == (len(expected.labels), 3, 64, 64)  # the real resolution
        assert y == expected.labels.tolist()  # class k = k-th wnid in sorted order
        want = normalised(expected.images, TINY_MEAN, TINY_STD)
        err = (x - want) * torch.tensor(TINY_STD)[:, None, None] * 255
        assert err.abs().max() <= 3.0  # JPEG rounding
    info = data.dataset_info("tinyimagenet")
    assert info.num_classes == 200 and info.input_shape == (3, 64, 64)
    assert data.dataset_info("tinyimagenet", image_size=32).input_shape == (3, 32, 32)


def test_tinyimagenet_box_resize(tmp_path):
    from PIL import Image

    written = write_tinyimagenet(tmp_path, wnids=("n1",), train_per_class=1, val_per_class=1)
    path = tmp_path / "tiny-imagenet-200" / "train" / "n1" / "images" / "n1_0.JPEG"
    pattern = np.zeros((64, 64, 3), np.uint8)
    pattern[::2, :, 0] = 200  # alternating rows: a 2x2 box mean gives 100 everywhere
    pattern[:, ::2, 1] = 120  # alternating columns: 60
    Image.fromarray(pattern).save(path, format="PNG")  # lossless content under the .JPEG name
    ds = data.get_dataset("tinyimagenet", "train", data_dir=tmp_path, quiet=True, image_size=32)
    assert ds.info.input_shape == (3, 32, 32)  # the paper's setting
    x, _ = ds[0]
    v = x * torch.tensor(TINY_STD)[:, None, None] + torch.tensor(TINY_MEAN)[:, None, None]
    torch.testing.assert_close(v[0], torch.full((32, 32), 100 / 255), atol=1e-5, rtol=0)
    torch.testing.assert_close(v[1], torch.full((32, 32), 60 / 255), atol=1e-5, rtol=0)
    torch.testing.assert_close(v[2], torch.zeros(32, 32), atol=1e-5, rtol=0)
    assert written["wnids"] == ["n1"]
    full, _ = data.get_dataset("tinyimagenet", "train", data_dir=tmp_path, quiet=True)[0]
    v = full * torch.tensor(TINY_STD)[:, None, None] + torch.tensor(TINY_MEAN)[:, None, None]
    assert v.shape == (3, 64, 64)  # by default the rows are not averaged: 200, 0, 200, ...
    torch.testing.assert_close(v[0, ::2], torch.full((32, 64), 200 / 255), atol=1e-5, rtol=0)
    torch.testing.assert_close(v[0, 1::2], torch.zeros(32, 64), atol=1e-5, rtol=0)


def test_tinyimagenet_paper_size_is_pillows_uint8_box_filter(tmp_path):
    """``image_size=32`` gives the paper's pixels: Pillow's box filter on the JPEG, rounded to
    uint8 (not the float 2x2 mean of the 64x64 images)."""
    from PIL import Image

    write_tinyimagenet(tmp_path, wnids=("n1",), train_per_class=1, val_per_class=1)
    path = tmp_path / "tiny-imagenet-200" / "train" / "n1" / "images" / "n1_0.JPEG"
    pattern = np.zeros((64, 64, 3), np.uint8)
    pattern[::2, ::2, 0] = 1  # 2x2 means of 0.25, which Pillow stores as a whole uint8
    Image.fromarray(pattern).save(path, format="PNG")
    x, _ = data.get_dataset("tinyimagenet", "train", data_dir=tmp_path, quiet=True,
                            image_size=32)[0]
    v = x * torch.tensor(TINY_STD)[:, None, None] + torch.tensor(TINY_MEAN)[:, None, None]
    want = Image.open(path).convert("RGB").resize((32, 32), Image.Resampling.BOX)
    torch.testing.assert_close(v, torch.from_numpy(np.asarray(want, np.float32) / 255).permute(
        2, 0, 1), atol=1e-6, rtol=0)
    assert ((v[0] * 255 - 0.25).abs() > 0.5).all()  # not the float mean


def test_digits_against_sklearn():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x_all, y_all = load_digits(return_X_y=True)
    tr, te = train_test_split(np.arange(len(y_all)), test_size=0.25, random_state=0, stratify=y_all)
    train = data.get_dataset("digits", "train")
    test = data.get_dataset("digits", "test")
    assert (len(train), len(test)) == (1347, 450)
    assert data.dataset_info("digits").input_shape == (1, 32, 32)
    x, y = all_samples(train)
    assert x.shape == (1347, 1, 32, 32) and y == y_all[tr].tolist()
    # normalised with the training statistics: mean 0, std 1 over the training split
    assert abs(x.double().mean().item()) < 1e-4 and abs(x.double().std().item() - 1) < 1e-4
    # undo the normalisation with the train pixel statistics, compare with torch's bilinear
    up = F.interpolate(
        torch.from_numpy(x_all[tr] / 16.0).float().reshape(-1, 1, 8, 8), size=32, mode="bilinear"
    )
    mean, std = up.double().mean(), up.double().std()
    torch.testing.assert_close(x.double() * std + mean, up.double(), atol=1e-5, rtol=0)
    xt, yt = all_samples(test)
    assert yt == y_all[te].tolist()
    assert np.bincount(yt).min() >= 43  # stratified: every digit ~45 times


def test_digits_split_cache_is_used_and_equals_sklearn(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSETOPO_CACHE_DIR", str(tmp_path))
    data.clear_cache()
    first = data._read_digits("test")
    files = list(tmp_path.glob("digits-split-sklearn-*.npz"))
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) != "0o600"
    data.clear_cache()
    import sklearn.model_selection

    def no_sklearn(*a, **k):
        raise AssertionError("the cached split should be read, not recomputed")

    monkeypatch.setattr(sklearn.model_selection, "train_test_split", no_sklearn)
    again = data._read_digits("test")  # from the file: train_test_split is not called
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    files[0].write_bytes(b"not an npz")  # a broken cache is recomputed, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("SPARSETOPO_CACHE_DIR", str(tmp_path))
    data.clear_cache()
    fixed = data._read_digits("test")
    assert torch.equal(first[0], fixed[0])
    data.clear_cache()


def test_digits_without_a_writable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SPARSETOPO_CACHE_DIR", str(blocker / "sub"))  # under a file
    data.clear_cache()
    images, labels = data._read_digits("train")
    assert images.shape == (1347, 1, 32, 32) and len(labels) == 1347
    data.clear_cache()


def test_synthetic():
    ds = data.get_dataset("synthetic", "train", shape=(2, 5, 7), num_classes=3, n=40, data_seed=4)
    x, y = all_samples(ds)
    assert x.shape == (40, 2, 5, 7) and set(y) <= {0, 1, 2} and len(set(y)) == 3
    again = all_samples(data.get_dataset("synthetic", "train", shape=(2, 5, 7), num_classes=3, n=40, data_seed=4))
    assert torch.equal(x, again[0]) and y == again[1]
    other = all_samples(data.get_dataset("synthetic", "test", shape=(2, 5, 7), num_classes=3, n=40, data_seed=4))
    assert not torch.equal(x, other[0])
    assert abs(x.mean().item()) < 0.2 and abs(x.std().item() - 1) < 0.2
    info = data.dataset_info("synthetic", shape=(2, 5, 7), num_classes=3)
    assert (info.in_channels, info.num_classes, info.input_shape) == (2, 3, (2, 5, 7))


def naive_crop_flip(img: torch.Tensor, dy: int, dx: int, flip: bool, pad: int = 4) -> torch.Tensor:
    c, h, w = img.shape
    padded = torch.zeros(c, h + 2 * pad, w + 2 * pad)
    padded[:, pad : pad + h, pad : pad + w] = img
    out = padded[:, dy : dy + h, dx : dx + w]
    return torch.flip(out, dims=[2]) if flip else out


def test_crop_flip_matches_naive_slicing():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(16, 3, 9, 11, generator=g)
    offsets, flips = data.random_crop_flip_params(16, g)
    assert offsets.min() >= 0 and offsets.max() <= 8 and 0 < flips.sum() < 16
    got = data.crop_flip(imgs, offsets, flips)
    for b in range(16):
        want = naive_crop_flip(imgs[b], int(offsets[b, 0]), int(offsets[b, 1]), bool(flips[b]))
        assert torch.equal(got[b], want)


def _epoch(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True))


def test_loader_determinism_and_augmentation(fake_root):
    root, written = fake_root
    make = lambda seed, **kw: data.make_loader("cifar10", "train", batch_size=4, data_dir=root, seed=seed, **kw)  # noqa: E731
    a, b, c = make(0), make(0), make(1)
    a1, a2 = _epoch(a), _epoch(a)
    assert _same(a1, _epoch(b)) and _same(a2, _epoch(b))  # same seed: same epochs
    assert not _same(a1, a2)  # a new order and augmentation every epoch
    assert not _same(a1, _epoch(c))
    assert [len(y) for _, y in a1] == [4, 4, 4, 3] and len(a) == 4 and len(a.dataset) == 15
    # every augmented image is a padded crop (+ flip) of the original image with that label
    originals = normalised(written["cifar10"]["train"].images, CIFAR10_MEAN, CIFAR10_STD)
    pad_value = -torch.tensor(CIFAR10_MEAN) / torch.tensor(CIFAR10_STD)
    x, y = torch.cat([x for x, _ in a1]), torch.cat([y for _, y in a1])
    assert sorted(y.tolist()) == sorted(written["cifar10"]["train"].labels.tolist())
    labels = written["cifar10"]["train"].labels
    shift = pad_value[:, None, None]  # after subtracting it, the padding is exactly 0
    n_augmented = 0
    for img, label in zip(x, y.tolist(), strict=True):
        found = [
            (dy, dx, f)
            for i in np.flatnonzero(labels == label)
            for dy in range(9) for dx in range(9) for f in (False, True)
            if torch.allclose(img - shift, naive_crop_flip(originals[i] - shift, dy, dx, f), atol=1e-5)
        ]  # fmt: skip
        assert found
        n_augmented += (4, 4, False) not in found
    assert n_augmented > len(x) // 2


@pytest.mark.slow
def test_loader_with_workers_matches_single_process(fake_root):
    root, _ = fake_root
    kw = {"batch_size": 4, "data_dir": root, "seed": 3}
    single = _epoch(data.make_loader("cifar10", "train", **kw))
    multi = _epoch(data.make_loader("cifar10", "train", num_workers=2, **kw))
    assert _same(single, multi)


def test_test_loader_is_ordered_and_plain(fake_root):
    root, written = fake_root
    loader = data.make_loader("cifar100", "test", batch_size=3, data_dir=root)
    x = torch.cat([x for x, _ in loader])
    y = torch.cat([y for _, y in loader])
    assert y.tolist() == written["cifar100"]["test"].labels.tolist()
    torch.testing.assert_close(x, normalised(written["cifar100"]["test"].images, CIFAR100_MEAN, CIFAR100_STD))
    digits = data.make_loader("digits", "train", batch_size=500, drop_last=True)
    assert [len(y) for _, y in digits] == [500, 500]
    x_plain = torch.cat([x for x, _ in data.make_loader("digits", "train", shuffle=False, batch_size=2000)])
    assert torch.equal(x_plain, all_samples(data.get_dataset("digits"))[0])  # no default augment


def test_dataset_level_augment_is_seeded(fake_root):
    root, _ = fake_root
    a = data.get_dataset("cifar10", "test", data_dir=root, augment=True, seed=1)
    b = data.get_dataset("cifar10", "test", data_dir=root, augment=True, seed=1)
    plain = data.get_dataset("cifar10", "test", data_dir=root)
    xa, xb, xp = all_samples(a)[0], all_samples(b)[0], all_samples(plain)[0]
    assert torch.equal(xa, xb) and not torch.equal(xa, xp)


def test_decoded_arrays_are_cached(fake_root):
    root, _ = fake_root
    a = data.get_dataset("cifar10", "train", data_dir=root)
    b = data.get_dataset("cifar10", "train", data_dir=root)
    assert a.images is b.images


@pytest.mark.parametrize(
    "name, needle",
    [
        ("cifar10", "cifar-10-batches-py/{data_batch_1..5,test_batch}"),
        ("cifar100", "cifar-100-python/{train,test}"),
        ("tinyimagenet", "tiny-imagenet-200/{wnids.txt"),
    ],
)
def test_missing_directory_is_one_line_error(tmp_path, name, needle):
    with pytest.raises(data.DataError) as err:
        data.get_dataset(name, "train", data_dir=tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message and needle in message and "nothing is downloaded" in message
    assert str(tmp_path / "nowhere") in message


def test_partial_cifar_is_an_error(tmp_path):
    write_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(data.DataError, match="data_batch_1..5"):
        data.get_dataset("cifar10", "train", data_dir=tmp_path)
    assert len(data.get_dataset("cifar10", "test", data_dir=tmp_path)) == 4


def test_default_data_dir_from_environment(tmp_path, monkeypatch):
    write_cifar100(tmp_path, n_train=2, n_test=1)
    monkeypatch.setenv("SPARSETOPO_DATA_DIR", str(tmp_path))
    assert len(data.get_dataset("cifar100", "test")) == 1


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    write_cifar10(tmp_path)
    target = tmp_path / "should-not-exist"
    evil = {b"data": _Payload(str(target)), b"labels": [0]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle_bytes(evil))
    with pytest.raises(data.DataError, match=r"refusing to load global (posix|os)\.mkdir"):
        data.get_dataset("cifar10", "test", data_dir=tmp_path)
    assert not target.exists()


def test_malformed_cifar_content(tmp_path):
    write_cifar10(tmp_path)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle_bytes(bad))
    with pytest.raises(data.DataError, match="uint8 N x 3072"):
        data.get_dataset("cifar10", "test", data_dir=tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(data.DataError, match="not a CIFAR python pickle"):
        data.get_dataset("cifar10", "test", data_dir=tmp_path)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*cifar10, cifar100, tinyimagenet, digits, synthetic"):
        data.get_dataset("mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.make_loader("imagenet", "train")
    with pytest.raises(ValueError, match="unknown split 'val'.*train, test"):
        data.get_dataset("digits", "val")
    with pytest.raises(ValueError, match="batch_size"):
        data.make_loader("digits", "train", batch_size=0)
    with pytest.raises(TypeError):
        data.get_dataset("digits", "train", colour=True)


def test_dataset_info():
    assert data.DATASETS == ("cifar10", "cifar100", "tinyimagenet", "digits", "synthetic")
    info = data.dataset_info("cifar100")
    assert (info.name, info.in_channels, info.num_classes, info.image_size) == ("cifar100", 3, 100, 32)


def test_tinyimagenet_bad_annotation(tmp_path):
    write_tinyimagenet(tmp_path, wnids=("n1", "n2"), train_per_class=1, val_per_class=1)
    ann = tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_9.JPEG\tn7\t0\t0\t1\t1\n")
    with pytest.raises(data.DataError, match="1 lines without a known wnid.*n7"):
        data.get_dataset("tinyimagenet", "test", data_dir=tmp_path, quiet=True)
    os.remove(tmp_path / "tiny-imagenet-200" / "train" / "n2" / "images" / "n2_0.JPEG")
    with pytest.raises(data.DataError, match="no images for class n2"):
        data.get_dataset("tinyimagenet", "train", data_dir=tmp_path, quiet=True)


def test_loader_on_a_device_yields_the_cpu_batches(fake_root):
    """``make_loader(device=...)`` holds the data on the device and crops/flips it there; the
    order and augmentation parameters still come from the CPU generator, so the batches are the
    CPU batches (checked on a GPU when there is one; on CPU the device path is the CPU path)."""
    root, _ = fake_root
    make = lambda **kw: data.make_loader("cifar10", "train", batch_size=4, data_dir=root,  # noqa: E731
                                         seed=3, augment=True, **kw)
    cpu = _epoch(make())
    assert _same(cpu, _epoch(make(device="cpu")))
    base = data.get_dataset("cifar10", "train", root)
    assert base.to("cpu") is base and base.device == torch.device("cpu")
    with pytest.raises(ValueError, match="num_workers=0"):
        make(device="cuda", num_workers=2)  # refused before anything touches CUDA
    if not torch.cuda.is_available():
        return
    on_gpu = make(device="cuda")
    assert on_gpu.dataset.base.images.is_cuda
    batches = _epoch(on_gpu)
    assert all(x.is_cuda and y.is_cuda for x, y in batches)
    assert len(batches) == len(cpu)
    for (x, y), (xc, yc) in zip(batches, cpu, strict=True):
        assert torch.equal(y.cpu(), yc)
        torch.testing.assert_close(x.cpu(), xc, rtol=1e-6, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(16, 3, 9, 11, generator=g)
    offsets, flips = data.random_crop_flip_params(16, g)
    assert torch.equal(data.crop_flip(imgs.cuda(), offsets, flips).cpu(),
                       data.crop_flip(imgs, offsets, flips))
