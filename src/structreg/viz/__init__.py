"""Figures (matplotlib imported lazily, drawn with the Agg canvas; no pyplot state)."""
