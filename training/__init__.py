"""clipgen's training kit: CLIP-GEN (stand-in CLIP, VQGAN, conditional GPT prior) on CPU."""
