"""The attack and failure suite."""
