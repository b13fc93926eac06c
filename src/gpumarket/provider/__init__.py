"""The provider daemon: inventory, benchmark, secure Docker executor, crash-safe job loop.

It talks to the coordinator only through :mod:`gpumarket.sdk` and :mod:`gpumarket.protocol`;
it never imports the coordinator.
"""
