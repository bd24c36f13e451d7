"""Optional fused kernels (Triton); every module here imports without Triton and reports ``AVAILABLE``."""
