"""The generator: shared panel helpers (``panels``), one module per dashboard group, ``render``."""
