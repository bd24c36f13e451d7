"""First-person 3D frames from ViZDoom, the installable peer of the paper's DeepMind Lab (section 4.2).

``doom`` (or ``doom:N`` for N episodes) names seeded episodes of a ViZDoom scenario (``data.scenario``, default
``my_way_home``: a maze of rooms), generated once into a cache under a data root and reused:

* frames: the 160 x 120 RGB render resized to 84 x 84 with an area (box) filter, as the paper's 84 x 84 x 3 frames;
* actions: the button pressed after each frame, one of :data:`ACTIONS` (held for :data:`FRAME_SKIP` game tics);
* game variables: the player's POSITION_X, POSITION_Y and ANGLE (degrees) at each frame.

The exploration policy (:func:`explore`) draws an action, forward-biased, runs forward for 4-12 steps or turns and
strafes for 1-6, and turns away for 4-10 steps when two moves in a row went nowhere (blocked by a wall), so that it
wanders through the maze's rooms rather than pressing against the first wall. Episode ``i`` is seeded by ``i`` (the game's seed and the policy's), so replaying the same
episode gives the same frames, actions and variables. Every tenth episode (0, 10, ...) is the test split.

Generation shows progress and is resumable: each episode is one ``.npz`` file, written atomically, and episodes
already in the cache are not generated again. ViZDoom is an optional dependency (``pip install -e '.[world]'``).
"""

from __future__ import annotations

import importlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from vqvae.core.errors import DataError
from vqvae.core.files import atomic_write
from vqvae.data.roots import data_roots

ACTIONS = ("L", "R", "F", "SL", "SR")  # TURN_LEFT, TURN_RIGHT, MOVE_FORWARD, MOVE_LEFT, MOVE_RIGHT
BUTTONS = ("TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD", "MOVE_LEFT", "MOVE_RIGHT")
POLICY_P = (0.12, 0.12, 0.66, 0.05, 0.05)  # the exploration policy's action probabilities (forward-biased)
VARIABLES = ("POSITION_X", "POSITION_Y", "ANGLE")
FRAME = 84
FRAME_SKIP = 4  # game tics per action (the frames are 4 tics apart)
STEPS = 200  # frames per episode
DEFAULT_EPISODES = 100
DEFAULT_SCENARIO = "my_way_home"
PREFIX = "doom"


@dataclass
class Episodes:
    """Episodes of equal length: ``frames`` uint8 ``(E, T, 3, 84, 84)``, ``actions`` int64 ``(E, T)`` (taken after
    each frame), ``variables`` float32 ``(E, T, 3)`` (x, y, angle), ``index`` the episode numbers ``(E,)``."""

    frames: np.ndarray
    actions: np.ndarray
    variables: np.ndarray
    index: np.ndarray


def parse_name(name: str) -> int | None:
    """Episodes named by ``doom`` / ``doom:N``; None for any other dataset name."""
    if name == PREFIX:
        return DEFAULT_EPISODES
    if name.startswith(PREFIX + ":"):
        n = name[len(PREFIX) + 1 :]
        if not n.isdigit() or int(n) < 1:
            raise DataError(f"doom:N needs a number of episodes >= 1, got {name!r}")
        return int(n)
    return None


def vizdoom():
    """The vizdoom module, or a one-line error saying how to install it."""
    try:
        return importlib.import_module("vizdoom")
    except ImportError:
        raise DataError("the doom dataset needs ViZDoom: pip install -e '.[world]' (or pip install vizdoom)") from None


def scenarios() -> list[str]:
    vzd = vizdoom()
    return sorted(p[:-4] for p in os.listdir(vzd.scenarios_path) if p.endswith(".cfg"))


def explore(rng: np.random.Generator, blocked: bool = False):
    """The exploration policy's next run of actions: ``(action, repeats)``: forward runs of 4-12 steps, turns and
    strafes of 1-6; ``blocked`` (the current move went nowhere twice in a row) turns for 4-10 steps. Turning does
    not count as being stuck: only a move that went nowhere does (an earlier rule counted turns and spun in place)."""
    if blocked:
        return int(rng.integers(0, 2)), int(rng.integers(4, 11))
    a = int(rng.choice(len(ACTIONS), p=POLICY_P))
    return a, int(rng.integers(4, 13)) if ACTIONS[a] == "F" else int(rng.integers(1, 7))


MOVES = {ACTIONS.index(a) for a in ("F", "SL", "SR")}


def resize(frame: np.ndarray) -> np.ndarray:
    """``(120, 160, 3)`` uint8 render -> ``(3, 84, 84)`` uint8, area (box) filter."""
    return np.asarray(Image.fromarray(frame).resize((FRAME, FRAME), Image.BOX)).transpose(2, 0, 1).copy()


