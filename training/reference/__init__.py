"""PyTorch reference implementations the Swift engine is checked against.

Modules:
    clip       OpenAI CLIP (ViT) with OpenAI's state-dict names; conversion to Hugging Face.
    gpt        HFAiLab/clip-gen's conditional GPT prior (+ optional unconditional embedding).
    vqgan      taming-transformers' VQGAN with taming's names; HFAiLab key map.
    tokenizer  CLIP's BPE tokenizer (file format of vocab.json/merges.txt) and a tiny trainer.
    make_fixtures  writes Tests/ClipGenEngineTests/Fixtures/.

Only torch, numpy, safetensors and pillow are required.
"""
