"""The model contract, one module a side, shared by serving (rlog.cascade) and training (train/).

``prompts``: what the models are asked; ``answers``: how their outputs are checked and read;
``representation``: what of a session the models see (the prompt is a pure function of it).
"""
