"""The streaming plugin's pipeline logic: parsing, sessions, the detection cascade.

Nothing here imports Faust; the stream worker is a thin adapter around these modules.
"""
