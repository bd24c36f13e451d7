"""Text to image: DALL-E's transformer over ``[text | image codes]`` with its attention masks and BPE, the CLIP that
reranks its samples, the scene reader that scores them, prompt faithfulness, and their commands."""
