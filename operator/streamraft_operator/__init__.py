"""The Streamraft Kubernetes operator (kopf). Talks to brokers only over the network."""
