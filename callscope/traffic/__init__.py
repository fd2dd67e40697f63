"""Seeded traffic for callscope: a platform's calls, queues, registrations and keep-alives as
HEP, AMI events and Asterisk file lines (``callscope generate``; ``callscope demo`` is a preset)."""

from callscope.traffic.generate import generate
from callscope.traffic.model import DEMO, PLATFORM, PRESETS, Item, Plan, Platform, Summary, Timing

__all__ = ["DEMO", "PLATFORM", "PRESETS", "Item", "Plan", "Platform", "Summary", "Timing", "generate"]
