"""Clients for everything outside our own code: embedders, the vector store, providers."""
