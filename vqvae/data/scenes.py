"""Captioned scenes for text-to-image: two MNIST / Fashion-MNIST objects with attributes, and their captions.

Each 64 x 64 RGB scene holds two objects in a spatial relation, each with a
class (a digit 0-9 from MNIST or one of the ten Fashion-MNIST items), a colour,
and a size. The caption is generated from a template, e.g.
``"a red 3 above a small blue sneaker"``: ``a [small|big] <colour> <class>
<relation> a [small|big] <colour> <class>``, with the relation one of
``above``, ``below``, ``left of``, ``right of``. The first object is placed in
the half that the relation names (the top half for "above", and so on), and
the second in the other half.

**Held-out combinations.** A fixed, seeded fifth of the (colour, class) pairs
never appears in the ``train`` split. The ``heldout`` split puts at least one
such pair in every scene, so prompt faithfulness can be measured on
combinations the model never saw. The ``test`` split draws like ``train``
(seen pairs only), from the datasets' test images.

Every scene comes with its attributes, ``attrs (N, 2, 4)`` int64 holding
(class 0..19, colour, size 0 small / 1 big, cell): ``cell`` is 0..3 for the
top, bottom, left and right halves. These are what the project's scoring
classifier must read back from generated images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vqvae.core.errors import DataError
from vqvae.data.images import load_images

COLOURS = {"red": (255, 40, 40), "green": (40, 220, 40), "blue": (60, 90, 255), "yellow": (250, 230, 40),
           "magenta": (240, 50, 240), "cyan": (40, 230, 230)}
FASHION_NAMES = ["t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
CLASS_NAMES = [str(d) for d in range(10)] + FASHION_NAMES  # 0-9 digits, 10-19 Fashion-MNIST
RELATIONS = {"above": (0, 1), "below": (1, 0), "left of": (2, 3), "right of": (3, 2)}  # cells of (first, second)
SIZES = {0: 18, 1: 28}  # glyph side in pixels: small, big
CANVAS = 64
HELD_OUT_FRACTION = 0.2
SPLITS = ("train", "test", "heldout", "reader")  # the seed offsets follow this order


DEFAULT_TRAIN = 20_000  # scenes in the train split of the dataset "scenes" ("scenes:N" for N); test and heldout get N / 10


@dataclass
class SceneSet:
    images: torch.Tensor  # uint8 (N, 3, 64, 64)
    captions: list[str]
    attrs: torch.Tensor  # int64 (N, 2, 4): class, colour, size, cell


HEADS = (("layout", 2), ("class0", len(CLASS_NAMES)), ("colour0", len(COLOURS)), ("size0", 2),
         ("class1", len(CLASS_NAMES)), ("colour1", len(COLOURS)), ("size1", 2))
"""What the scene reader predicts: the layout (0: one object above the other, 1: side by side), then the class, colour
and size of the object in slot 0 (the top or left half) and in slot 1 (the bottom or right half)."""


def slot_labels(attrs: torch.Tensor) -> torch.Tensor:
    """Scene attributes ``(N, 2, 4)`` (class, colour, size, cell per object) -> the reader's labels ``(N, 7)`` (:data:`HEADS`).

    Cells 0 / 1 are top / bottom and 2 / 3 left / right, so an object's slot is ``cell % 2`` and the layout ``cell // 2``.
    """
    attrs = torch.as_tensor(attrs)
    out = torch.zeros(attrs.shape[0], len(HEADS), dtype=torch.long)
    out[:, 0] = attrs[:, 0, 3] // 2
    for j in range(2):
        slot = attrs[:, j, 3] % 2
        for f in range(3):  # class, colour, size
            out.scatter_(1, (1 + 3 * slot + f)[:, None], attrs[:, j, f : f + 1])
    return out


def faithful(pred: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """Per scene, whether predicted reader labels ``(N, 7)`` get every attribute of ``attrs (N, 2, 4)`` right ``(N,)`` bool."""
    return (pred == slot_labels(attrs)).all(1)


def attribute_accuracy(pred: torch.Tensor, attrs: torch.Tensor) -> dict:
    """How well predicted reader labels ``(N, 7)`` match the scenes' attributes ``(N, 2, 4)``.

    ``all``: the fraction of scenes with every attribute right (the faithfulness of a generated scene to its caption:
    layout, and each object's class, colour and size in its place); then one accuracy per attribute kind, with
    ``position`` the layout, and class / colour / size counted over both objects; ``class_by_class``: the class
    accuracy per true class (:func:`class_accuracy`).
    """
    ok = pred == slot_labels(attrs)
    return {"all": float(faithful(pred, attrs).float().mean()), "position": float(ok[:, 0].float().mean()),
            **{name: float(ok[:, [1 + f, 4 + f]].float().mean()) for f, name in enumerate(("class", "colour", "size"))},
            "class_by_class": class_accuracy(pred, attrs)}


def class_accuracy(pred: torch.Tensor, attrs: torch.Tensor) -> dict[str, float]:
    """Per true class (by name, classes present only), the fraction of its objects whose class the reader got right in
    their slot: which look-alikes (shirt, pullover, coat) hold the faithfulness figure back."""
    truth = slot_labels(attrs)[:, [1, 4]].reshape(-1)
    ok = (torch.as_tensor(pred)[:, [1, 4]].reshape(-1) == truth).float()
    return {CLASS_NAMES[k]: float(ok[truth == k].mean()) for k in truth.unique().tolist()}


def held_out_pairs(seed: int = 1234) -> set[tuple[int, int]]:
    """The (colour index, class) pairs never shown in training: a seeded fifth of all of them."""
    pairs = [(c, k) for c in range(len(COLOURS)) for k in range(len(CLASS_NAMES))]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pairs), int(round(HELD_OUT_FRACTION * len(pairs))), replace=False)
    return {pairs[i] for i in pick}


def caption(attrs: np.ndarray, relation: str) -> str:
    names = list(COLOURS)
    parts = [f"a {'small' if s == 0 else 'big'} {names[c]} {CLASS_NAMES[k]}" for k, c, s, _ in attrs]
    return f"{parts[0]} {relation} {parts[1]}"


def _glyphs(split: str, root: str | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per class, the 28 x 28 grey glyphs of MNIST digits then Fashion-MNIST items."""
    out = []
    for name in ("mnist", "fashion-mnist"):
        ds = load_images(name, "train" if split in ("train", "reader") else "test", root=root)
        x, y = ds.images[:, 0].numpy(), ds.labels.numpy()
        out += [x[y == k] for k in range(10)]
    return out


def _place(canvas: np.ndarray, glyph: np.ndarray, colour: tuple, size: int, cell: int, rng) -> None:
    g = torch.nn.functional.interpolate(torch.from_numpy(glyph).float()[None, None], size=(size, size), mode="bilinear",
                                        align_corners=False)[0, 0].numpy() / 255.0
    half = CANVAS // 2
    # the cell's region: top / bottom / left / right half; the glyph is centred across the other axis, with jitter
    if cell in (0, 1):
        y0 = (0 if cell == 0 else half) + rng.integers(0, half - size + 1)
        x0 = rng.integers(max(0, half - size // 2 - 8), min(CANVAS - size, half - size // 2 + 8) + 1)
    else:
        x0 = (0 if cell == 2 else half) + rng.integers(0, half - size + 1)
        y0 = rng.integers(max(0, half - size // 2 - 8), min(CANVAS - size, half - size // 2 + 8) + 1)
    region = canvas[:, y0 : y0 + size, x0 : x0 + size]
    np.maximum(region, (g[None] * np.array(colour, dtype=np.float32)[:, None, None]), out=region)


def make_scenes(n: int, split: str = "train", seed: int = 0, root: str | None = None) -> SceneSet:
    """``n`` scenes of ``split``, reproducible for a seed.

    ``train``, ``test``, ``heldout`` as in the module docstring; ``reader``: the training glyphs with every
    colour-class pair, held-out ones included, for the scene reader. The reader is the instrument that scores
    the generator on held-out pairs, so it must not share the generator's gaps: trained on seen pairs only, it
    learns that (say) a cyan object is never a 3 and misreads exactly the scenes it is meant to score.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    held = held_out_pairs()
    glyphs = _glyphs(split, root)
    rng = np.random.default_rng(seed + 10**6 * SPLITS.index(split))
    images = np.zeros((n, 3, CANVAS, CANVAS), np.float32)
    attrs = np.zeros((n, 2, 4), np.int64)
    caps = []
    rel_names = list(RELATIONS)
    for i in range(n):
        while True:
            obj = np.stack([rng.integers(0, len(CLASS_NAMES), 2), rng.integers(0, len(COLOURS), 2), rng.integers(0, 2, 2)], 1)
            unseen = [(int(c), int(k)) in held for k, c, _ in obj]
            if split == "reader" or (split == "heldout") == any(unseen):
                break
        rel = rel_names[rng.integers(0, len(rel_names))]
        cells = RELATIONS[rel]
        for j in range(2):
            k, c, s = obj[j]
            pool = glyphs[k]
            _place(images[i], pool[rng.integers(0, len(pool))], list(COLOURS.values())[c], SIZES[int(s)], cells[j], rng)
            attrs[i, j] = (k, c, s, cells[j])
        caps.append(caption(attrs[i], rel))
    return SceneSet(torch.from_numpy(images.clip(0, 255).round().astype(np.uint8)), caps, torch.from_numpy(attrs))


def parse_name(name: str) -> int | None:
    """``"scenes"`` -> the default train size, ``"scenes:N"`` -> N, anything else -> None."""
    key = name.lower()
    if key == "scenes":
        return DEFAULT_TRAIN
    if key.startswith("scenes:"):
        try:
            n = int(key.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 10:
            raise DataError(f"{name!r}: the scene count must be an integer >= 10, e.g. scenes:2000")
        return n
    return None


_CACHE: dict = {}


def scene_split(n_train: int, split: str, root: str | None = None) -> SceneSet:
    """The ``split`` (train, test, heldout, reader) of the scenes dataset with ``n_train`` training scenes (cached per process)."""
    key = (n_train, split, root)
    if key not in _CACHE:
        n = n_train if split in ("train", "reader") else max(10, n_train // 10)
        _CACHE[key] = make_scenes(n, split, seed=0, root=root)
    return _CACHE[key]
