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


def _game(scenario: str, episode: int):
    """A started game of ``scenario``, seeded by ``episode``, in the dataset's settings."""
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
    game.set_episode_timeout(10 * STEPS * FRAME_SKIP)
    game.set_seed(episode)
    game.init()
    game.new_episode()
    return game


def _observe(game, frames: list, variables: list) -> None:
    if game.is_episode_finished():  # the goal reached or the timeout: play on in a new episode of the same game
        game.new_episode()
    state = game.get_state()
    frames.append(resize(state.screen_buffer))
    variables.append(np.asarray(state.game_variables, dtype=np.float32))


def _act(game, action: int) -> None:
    game.make_action([int(i == action) for i in range(len(ACTIONS))], FRAME_SKIP)


def play(scenario: str, episode: int, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Episode ``episode`` of ``scenario`` under :func:`explore`, seeded by its number: frames, actions, variables.
    An episode that ends early (the goal reached, the timeout) continues in a new episode of the same game."""
    game = _game(scenario, episode)
    rng = np.random.default_rng(episode)
    frames, actions, variables, moved = [], [], [], []
    try:
        action, hold = explore(rng)
        run = 0  # steps taken in the current run of ``action``
        while len(frames) < steps:
            _observe(game, frames, variables)
            if len(variables) > 1:
                moved.append(float(np.hypot(*(variables[-1][:2] - variables[-2][:2]))))
            blocked = action in MOVES and run >= 2 and max(moved[-2:]) < 1.0
            if hold == 0 or blocked:
                action, hold = explore(rng, blocked)
                run = 0
            actions.append(action)
            hold -= 1
            run += 1
            _act(game, action)
    finally:
        game.close()
    return {"frames": np.stack(frames), "actions": np.asarray(actions, dtype=np.int8), "variables": np.stack(variables)}


def replay(scenario: str, episode: int, actions) -> dict[str, np.ndarray]:
    """Episode ``episode``'s game (the same seed) under the given ``actions`` (ids of :data:`ACTIONS`): the
    ``len(actions) + 1`` frames and variables they lead through. With an episode's recorded actions it gives the
    episode's frames again; with other actions from some step on, the true frames of a rollout from there."""
    actions = [int(a) for a in actions]
    if any(not 0 <= a < len(ACTIONS) for a in actions):
        raise DataError(f"actions must be ids 0..{len(ACTIONS) - 1} of {', '.join(ACTIONS)}")
    game = _game(scenario, episode)
    frames, variables = [], []
    try:
        _observe(game, frames, variables)
        for a in actions:
            _act(game, a)
            _observe(game, frames, variables)
    finally:
        game.close()
    return {"frames": np.stack(frames), "variables": np.stack(variables)}


def parse_actions(text: str) -> list[int]:
    """``"F F L SL"`` -> action ids, or a one-line error naming the valid ones."""
    names = text.replace(",", " ").split()
    bad = [n for n in names if n.upper() not in ACTIONS]
    if bad or not names:
        raise DataError(f"actions are {', '.join(ACTIONS)} separated by spaces (e.g. \"F F L\"), got {text!r}")
    return [ACTIONS.index(n.upper()) for n in names]


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


def episode(i: int, scenario: str = DEFAULT_SCENARIO, root: str | None = None, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Episode ``i`` (frames, actions, variables) from the cache, generated into it if missing."""
    if i < 0:
        raise DataError(f"episode numbers start at 0, got {i}")
    path = cache_dir(scenario, root, steps) / f"ep{i:05d}.npz"
    if not path.is_file():
        buf = io.BytesIO()
        np.savez_compressed(buf, **play(scenario, i, steps))
        atomic_write(path, buf.getvalue())  # a killed run leaves whole episodes only
    with np.load(path) as z:
        return {k: z[k] for k in ("frames", "actions", "variables")}


def episodes(n: int, split: str, scenario: str = DEFAULT_SCENARIO, root: str | None = None, steps: int = STEPS,
             progress: bool = True) -> Episodes:
    """The ``split`` (``train``: episodes not divisible by 10; ``test``: 0, 10, 20, ...) of the first ``n`` episodes,
    generated into the cache where missing."""
    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}")
    wanted = [i for i in range(n) if (i % 10 == 0) == (split == "test")]
    if not wanted:
        raise DataError(f"doom:{n} has no {split} episodes (the test split is every tenth episode: take N >= 1)")
    folder = cache_dir(scenario, root, steps)
    missing = sum(not (folder / f"ep{i:05d}.npz").is_file() for i in wanted)
    bar = tqdm(wanted, desc=f"generating {scenario} episodes", disable=not progress or not missing)  # shown when generating
    eps = [episode(i, scenario, root, steps) for i in bar]
    return Episodes(np.stack([e["frames"] for e in eps]), np.stack([e["actions"] for e in eps]).astype(np.int64),
                    np.stack([e["variables"] for e in eps]), np.asarray(wanted))
