"""Gate families: one module each, one interface (gates.base), one registry (gates.registry)."""
