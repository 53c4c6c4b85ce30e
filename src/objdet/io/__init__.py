"""COCO JSON <-> tensors."""
