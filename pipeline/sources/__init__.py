"""Sources: the replay of the real data as feeds, and the Faker generator of synthetic ones."""
