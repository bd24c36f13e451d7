"""The codec's defaults, in one place: the CLI (``vqvae compress``), :func:`vqvae.codec.compress` and
:meth:`vqvae.codec.codec.Codec.compress` all take them from here. (A model's default quality is its own, in its
``codec.json``: :attr:`vqvae.codec.codec.Codec.default_quality`.)"""

DEFAULT_MODEL = "coco-rvq4"  # what vqvae compress uses without --model

# Steps of encoder-side RD optimisation that ``vqvae compress`` and :func:`compress` take unless told:
# on Kodak with coco-rvq4, 5 steps give a BD-rate of -33.4 % against JPEG (greedy codes -29.3 %, 20 steps
# -35.2 %) for 2.3-4.6x the greedy encoder's time (benchmarks/bench_codec.py --refine 5). Decoding is unchanged.
DEFAULT_REFINE = 5
