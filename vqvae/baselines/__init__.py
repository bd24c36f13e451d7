"""The paper's baselines (van den Oord et al. 2017, section 4.1): the same encoder and decoder as the VQ-VAE with
another bottleneck. ``vae``: continuous Gaussian latents (Kingma & Welling 2014), bounded by the ELBO and the
importance-weighted bound (Burda et al. 2016). ``vimco``: categorical latents trained with the multi-sample
score-function estimator VIMCO (Mnih & Rezende 2016). See :mod:`vqvae.baselines.estimators` for the maths."""
