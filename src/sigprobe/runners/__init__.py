"""How a cell is run under each host family: native (the C runner), python
(plain interpreters and Jupyter kernels), wine (the Windows side under Wine)."""
