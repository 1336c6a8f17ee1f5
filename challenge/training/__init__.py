"""Turning cached features into training data, and the loop that fits torch heads."""
