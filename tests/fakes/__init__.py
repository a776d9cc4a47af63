"""Fakes of the engines' protocols, scripted and hermetic (no weights, no data)."""
