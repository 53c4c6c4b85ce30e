"""The error raised for bad metric arguments and bad ``update()`` inputs."""

from __future__ import annotations


class InputError(ValueError, TypeError):
    """Bad input to a metric: the message names the field, what was seen and what was expected.

    It derives from both ``ValueError`` and ``TypeError``: torchmetrics raises ``ValueError`` for
    every bad detection input (its tests and its users catch that), while code written against
    earlier objdet versions catches ``TypeError`` for wrong types; both keep working.
    """


InputError.__module__ = "objdet.training.metrics"  # its public home: tracebacks show that name
