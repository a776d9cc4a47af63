"""Test helpers shared by the test packages: scripted fakes of the engines' protocols (no weights,
no data), a frame collector, and what tests with real peer programs need."""
