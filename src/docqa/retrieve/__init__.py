"""Rankings and their fusion, shared by every store."""
