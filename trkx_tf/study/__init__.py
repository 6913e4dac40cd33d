"""Studies (``trkx-study``) that run the trained pipeline on varied test events, and the simulator's realism report.

==========================  ============================================================================
:mod:`.systematics`         the robustness studies: their points, the events, reconstruction and scoring
:mod:`.report`              ``study.md`` (tables beside the paper's numbers) and the PNG plots
:mod:`.realism`             the simulator's doublet-level realism report against the real labelled events
==========================  ============================================================================
"""
