"""Long clips go through the audio nets window by window (bounded memory): the same codes and waveforms as one pass."""

from __future__ import annotations

import pytest
import torch

from vqvae.audio import inference
from vqvae.audio.model import AudioVQVAE, AudioVQVAEConfig


@pytest.mark.parametrize("blocks, output", [(2, "mulaw"), (4, "waveform")])
def test_windowed_codes_and_waveforms_equal_one_pass(monkeypatch, blocks, output):
    torch.manual_seed(0)
    m = AudioVQVAE(AudioVQVAEConfig(num_speakers=2, speaker_dim=4, hidden=8, res_hidden=4, num_res_blocks=blocks, num_downsamples=3,
                                    codebook_size=16, embedding_dim=4, output=output)).eval()
    x = torch.rand(2, 1, 8 * 53) * 2 - 1
    spk = torch.tensor([0, 1])
    whole_codes = m.encode(x)
    g = torch.Generator().manual_seed(0)
    whole = m.decode(whole_codes, spk, generator=g)
    monkeypatch.setattr(inference, "WINDOW", 7)  # 53 code cells: 8 windows, every seam inside the clip
    codes = inference.encode(m, x)
    assert torch.equal(codes, whole_codes)
    y = inference.decode(m, codes, spk, generator=torch.Generator().manual_seed(0))
    assert y.shape == whole.shape
    if output == "waveform":  # deterministic: equal up to float rounding
        assert torch.allclose(y, whole, atol=1e-5)
