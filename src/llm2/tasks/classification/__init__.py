"""``classification``: a loss for training an image classifier on noisy labels (the DiscoPOP paper's CIFAR-10 case)."""
