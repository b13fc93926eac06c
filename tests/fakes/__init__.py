"""In-memory stand-ins for the services the coordinator talks to, for unit tests."""
