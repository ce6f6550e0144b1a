"""`streamraft local`: a cluster of broker processes on one machine, and the commands that poke at it."""
