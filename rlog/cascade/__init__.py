"""Session → verdict → alert: the model half of the flow.

``cascade``: verdict cache, batched R-Log-fast, escalation to R-Log, decisions;
``cache``: verdict memory by session representation; ``batching``: micro-batches;
``alerts``: the alert record published for every flagged session.
"""
