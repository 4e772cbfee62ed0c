"""Talking to a model server: the HTTP client, request building, stream events, typed errors, the endpoint benchmark."""
