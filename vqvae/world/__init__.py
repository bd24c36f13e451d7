"""First-person worlds (ViZDoom, the paper's DeepMind Lab experiments): the second-stage VQ-VAE over a tokenizer's
code maps, the position and heading probe, and (later) action-conditioned video in latent space."""
