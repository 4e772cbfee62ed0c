"""Server and GPU health: Prometheus /metrics parsing, the poller, NVML."""
