"""The embedded synthetic COCO-format dataset."""
