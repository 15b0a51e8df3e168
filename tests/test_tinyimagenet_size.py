"""Tiny-ImageNet networks are built, pruned and encoded at 64x64 (its real resolution) by
default; ``--input-size 32`` gives the paper's 32x32 setting; the published tables keep 32."""

from __future__ import annotations

from pathlib import Path

from fake_datasets import write_tinyimagenet

from sparsetopo import analysis
from sparsetopo.study.published import load_published


def test_default_is_64(tmp_path):
    net = analysis.build_network("resnet20", "uniform", 0.9, 0, "tinyimagenet", tmp_path,
                                 quiet=True)
    assert net.input_shape == (3, 64, 64)
    conv6 = analysis.build_network("conv6", "uniform", 0.9, 0, "tinyimagenet", tmp_path,
                                   quiet=True)
    assert conv6.input_shape == (3, 64, 64)
    assert conv6.model.classifier[0].in_features == 256 * 8 * 8  # built for 64x64


def test_input_size_32_is_the_papers_setting_with_its_pixels(tmp_path):
    """SNIP prunes with the dataset's images at the encoded size: 32x32 decoded as the paper's
    code decodes them."""
    write_tinyimagenet(tmp_path, train_per_class=3)
    net = analysis.build_network("resnet20", "snip", 0.9, 0, "tinyimagenet", tmp_path,
                                 quiet=True, input_size=32)
    assert net.input_shape == (3, 32, 32)
    net64 = analysis.build_network("resnet20", "snip", 0.9, 0, "tinyimagenet", tmp_path,
                                   quiet=True)
    assert net64.input_shape == (3, 64, 64)


def test_published_tables_keep_32():
    runs = load_published(Path(__file__).parent / "data" / "published",
                          datasets=["tinyimagenet"])
    assert len(runs) and set(runs["image_size"]) == {32}
