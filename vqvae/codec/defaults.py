"""The codec's defaults, in one place: the CLI (``vqvae compress``), :func:`vqvae.codec.compress` and
:meth:`vqvae.codec.codec.Codec.compress` all take them from here. (A model's default quality is its own, in its
``codec.json``: :attr:`vqvae.codec.codec.Codec.default_quality`.)"""

DEFAULT_MODEL = "coco-rvq4"  # what vqvae compress uses without --model

# Steps of encoder-side RD optimisation that ``vqvae compress`` and :func:`compress` take unless told:
# on Kodak with the shipped coco-rvq4, 5 steps give a BD-rate of -37.3 % against JPEG (greedy codes -34.9 %) for
# 2.3-5.1x the greedy encoder's time (benchmarks/bench_codec.py --refine 5, 2026-12-01). Decoding is unchanged.
DEFAULT_REFINE = 5
