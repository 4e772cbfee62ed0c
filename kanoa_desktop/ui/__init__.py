"""Qt widgets that render core objects and react to their events."""
