"""The version of the package: the one place it is written.

``pyproject.toml`` reads it at build time (hatch's dynamic version), ``luigis_async``
exports it as ``__version__``, and the client sends it in its ``User-Agent``.
"""

__version__ = "0.1.0"
