"""Autoregressive priors over a tokenizer's codes: the gated PixelCNN and a transformer over raster-ordered codes,
the codes cache and the prior-tokenizer binding, sampling, bits/dim, and the demo."""
