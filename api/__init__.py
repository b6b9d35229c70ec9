"""The thin HTTP API: authenticate, validate, write the request down, enqueue, answer."""
