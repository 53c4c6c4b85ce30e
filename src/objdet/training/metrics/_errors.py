"""The error raised for bad arguments and bad inputs of objdet's metrics."""


class InputError(ValueError, TypeError):
    """A bad constructor argument or ``update()`` input: the message names the field, seen and expected.

    It derives from both ``ValueError`` and ``TypeError`` on purpose:

    * torchmetrics raises ``ValueError`` for every malformed argument or input of its detection
      metrics, wrong types included (``labels`` given as a list, ``class_metrics=0``), and its
      users and tests catch ``ValueError``; a drop-in must raise something they catch.
    * Python's convention (and objdet's older releases) raise ``TypeError`` for a value of the
      wrong type; code written against that keeps working.

    So ``except ValueError``, ``except TypeError`` and ``pytest.raises(InputError)`` all see it.

    Example:
        >>> from objdet.training.metrics import MeanAveragePrecision
        >>> try:
        ...     MeanAveragePrecision(class_metrics=0)
        ... except ValueError as err:
        ...     print(type(err).__name__, isinstance(err, TypeError))
        InputError True
    """


InputError.__module__ = "objdet.training.metrics"  # its public home: tracebacks show that name
