"""Pure metric math on tensors (COCO accumulate/summarize, curves, sketches, moments)."""
