"""vqvae: neural discrete representation learning."""
