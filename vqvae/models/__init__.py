"""Model registry: short name -> model class (each with its ``config_cls``).

``create_model(name, config)`` is the one factory; run directories store the
name and the config, so any command can rebuild a model from a run.
"""

from __future__ import annotations

from vqvae.errors import ConfigError
from vqvae.models.vqvae import VQVAE, VQVAEConfig

MODELS = {"vqvae": VQVAE}


def model_class(name: str):
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def create_model(name: str, config):
    return model_class(name)(config)


__all__ = ["MODELS", "VQVAE", "VQVAEConfig", "create_model", "model_class"]
