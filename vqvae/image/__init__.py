"""Image tokenizers: the VQ-VAE of van den Oord et al. (2017) and DALL-E's dVAE; their likelihoods, metrics,
inference (encode, decode, reconstruct, evaluate), training tasks and commands."""
