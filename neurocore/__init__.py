"""Quartz Neurocore: Quartz TTFS networks on an open, Loihi-like neurocore.

Subpackages: ``spec`` (geometry, word layouts), ``golden`` (reference model), ``sim`` (Lava
harness, RTL testbenches), ``sw`` (converter, images, host), ``rtl`` (Amaranth), ``boards``.
"""

__version__ = "0.1.0"
