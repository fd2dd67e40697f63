"""The AMI test peer now lives in product code (:mod:`callscope.traffic.ami_server`), where
``callscope generate`` serves it too; this module keeps the old import path working."""

from __future__ import annotations

from callscope.traffic.ami_server import AmiServer, load_recording

__all__ = ["AmiServer", "load_recording"]
