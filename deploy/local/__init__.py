"""Local launcher: installs and runs real servers and the services on loopback."""
