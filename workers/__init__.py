"""Processes and drivers that act outside the web app: cluster drivers, the NVML GPU agent."""
