"""HTTP routers, one per resource; each handler validates, calls a service, shapes the answer."""
