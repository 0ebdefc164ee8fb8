"""The web chat and the HTTP APIs over the library."""
