"""An event simulator on the real TrackML geometry.

Each event is built in seven steps, all vectorised with numpy:

1. **Vertices.** One hard-scatter vertex and Poisson(μ) pile-up vertices, Gaussian in a beam spot.
2. **Particles.** Each pile-up vertex is empty (diffractive, nothing in the acceptance) with probability
   ``empty_fraction``, else it emits a negative-binomial number of charged particles; η is uniform in
   ``|η| < eta_max``, φ uniform, the charge ±1, and pT > ``pt_min`` follows ``pT·(1 + pT/(nT))^-n`` (the
   Tsallis form fitted to the calibration events; its power n grows beyond |η| = 2, ``pt_power_eta_slope``). A
   fraction of them come from a displaced decay point. The hard scatter adds two jets and two isolated leptons with
   high-pT tracks.
3. **Propagation.** Helices in the solenoid field are intersected with every module plane they cross
   (:func:`~trkx_tf.trackml.helix.intersect`), so module overlaps give duplicate hits on a layer. A helix stops
   where it leaves the detector or after ``max_half_turns`` half-turns (loopers); particles below ``hit_pt_min``
   leave no hits (the real events show this sharp threshold at 0.15 GeV).
4. **Multiple scattering.** Each crossed module deflects the track by a Gaussian angle (Highland formula, material
   ``x/X0`` proportional to the module thickness and the path length in it); the deflections displace the later
   crossings (lever arm along the track). Two rare processes add the non-Gaussian tails (:func:`large_angle_kicks`):
   single Coulomb scatters (Molière's Rutherford tail beyond 3 θ0) and nuclear elastic scatters on silicon (the
   track goes on with a kink of √|t|/p). Each displaced crossing is projected along the track onto its own
   module and the layer's neighbours, so scattering moves hits into gaps, onto neighbours, or into overlaps.
5. **Interactions and secondaries.** A particle ends at a module with probability ``interaction_probability``
   (nuclear interaction); a barrel-module crossing of a primary starts a soft secondary with probability
   ``secondary_probability`` (material interactions: central, soft); secondaries are propagated the same way.
6. **Hit efficiency.** A crossing that runs along the module's v axis more steeply than ``max_v_slope`` (|dv/dw|;
   the real innermost barrel layer has no particle hits beyond |η| ≈ 3) leaves no hit. Each other module crossing
   of a charged particle leaves a hit with probability ``hit_efficiency`` (a dead or unread sensor, a cluster below
   threshold); the particle goes on regardless (its scattering in that
   module, a possible interaction or secondary there, all happen). Its random numbers come from a child stream of
   the event's (:func:`~trkx_tf.trackml.simulate.response.efficiency_rng`), and none is drawn at efficiency 1, so
   efficiency 1 is the fully efficient simulator bit for bit.
7. **Digitisation and noise.** The track segment inside the sensor lights the pixels it crosses (cells, charge
   proportional to the path length in each); the measured position is the charge-weighted centroid of the cells,
   so the resolution is at most pitch/√12 and the cluster size follows the crossing angle. Noise hits, one pixel
   each, are spread over the modules so that they make ``noise_fraction`` of all hits.

Truth carries the true (scattered) crossing point, the momentum at the hit and the official TrackML weights;
particles carry ``nhits`` (the hits they left, after the inefficiency). Particle ids follow the TrackML bit layout:
the vertex number in bits 52+, the particle number in bits 36-51, and a secondary's number in the low bits.

A robustness study varies the detector away from what reconstruction assumes (:mod:`.systematics`,
``simulate.misalignment`` and ``simulate.field_error`` in the config): layers built ``dx`` mm away from their nominal
place along x (the hits are simulated on the displaced modules and reported in the nominal geometry) and a solenoid
field ``bz · (1 + field_error)``; :func:`~.systematics.inject_noise` adds noise hits to any event (real ones too) up
to a requested fraction.

Every event is deterministic given (seed, event_id): its random stream is ``SeedSequence([seed, event_id])``, so the
events do not depend on the number of workers. Calibration against the real events is in ``docs/trackml.md`` and in
``benchmarks/simulate_calibration.py``.

The steps live in modules of this package, each importable on its own:

==========================  ===========================================================================
:mod:`.physics`             :class:`PhysicsModel`, the pT spectra and the primary particles (steps 1-2)
:mod:`.propagation`         helices through the modules, interactions, secondaries (steps 3, 5)
:mod:`.scattering`          the large-angle tails of multiple scattering (step 4)
:mod:`.response`            hit efficiency, digitisation, noise (steps 6-7)
:mod:`.events`              one event (:func:`simulate_event`) and many, written to a folder
:mod:`.systematics`         robustness studies: misaligned layers, a field error, extra noise hits
==========================  ===========================================================================
"""

from trkx_tf.trackml.simulate.events import (EventSummary, event_rng, simulate_event, simulate_events,
                                             simulate_from_config)
from trkx_tf.trackml.simulate.physics import PhysicsModel
from trkx_tf.trackml.simulate.scattering import large_angle_kicks, moliere_b

__all__ = ["PhysicsModel", "EventSummary", "event_rng", "large_angle_kicks", "moliere_b", "simulate_event",
           "simulate_events", "simulate_from_config"]
