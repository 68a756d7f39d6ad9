"""Monitoring of a registered model: data drift, live performance and service health."""
