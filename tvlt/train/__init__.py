"""Training: procedural corpus (`corpus`), training loop and evaluation."""
