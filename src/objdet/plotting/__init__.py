"""matplotlib renderers: data in, Figure out."""
