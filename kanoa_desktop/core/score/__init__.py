"""Chart-reading accuracy: a seeded chart suite, answer keys, scoring and its statistics."""
