"""Line → record → template → session: the CPU half of the flow, one module a step.

``lines`` decodes and caps physical lines (``envelope`` opens log shippers' JSON);
``records`` reads headers in the source's ``formats`` and merges continuations;
``templates`` mines Drain3 templates; ``sessions`` groups lines by id or window;
``pipeline.Pipeline`` composes them per source. Nothing here knows about models.
"""
