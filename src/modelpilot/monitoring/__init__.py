"""Watching the service, the machine and the models: metrics, and later drift and alerts."""
