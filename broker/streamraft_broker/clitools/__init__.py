"""Operator-facing commands at rpk's level: cluster status and consumer groups, as tables or JSON."""
