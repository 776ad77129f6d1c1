"""Deployment: the local launcher (no containers), the CLI, demo data, container files."""
