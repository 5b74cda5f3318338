"""embed, train, evaluate: the user's own labels."""
