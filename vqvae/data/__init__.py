"""Datasets found by name under a data root: image sets, audio clips, the captioned scenes and COCO-mini captions,
downloads and augmentation. Family-agnostic: imports no family."""
