"""Results documents: aggregating runs into cells, the document itself (document.py), comparing two (compare.py)."""
