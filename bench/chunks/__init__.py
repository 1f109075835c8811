"""bench.chunks: a big run split over the fleet against the same run whole, and what other tenants feel meanwhile."""
