"""Promotion: move a gated, signed model between environments, through a registry, with an audit log."""
