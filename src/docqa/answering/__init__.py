"""From a question to a checked, cited answer."""
