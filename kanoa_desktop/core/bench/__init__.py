"""The endpoint benchmark: kanoa's documented suite, speed (and an accuracy pass)."""
