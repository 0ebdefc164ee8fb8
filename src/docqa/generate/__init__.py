"""The language models that write answers, and where their weights come from."""
