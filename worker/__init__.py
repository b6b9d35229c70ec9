"""The arq workers: job functions and their lifecycle."""
