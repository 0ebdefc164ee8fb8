"""Read, chunk, embed and index documents."""
