"""``vqvae serve``: a local demo page over the shipped models (the codec, Fashion-MNIST samples, speaker conversion,
text to image). It uses the families through their public functions (:mod:`vqvae.serve.actions`); nothing imports it."""
