"""torchmetrics.Metric subclasses."""
