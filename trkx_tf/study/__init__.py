"""Studies that run the trained pipeline on varied test events (``trkx-study``).

==========================  ============================================================================
:mod:`.systematics`         the robustness studies: their points, the events, reconstruction and scoring
:mod:`.report`              ``study.md`` (tables beside the paper's numbers) and the PNG plots
==========================  ============================================================================
"""
