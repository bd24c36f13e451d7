"""The doom dataset (ViZDoom episodes): seeded and replayable, cached once, resumable, split by episode."""

from __future__ import annotations

import numpy as np
import torch
import pytest

from vqvae.core.errors import DataError
from vqvae.data import doom

pytest.importorskip("vizdoom", reason="the doom dataset needs ViZDoom (pip install -e '.[world]')")


def test_an_episode_replays_exactly_and_has_the_papers_frames():
    a, b = doom.play("my_way_home", 3, steps=12), doom.play("my_way_home", 3, steps=12)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["frames"].shape == (12, 3, 84, 84) and a["frames"].dtype == np.uint8 and a["variables"].shape == (12, 3)
    assert set(a["actions"].tolist()) <= set(range(len(doom.ACTIONS)))
    c = doom.play("my_way_home", 4, steps=12)
    assert not np.array_equal(a["frames"], c["frames"])  # another episode, another seed


def test_episodes_are_generated_once_split_by_episode_and_resumed(tmp_path, monkeypatch):
    test = doom.episodes(12, "test", root=str(tmp_path), steps=6, progress=False)
    train = doom.episodes(12, "train", root=str(tmp_path), steps=6, progress=False)
    assert test.index.tolist() == [0, 10] and train.index.tolist() == [i for i in range(12) if i % 10]
    assert train.frames.shape == (10, 6, 3, 84, 84) and train.actions.shape == (10, 6) and train.variables.shape == (10, 6, 3)
    folder = doom.cache_dir("my_way_home", str(tmp_path), 6)
    (folder / "ep00005.npz").unlink()  # as if killed before this episode was written
    played = []
    real = doom.play
    monkeypatch.setattr(doom, "play", lambda s, i, n: (played.append(i), real(s, i, n))[1])
    again = doom.episodes(12, "train", root=str(tmp_path), steps=6, progress=False)
    assert played == [5] and np.array_equal(again.frames, train.frames)  # only the missing one, the same frames


def test_names_and_bad_input_are_one_line_errors(tmp_path, monkeypatch):
    assert doom.parse_name("doom") == doom.DEFAULT_EPISODES and doom.parse_name("doom:7") == 7 and doom.parse_name("mnist") is None
    with pytest.raises(DataError, match="doom:N needs a number of episodes"):
        doom.parse_name("doom:x")
    with pytest.raises(DataError, match="unknown ViZDoom scenario 'nowhere'; the installed ones: .*my_way_home"):
        doom.play("nowhere", 0, 2)
    monkeypatch.setattr(doom.importlib, "import_module", lambda name: (_ for _ in ()).throw(ImportError(name)))
    with pytest.raises(DataError, match=r"pip install -e '.\[world\]'"):
        doom.episodes(2, "test", root=str(tmp_path), progress=False)


def test_vqvae_train_reads_doom_frames(tmp_path):
    from vqvae.core.config import load_config
    from vqvae.data.splits import image_split

    cfg = load_config("tiny", "doom:2", [f"--data.root={tmp_path}"])
    x = image_split(cfg.data, "test").images
    assert x.shape == (doom.STEPS, 3, 84, 84) and x.dtype.is_floating_point is False


def test_doom_frames_resize_to_data_image_size(tmp_path):
    from vqvae.core.config import load_config
    from vqvae.data.splits import image_split

    cfg = load_config("tiny", "doom:1", [f"--data.root={tmp_path}", "--data.image_size=64"])
    full = load_config("tiny", "doom:1", [f"--data.root={tmp_path}"])
    x, y = image_split(cfg.data, "test").images, image_split(full.data, "test").images
    assert x.shape == (doom.STEPS, 3, 64, 64) and x.dtype == torch.uint8
    assert (x.float().mean() - y.float().mean()).abs() < 2  # the same frames, smaller


def test_replaying_an_episodes_actions_gives_its_frames_and_other_actions_diverge():
    e = doom.play("my_way_home", 2, steps=30)
    r = doom.replay("my_way_home", 2, e["actions"][:29])
    assert np.array_equal(r["frames"], e["frames"]) and np.array_equal(r["variables"], e["variables"])
    turn = doom.replay("my_way_home", 2, list(e["actions"][:10]) + [doom.ACTIONS.index("L")] * 5)
    assert np.array_equal(turn["frames"][:11], e["frames"][:11]) and turn["frames"].shape[0] == 16
    assert not np.array_equal(turn["variables"][15, 2], e["variables"][15, 2])  # turned left instead
    assert doom.parse_actions("F l, SR") == [2, 0, 4]
    with pytest.raises(DataError, match="actions are L, R, F, SL, SR"):
        doom.parse_actions("F X")
