"""Instruments that score generated samples: a classifier trained by the project (images or speech), sample
accuracy, Fréchet distances on its features, and Inception FID where its weights are at hand."""
