"""callscope: observability pipeline for clustered VoIP platforms."""

__version__ = "0.1.0"
