"""Reports of a discovery run: the HTML page, its plots, and the loss shapes behind them."""
