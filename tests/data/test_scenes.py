"""The captioned-scene generator: captions agree with what is drawn, held-out pairs stay out of training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqvae.data import scenes as scenes_mod
from vqvae.core.errors import DataError
from vqvae.data.scenes import caption, CLASS_NAMES, COLOURS, held_out_pairs, make_scenes, RELATIONS, SIZES


@pytest.fixture(scope="module")
def scenes():
    try:
        return {s: make_scenes(40, s, seed=3) for s in ("train", "test", "heldout", "reader")}
    except DataError as e:
        pytest.skip(f"MNIST / Fashion-MNIST not available: {e}")


def test_shapes_and_reproducibility(scenes):
    tr = scenes["train"]
    assert tr.images.shape == (40, 3, 64, 64) and tr.images.dtype == torch.uint8 and tr.attrs.shape == (40, 2, 4)
    again = make_scenes(40, "train", seed=3)
    assert torch.equal(again.images, tr.images) and again.captions == tr.captions
    assert not torch.equal(make_scenes(40, "train", seed=4).images, tr.images)


def test_captions_name_the_attributes(scenes):
    names = list(COLOURS)
    for s in scenes.values():
        for cap, a in zip(s.captions, s.attrs.numpy()):
            rel = next(r for r, cells in RELATIONS.items() if cells == (a[0, 3], a[1, 3]))
            assert cap == caption(a, rel)
            for k, c, sz, _ in a:
                assert f"{'small' if sz == 0 else 'big'} {names[c]} {CLASS_NAMES[k]}" in cap


def test_objects_are_drawn_in_their_colour_and_half(scenes):
    half = 32
    for img, a in zip(scenes["test"].images.numpy().astype(float), scenes["test"].attrs.numpy()):
        for k, c, sz, cell in a:
            region = {0: img[:, :half], 1: img[:, half:], 2: img[:, :, :half], 3: img[:, :, half:]}[cell]
            lit = region.max(0) > 60
            assert lit.sum() > 10, "the object is drawn in its half"
            mean = region[:, lit].mean(1)
            want = np.array(COLOURS[list(COLOURS)[c]], float)
            # the other object never enters this half, so the dominant colour is this object's
            assert np.corrcoef(mean, want)[0, 1] > 0.9


def test_held_out_pairs_never_in_train_always_in_heldout(scenes):
    held = held_out_pairs()
    assert len(held) == round(0.2 * len(COLOURS) * len(CLASS_NAMES))
    pairs = lambda s: [{(int(c), int(k)) for k, c, _, _ in a} for a in s.attrs.numpy()]  # noqa: E731
    assert all(not (p & held) for p in pairs(scenes["train"]))
    assert all(not (p & held) for p in pairs(scenes["test"]))
    assert all(p & held for p in pairs(scenes["heldout"]))
    assert set(SIZES) == {0, 1}


def test_reader_split_draws_every_pair_from_the_training_glyphs(scenes, monkeypatch):
    held = held_out_pairs()
    pairs = [{(int(c), int(k)) for k, c, _, _ in a} for a in scenes["reader"].attrs.numpy()]
    assert any(p & held for p in pairs) and any(not (p & held) for p in pairs)  # held-out and seen pairs alike
    seen = []
    real = scenes_mod.load_images
    monkeypatch.setattr(scenes_mod, "load_images", lambda name, split, **kw: seen.append(split) or real(name, split, **kw))
    make_scenes(10, "reader", seed=3)
    make_scenes(10, "test", seed=3)
    assert seen == ["train", "train", "test", "test"]  # MNIST and Fashion-MNIST each: the reader never sees test glyphs
    with pytest.raises(ValueError, match="reader"):
        make_scenes(10, "valid")
