"""Fair share vs FIFO: a backlog of one tenant against two small ones, on real workers (`python -m bench.fairness`)."""
