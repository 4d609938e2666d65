"""The trajectory transformer, its MAE, the registry and checkpoint I/O."""
from traction.model.registry import create_mae, create_model, list_models, model_config, register_model

__all__ = ["create_model", "create_mae", "list_models", "model_config", "register_model"]
