"""A process node agent: a small kubelet stand-in that runs pods as local processes.

The container image is ignored on purpose: no container runtime can run here, so a "process node"
runs each container's command (with the host's Python/venv first on PATH) inside the pod's own
network, UTS and mount namespaces. Programs under test cannot tell the difference for what matters
to them (pod IP, DNS names, volumes, env, signals); on a real cluster (kind) the same chart runs the
real image.
"""
