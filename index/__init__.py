"""Embed an image collection and keep it as a persistent FAISS index artifact."""
