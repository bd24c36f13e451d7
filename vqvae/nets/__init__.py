"""Network building blocks: residual stacks and the image encoder/decoder."""
