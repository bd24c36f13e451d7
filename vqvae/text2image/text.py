"""Text for DALL-E: a byte-level BPE tokenizer trained on the captions, and DALL-E's fixed text length.

Built on Hugging Face ``tokenizers`` (BPE model, byte-level pre-tokenizer and
decoder, lower-casing), so any string tokenizes: words the BPE never saw split
into known pieces, down to single bytes; there is no unknown token.

DALL-E (Ramesh et al. 2021, section 2.2) gives the text a fixed length of
``text_len`` tokens and pads with "a special padding token for each of the
positions": here the ids ``vocab_size + i`` for position ``i``, so the
transformer learns a distinct embedding per padded position. Longer prompts
are truncated with a warning; an empty prompt is an error.

The trained tokenizer is a JSON file saved in the run directory
(:meth:`TextTokenizer.save`, :meth:`TextTokenizer.load`), so generation needs
only the run.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from vqvae.core.errors import DataError, VQVAEError
from vqvae.core.files import atomic_write


class TextTokenizer:
    def __init__(self, tokenizer, text_len: int):
        if text_len < 1:
            raise VQVAEError(f"text_len must be >= 1, got {text_len}")
        self.tok, self.text_len = tokenizer, text_len

    @classmethod
    def train(cls, texts: list[str], vocab_size: int = 1024, text_len: int = 32, min_frequency: int = 1) -> "TextTokenizer":
        """A byte-level BPE with ``vocab_size`` tokens (256 byte tokens included) learnt from ``texts``."""
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise DataError("no captions to train the BPE on")
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, text_len)

    @property
    def vocab_size(self) -> int:
        """BPE tokens; the padding ids follow them (``vocab_size + position``)."""
        return self.tok.get_vocab_size()

    @property
    def total_size(self) -> int:
        """Embedding rows the transformer needs: BPE tokens plus one padding token per position."""
        return self.vocab_size + self.text_len

    def encode(self, text: str, warn: bool = True) -> torch.Tensor:
        """``text`` -> int64 ``(text_len,)``: BPE ids, then position-specific padding."""
        if not isinstance(text, str) or not text.strip():
            raise VQVAEError("the prompt is empty: describe the image, e.g. \"a red 3 above a blue 7\"")
        ids = self.tok.encode(text).ids
        if len(ids) > self.text_len:
            if warn:
                warnings.warn(f"the prompt has {len(ids)} tokens; only the first {self.text_len} are used", stacklevel=2)
            ids = ids[: self.text_len]
        pad = [self.vocab_size + i for i in range(len(ids), self.text_len)]
        return torch.tensor(ids + pad, dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> str:
        """Ids (padding dropped) -> text."""
        return self.tok.decode([int(i) for i in ids if int(i) < self.vocab_size]).strip()

    def save(self, path: str | Path) -> None:
        atomic_write(Path(path), json.dumps({"text_len": self.text_len, "tokenizer": json.loads(self.tok.to_str())}).encode())

    @classmethod
    def load(cls, path: str | Path) -> "TextTokenizer":
        p = Path(path)
        try:
            raw = json.loads(p.read_text())
            return cls(Tokenizer.from_str(json.dumps(raw["tokenizer"])), int(raw["text_len"]))
        except FileNotFoundError:
            raise VQVAEError(f"no text tokenizer at {p}") from None
        except (ValueError, KeyError, TypeError, Exception) as e:  # tokenizers raises its own Exception type
            raise VQVAEError(f"{p} is not a text tokenizer saved by vqvae ({e})") from None
