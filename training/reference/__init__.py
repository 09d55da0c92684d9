"""PyTorch reference implementations the Swift engine is checked against (the models the
training kit and the engine share; the fixture writers and benchmarks built on them are in
`training/tools/`).

Modules:
    clip       OpenAI CLIP (ViT) with OpenAI's state-dict names; conversion to Hugging Face.
    gpt        HFAiLab/clip-gen's conditional GPT prior (+ optional unconditional embedding).
    vqgan      taming-transformers' VQGAN with taming's names; HFAiLab key map.
    tokenizer  CLIP's BPE tokenizer (file format of vocab.json/merges.txt) and a tiny trainer.

Only torch, numpy, safetensors and pillow are required.
"""
