"""The engine: model pool, input checks, and the one ``infer()`` path every transport calls."""
