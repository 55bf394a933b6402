"""Sufficient statistics: one streaming pass into small, mergeable tables; metrics and bootstrap from those."""
