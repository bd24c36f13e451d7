"""The video model: its sequence layout, causality and action conditioning, the KV cache against recomputation,
what it learns in a toy world whose frames follow the actions, and rollouts from the command line."""

from __future__ import annotations

import pytest
import torch

from vqvae.world.recipes import episode_windows
from vqvae.world.video import VideoConfig, VideoModel

TINY = dict(codebook_size=6, height=2, width=2, actions=3, frames=3, n_layer=2, n_head=2, n_embd=32, dropout=0.0)


def _toy_world(n: int, steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Episodes of 2 x 2 frames whose codes shift with the actions: action 0 subtracts 1 from every code, action 1 adds
    1, action 2 keeps them (mod 6): the next frame is a function of the last one and the action between."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.randint(0, 3, (n, steps), generator=g)
    frames = [torch.randint(0, 6, (n, 2, 2), generator=g)]
    for t in range(steps - 1):
        step = torch.tensor([-1, 1, 0])[acts[:, t]]
        frames.append((frames[-1] + step[:, None, None]) % 6)
    return torch.stack(frames, 1), acts


def test_the_sequence_puts_each_frame_after_its_control_token():
    m = VideoModel(VideoConfig(**TINY))
    codes = torch.tensor([[[[1, 2], [3, 4]], [[5, 0], [1, 2]]]])
    seq = m.sequence(codes, torch.tensor([[2, 1]]))
    assert seq.tolist() == [[m.bos, 1, 2, 3, 4, 6 + 2, 5, 0, 1, 2]]  # BOS, frame 0, action 2 (id K + 2), frame 1
    windows, actions = episode_windows(torch.arange(2 * 5).view(2, 5, 1, 1), torch.arange(10).view(2, 5), 3, stride=2)
    assert windows.shape == (4, 3, 1, 1) and windows[:, :, 0, 0].tolist() == [[0, 1, 2], [2, 3, 4], [5, 6, 7], [7, 8, 9]]
    assert torch.equal(actions, windows[:, :, 0, 0])


@torch.no_grad()
def test_a_frame_sees_only_what_came_before_and_its_action_changes_it():
    torch.manual_seed(0)
    m = VideoModel(VideoConfig(**TINY)).eval()
    codes, acts = _toy_world(2, 3)
    base = m.logits(codes, acts)
    assert base.shape == (2, 3, 4, 6)
    other = acts.clone()
    other[:, 1] = (other[:, 1] + 1) % 3  # the action between frames 1 and 2
    moved = (m.logits(codes, other) - base).abs().amax(dim=(0, 2, 3))
    assert moved[:2].max() == 0 and moved[2] > 0  # frames 0 and 1 cannot see it; frame 2 is conditioned on it
    later = codes.clone()
    later[:, 1, 1, 0] = (later[:, 1, 1, 0] + 1) % 6  # frame 1's third code
    moved = (m.logits(later, acts) - base).abs().amax(dim=(0, 3))  # (frames, codes)
    assert moved[0].max() == 0 and moved[1, :3].max() == 0 and moved[1, 3] > 0 and moved[2].max() > 0


@torch.no_grad()
def test_rollouts_are_the_same_with_and_without_the_cache():
    torch.manual_seed(0)
    m = VideoModel(VideoConfig(**TINY)).eval()
    codes, acts = _toy_world(3, 2)
    a = m.next_frame(codes, acts, torch.Generator().manual_seed(4))
    b = m.next_frame(codes, acts, torch.Generator().manual_seed(4), use_cache=False)
    assert a.shape == (3, 2, 2) and torch.equal(a, b)
    r = m.rollout(codes[:, :1], torch.randint(0, 3, (3, 5)), torch.Generator().manual_seed(1))
    assert r.shape == (3, 5, 2, 2) and int(r.max()) < 6
    with pytest.raises(ValueError, match=r"expected code maps \(B, 1..2, 2, 2\)"):
        m.next_frame(torch.zeros(1, 3, 2, 2, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


def test_it_learns_a_world_whose_frames_follow_the_actions():
    torch.manual_seed(0)
    m = VideoModel(VideoConfig(**TINY))
    codes, acts = _toy_world(256, 3)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for step in range(250):
        i = torch.randint(0, 256, (32,), generator=torch.Generator().manual_seed(step))
        loss = m(codes[i], acts[i]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    test_codes, test_acts = _toy_world(64, 3, seed=1)
    assert float(m(test_codes, test_acts).bits_per_code) < 0.5  # uniform: log2 6 = 2.58; the frames are determined
    nxt = m.next_frame(test_codes[:, :2], test_acts[:, :2], torch.Generator().manual_seed(0), temperature=0.5)
    assert (nxt == test_codes[:, 2]).float().mean() > 0.9  # the action between is followed


def test_turns_and_horizon_scores():
    from vqvae.world.evaluation import turn_agreement
    from vqvae.world.rollout import PSNR_CAP, horizon_scores

    true = torch.tensor([[0.0, 30.0, 30.0, 350.0]])  # left 30, none, right 40 (across 0)
    assert turn_agreement(torch.tensor([[10.0, 20.0, 50.0, 40.0]]), true) == (2, 2)
    assert turn_agreement(torch.tensor([[10.0, 5.0, 50.0, 60.0]]), true) == (0, 2)
    frames = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    s = horizon_scores(frames, frames, frames[:, 0])
    assert s["psnr"] == [PSNR_CAP] * 3 and s["copy_psnr"][0] == PSNR_CAP and s["copy_psnr"][1] < PSNR_CAP
    assert s["ssim"][0] == pytest.approx(1.0)
