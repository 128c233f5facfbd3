"""The ``crdtmem`` command (a face): ``keygen``, ``peer``, ``inspect``, ``demo``, ``simulate``.

:func:`main` is the console entry point; each subcommand lives in its own module.
"""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
