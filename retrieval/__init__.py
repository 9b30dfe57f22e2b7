"""kNN neighbours over an index artifact, relation graphs, and retrieval debugging."""
