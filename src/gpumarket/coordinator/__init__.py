"""The coordinator: REST API, job lifecycle, matching and persistence."""
