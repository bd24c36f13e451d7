"""Speech: the paper's raw-waveform VQ-VAE with a speaker-conditioned decoder (parallel or WaveNet), its inference,
speaker conversion and how it is measured, training task and commands."""
