"""The discrete bottleneck: nearest-code search, VQ and EMA codebooks, grouped and residual codebooks, the dVAE's
Gumbel-softmax, and the fused Triton search kernel. Family-agnostic: imports no family."""
