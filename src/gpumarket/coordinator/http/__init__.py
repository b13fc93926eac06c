"""HTTP-level protection of the coordinator: body limits, rate limits, server timeouts."""
