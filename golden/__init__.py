"""Golden model of the neurocore: bit-exact NumPy reference, network builder, float Quartz."""

from .core import GoldenCore, RunResult
from .network import ConfigError, CoreConfig, NetworkBuilder

__all__ = ["GoldenCore", "RunResult", "CoreConfig", "NetworkBuilder", "ConfigError"]
