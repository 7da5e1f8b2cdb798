"""One runtime per model flavor behind one small interface; imported lazily."""

from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.flavors import FLAVORS, detect_flavor, load_runtime, runtime_class

__all__ = ["FLAVORS", "Batch", "Runtime", "detect_flavor", "load_runtime", "runtime_class"]
