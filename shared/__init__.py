"""Code shared by the API and the workers: settings, storage, models and domain services."""
