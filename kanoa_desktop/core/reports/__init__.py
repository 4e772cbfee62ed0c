"""Writing what the app produces (reports, exports) so that nothing in them runs or loads."""
