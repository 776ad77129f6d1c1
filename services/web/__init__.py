"""The web UI: server-rendered pages over the other services' HTTP APIs."""
