"""Background pipelines: matching, leases, queue deadlines, liveness and finalization."""
