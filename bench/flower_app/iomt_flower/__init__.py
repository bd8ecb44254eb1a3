"""The watch federated task written the way a Flower user writes it (bench/flower.py runs it)."""
