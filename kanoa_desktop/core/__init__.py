"""Plain-Python core of kanoa desktop. Nothing in this package may import Qt."""
