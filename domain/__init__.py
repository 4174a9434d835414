"""The Service Mail's quota rules, standard library only."""
