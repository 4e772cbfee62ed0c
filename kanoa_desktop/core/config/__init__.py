"""Profiles, secrets in the keychain, and where files live."""
