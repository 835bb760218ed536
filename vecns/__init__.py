"""vecns: a local vector store whose namespaces lock their embedding model."""