def play(scenario: str, episode: int, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Episode ``episode`` of ``scenario`` under :func:`explore`, seeded by its number: frames, actions, variables.
    An episode that ends early (the goal reached, the timeout) continues in a new episode of the same game."""
    vzd = vizdoom()
    cfg = Path(vzd.scenarios_path) / f"{scenario}.cfg"
    if not cfg.is_file():
        raise DataError(f"unknown ViZDoom scenario {scenario!r}; the installed ones: {', '.join(scenarios())}")
    game = vzd.DoomGame()
    game.load_config(str(cfg))
    game.set_window_visible(False)
    game.set_doom_config_path(str(Path(tempfile.gettempdir()) / "vqvae-vizdoom.ini"))  # not _vizdoom.ini in the working directory
    game.set_mode(vzd.Mode.PLAYER)
    game.set_screen_format(vzd.ScreenFormat.RGB24)
    game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
    game.set_available_buttons([getattr(vzd.Button, b) for b in BUTTONS])
    game.set_available_game_variables([getattr(vzd.GameVariable, v) for v in VARIABLES])
    game.set_episode_timeout(10 * steps * FRAME_SKIP)
    game.set_seed(episode)
    game.init()
    rng = np.random.default_rng(episode)
    frames, actions, variables, moved = [], [], [], []
    try:
        game.new_episode()
        action, hold = explore(rng)
        run = 0  # steps taken in the current run of ``action``
        while len(frames) < steps:
            if game.is_episode_finished():
                game.new_episode()
            state = game.get_state()
            frames.append(resize(state.screen_buffer))
            variables.append(np.asarray(state.game_variables, dtype=np.float32))
            if len(variables) > 1:
                moved.append(float(np.hypot(*(variables[-1][:2] - variables[-2][:2]))))
            blocked = action in MOVES and run >= 2 and max(moved[-2:]) < 1.0
            if hold == 0 or blocked:
                action, hold = explore(rng, blocked)
                run = 0
            actions.append(action)
            hold -= 1
            run += 1
            game.make_action([int(i == action) for i in range(len(ACTIONS))], FRAME_SKIP)
    finally:
        game.close()
    return {"frames": np.stack(frames), "actions": np.asarray(actions, dtype=np.int8), "variables": np.stack(variables)}


def cache_dir(scenario: str, root: str | None, steps: int = STEPS) -> Path:
    """Where the episodes live: an existing cache under any data root, else a new one under the first writable of
    ``root``, ``$VQVAE_DATA`` and ``~/.cache/vqvae/data``."""
    name = f"doom/{scenario}-skip{FRAME_SKIP}-{steps}"
    for r in data_roots(root):
        if (r / name).is_dir():
            return r / name
    for r in [Path(root)] if root else [Path(p) for p in (os.environ.get("VQVAE_DATA"),) if p] + [Path.home() / ".cache/vqvae/data"]:
        try:
            (r / name).mkdir(parents=True, exist_ok=True)
            return r / name
        except OSError:
            continue
    raise DataError(f"no writable data root for the doom episodes (tried {root or '$VQVAE_DATA and ~/.cache/vqvae/data'})")


def episodes(n: int, split: str, scenario: str = DEFAULT_SCENARIO, root: str | None = None, steps: int = STEPS,
             progress: bool = True) -> Episodes:
    """The ``split`` (``train``: episodes not divisible by 10; ``test``: 0, 10, 20, ...) of the first ``n`` episodes,
    generated into the cache where missing."""
    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}")
    folder = cache_dir(scenario, root, steps)
    wanted = [i for i in range(n) if (i % 10 == 0) == (split == "test")]
    missing = [i for i in wanted if not (folder / f"ep{i:05d}.npz").is_file()]
    for i in tqdm(missing, desc=f"generating {scenario} episodes", disable=not progress or not missing):
        buf = io.BytesIO()
        np.savez_compressed(buf, **play(scenario, i, steps))
        atomic_write(folder / f"ep{i:05d}.npz", buf.getvalue())  # a killed run leaves whole episodes only
    eps = [np.load(folder / f"ep{i:05d}.npz") for i in wanted]
    if not eps:
        raise DataError(f"doom:{n} has no {split} episodes (the test split is every tenth episode: take N >= 1)")
    return Episodes(np.stack([e["frames"] for e in eps]), np.stack([e["actions"] for e in eps]).astype(np.int64),
                    np.stack([e["variables"] for e in eps]), np.asarray(wanted))
