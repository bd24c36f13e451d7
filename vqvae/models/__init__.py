"""Model registry: short name -> model class (each with its ``config_cls``).

``create_model(name, config)`` is the one factory; run directories store the
name and the config, so any command can rebuild a model from a run.
"""

from __future__ import annotations

from vqvae.errors import ConfigError
from vqvae.models.audio_vqvae import AudioVQVAE, AudioVQVAEConfig
from vqvae.models.classifier import Classifier, ClassifierConfig
from vqvae.models.clip import Clip, ClipConfig
from vqvae.models.dalle import Dalle, DalleConfig
from vqvae.models.dvae import DVAE, DVAEConfig
from vqvae.models.scene_reader import SceneReader, SceneReaderConfig
from vqvae.models.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.models.transformer import TransformerConfig, TransformerPrior
from vqvae.models.vqvae import VQVAE, VQVAEConfig

MODELS = {"vqvae": VQVAE, "dvae": DVAE, "audio-vqvae": AudioVQVAE, "classifier": Classifier, "scene-reader": SceneReader, "pixelcnn": PixelCNNPrior, "transformer": TransformerPrior, "dalle": Dalle,
          "clip": Clip}
TOKENIZERS = ("vqvae", "dvae", "audio-vqvae")  # archs whose runs turn data into codes
AUDIO_ARCHS = ("audio-vqvae",)


def model_class(name: str):
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def create_model(name: str, config):
    return model_class(name)(config)


__all__ = ["MODELS", "TOKENIZERS", "AUDIO_ARCHS", "Dalle", "DalleConfig", "DVAE", "DVAEConfig", "AudioVQVAE", "AudioVQVAEConfig", "VQVAE", "VQVAEConfig", "Classifier", "ClassifierConfig", "Clip", "ClipConfig", "SceneReader", "SceneReaderConfig", "PixelCNNPrior", "PixelCNNConfig",
           "TransformerPrior", "TransformerConfig", "create_model", "model_class"]
