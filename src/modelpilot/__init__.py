"""ModelPilot: serve ML models over the Open Inference Protocol, watch them, update them safely."""

__version__ = "0.1.0"

__all__ = ["__version__"]
