"""Business logic of the coordinator; routers call these, these own every query."""
