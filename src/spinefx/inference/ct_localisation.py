"""Vertebra localisation and labelling on CT from the anatomy alone (no network).

Why by hand: no maintained library here localises vertebrae without its own weights
(TotalSegmentator and nnU-Net need theirs and a GPU-sized budget). The method follows the
classical pipeline (a spine line, then the discs along it, as in Yao et al. 2006) with steps
chosen for what real CT shows: fatty marrow as dark as the spinal canal, thin osteoporotic
shells, crops that cut the bodies, pedicle screws. On a :data:`GRID_MM` RAS+ grid:

1. **Solid bone.** Bone (> :data:`BONE_HU`) and what it encloses in the axial plane (at least
   :data:`ENCLOSED_RAYS` of 16 rays meet bone within :data:`ENCLOSED_REACH_MM`): a body's
   marrow whatever its density. The spinal canal is enclosed too where its bony ring is
   closed; an enclosed region with a body in front of it is taken out as the canal.
2. **Body line.** In every axial slice the deepest points of the solid bone (distance to its
   edge) are the candidates; a vertebral body is the thickest bone near the midline. Dynamic
   programming links them along z into the best chain (bridging the discs), smoothed.
3. **Sacrum.** Where the solid bone at the line's antero-posterior level spreads beyond
   :data:`SACRUM_HALF_WIDTH_MM` on both sides (the sacral alae) the line enters the sacrum;
   the line is cut there.
4. **Bodies.** The 80th HU percentile over a sagittal slab through the bodies, every 1 mm of
   the line, peaks at each disc's endplates and is low through a body's middle whatever the
   marrow's density; smoothed at an eighth of the vertebral pitch (its autocorrelation
   period, searched between 0.6 and 1.5 times the bodies' axial diameter, measured on real
   masks: :data:`PITCH_PER_DIAMETER`), its minima are the body centres. Voxels brighter
   than :data:`PROFILE_MAX_HU` (screws, rods) are left out of the percentile. A gap of about two pitches or more between
   neighbouring bodies holds bodies the profile missed (a collapsed or fused disc, endplates
   hidden by metal): they are placed evenly in it where the line is in solid bone
   (``inferred=True``).
5. **Levels**, anchored on anatomy, never on where the scan ends: the body right above the
   sacrum is L5 and the others are counted from it (``level_confidence="anchored"``); the
   levels counted across an inferred body are ``"uncertain"`` (a wrong pitch would miscount
   the gap, and a confident wrong level is the worst answer). Without
   the sacrum in view the pitch profile (:func:`spinefx.inference.localisation.profile_offset`)
   proposes levels and every one is ``"uncertain"``: a tight crop's levels are not known, and
   spinefx says so rather than guess silently. A level counted across an inferred body or a
   gap unlike its neighbours' is uncertain too. There is no twelfth-rib anchor: one was built
   (bone beside the body line reaching 75 mm with a rib's thin section, given to the vertebra
   at its medial end) and labelled generated scans without a wrong level, but on the real
   abdominal CT it found "ribs" at L2, L3 and L5, and crops of about 100 mm show no ribs at
   all; it needs real scans with ribs that no benchmark scores. A transitional spine (L6,
   sacralised L5) cannot be told from the sacrum alone, and anchored levels assume five lumbar
   vertebrae (said in the note).

Limits (measured in ``benchmarks/bench_localisation.py``): the first and last bodies of a
crop are found less often; the cervical spine (small bodies, C1 without one) and scans whose
bodies the chain leaves for the posterior elements are the weak cases; metal is not masked.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from spinefx.conventions import SPINE_ORDER, level_name
from spinefx.image import Image

log = logging.getLogger(__name__)

#: working grid (mm) of the bone analysis
GRID_MM = 2.0
#: air (outside the patient): below this, HU
AIR_HU = -500.0
#: bone threshold, HU (shells of osteoporotic bodies reach it; discs and fatty marrow do not)
BONE_HU = 120.0
#: the shell that separates the marrow from the canal is brighter than this, HU
SHELL_HU = 200.0
#: a voxel is enclosed by bone when this many of 16 in-plane rays meet bone ...
ENCLOSED_RAYS = 13
#: ... within this distance, mm (a lumbar body's marrow is at most ~20 mm from its shell)
ENCLOSED_REACH_MM = 24.0
#: the note of a localisation whose bodies came from the heatmap network
HEATMAP_NOTE = "bodies from the heatmap network"
#: a body of the bone analysis completes the heatmap's spine when it lies this close to the
#: heatmap's line in the axial plane, mm (a body is ~30-50 mm wide; the aorta, which the bone
#: analysis can follow, lies ~20-30 mm in front of the bodies' centres)
ON_SPINE_MM = 10.0
#: ... and at least this many of the heatmap's pitches from every heatmap peak (closer, it is
#: the same body)
SAME_BODY_PITCHES = 0.6
#: a heatmap body and a bone-analysis body are the same body within this many pitches (two
#: peaks of one split body lie ~0.25 pitch from its centre each: only one can match it)
AGREE_PITCHES = 0.3
#: the note of a heatmap localisation that fell back to the bone analysis
HEATMAP_FALLBACK_NOTE = (
    "the heatmap network found no spine (fewer than two bodies): bodies from the bone analysis"
)
#: an enclosed region with bone or marrow filling half of this much in front is the canal, mm
CANAL_FRONT_MM = 16.0
#: a body candidate is bone at least this deep (distance to its edge, mm; C3 ~6, L4 ~15)
BODY_CORE_MM = 4.0
#: bone this deep (mm) scores fully in the chain; thinner bone with the square of its depth
BODY_FULL_RADIUS_MM = 10.0
#: largest move of the body line between neighbouring slices 2 mm apart, mm (plus 0.6 depth)
CHAIN_STEP_MM = 4.0
#: longest stretch of the body line without a body section (a disc), mm
MAX_GAP_MM = 16.0
#: range of the vertebral pitch (centre-to-centre distance), mm (cervical ~15, lumbar ~40)
DISC_SPACING_MM = (11.0, 55.0)
#: the pitch lies within this range of multiples of the bodies' axial diameter (twice the
#: chain's 75th-percentile depth). Measured on the 11 real VerSe masks that no benchmark
#: scores (149 vertebrae C2-L5; pitch over twice the largest inscribed radius of the
#: vertebra's axial sections): median 0.90, 5-95 % 0.74-1.07, range 0.60-1.15. The upper
#: end is wider because a CT's solid bone can read thinner than its mask (unenclosed marrow).
PITCH_PER_DIAMETER = (0.6, 1.5)
#: a body's middle lies at least this fraction of the profile's spread below its endplates
BODY_PROMINENCE = 0.1
#: the body centre moves forward (off the canal) by at most this much, mm
REFINE_MAX_MM = 15.0
#: the endplate profile leaves out brighter voxels (metal and its blur; endplates are
#: ~300-1000 HU, the densest cortical bone of a vertebra stays below this)
PROFILE_MAX_HU = 1500.0
#: a gap of more than this many pitches between neighbouring bodies holds a missed body
GAP_PITCHES = 1.6
#: the labelled map takes solid bone within this distance of the body line, mm
LABEL_RADIUS_MM = 45.0
#: S1: solid bone at the body line's level reaches this far from it on both sides (alae), mm
SACRUM_HALF_WIDTH_MM = 44.0
#: ... over at least this much of z, mm
SACRUM_MIN_RUN_MM = 8.0


@dataclass
class LocalisedVertebra:
    """One vertebral body found on the scan.

    Attributes:
        label: VerSe id (the most likely level).
        centroid_mm: body centre, world RAS+ mm.
        level_confidence: ``"anchored"`` (counted from the sacrum) or ``"uncertain"``.
        level_note: how the level was assigned.
        cut_by_border: the body is only partly in view.
        extent_z_mm: (inferior, superior) world z half way to the neighbouring bodies.
        inferred: placed in a gap of the body profile by the spacing of its neighbours (a
            body whose discs the profile did not resolve), not seen as a profile minimum.
        from_bone: with the heatmap localiser, a body of the bone analysis added on the
            heatmap's spine where the heatmap had no peak.
    """

    label: int
    centroid_mm: np.ndarray
    level_confidence: str
    level_note: str
    cut_by_border: bool = False
    extent_z_mm: tuple[float, float] = (0.0, 0.0)
    inferred: bool = False
    from_bone: bool = False


@dataclass
class SpineLocalisation:
    """What :func:`localise_spine` found.

    Attributes:
        vertebrae: cranial to caudal.
        body_line_mm: ``(n, 3)`` world points of the body line, 1 mm of z apart.
        pitch_mm: the vertebral pitch measured along the line.
        sacrum_found: the sacrum (the level anchor) is in view.
        sacrum_whole: its width was seen whole (not cut by the scan's sides); when not, the
            levels counted from it are uncertain.
        anchor: ``"sacrum"`` or ``"profile"``.
        source: who found the bodies: ``"anatomy"`` (the bone analysis) or ``"heatmap"``.
        notes: human-readable remarks.
        solid_bone: the solid bone on the working grid (reused by :func:`vertebra_label_map`).
    """

    vertebrae: list[LocalisedVertebra]
    body_line_mm: np.ndarray
    pitch_mm: float = float("nan")
    sacrum_found: bool = False
    sacrum_whole: bool = True
    anchor: str = "profile"
    source: str = "anatomy"
    notes: list[str] = field(default_factory=list)
    solid_bone: Image | None = field(default=None, repr=False)

    @property
    def centroids(self) -> dict[int, np.ndarray]:
        """VerSe label -> body centre (world mm), the form every other stage takes."""
        return {v.label: v.centroid_mm for v in self.vertebrae}

    @property
    def levels_certain(self) -> bool:
        """Every level was counted from an anatomical anchor."""
        return bool(self.vertebrae) and all(
            v.level_confidence == "anchored" for v in self.vertebrae
        )


class _BoneContext(NamedTuple):
    """What the heatmap path reuses of the bone analysis: the sacrum's top (world z, or None)
    and whether its width was seen whole, the scan's world z range, the working grid and its
    solid bone."""

    sacrum_z: float | None
    sacrum_whole: bool
    z_range: tuple[float, float]
    grid: Image
    solid: np.ndarray


def localise_spine(scan: Image, *, body_net=None) -> SpineLocalisation:
    """Find the vertebral bodies of a CT and label their levels (see the module docstring).

    Args:
        scan: CT in HU, any orientation and spacing.
        body_net: a body-centre heatmap network (:mod:`spinefx.models.body_heatmap`); when
            given, its peaks on the spine (:func:`_spine_peaks`) are the bodies, completed by
            the bone analysis's bodies that lie on the same spine where the heatmap has none
            (:func:`_completed`); the bone analysis gives the sacrum and the levels. Where
            its spine has fewer than two peaks (a tight crop or a texture it never saw: the
            network then answers nothing rather than something wrong) the bone analysis's
            bodies are used, with a note.

    Returns:
        The bodies found (possibly none, with a note saying why), cranial to caudal.
    """
    bone, context = _bone_localisation(scan)
    if body_net is None:
        return bone
    peaks = _spine_peaks(scan, body_net)
    if context.sacrum_z is not None:
        peaks = peaks[peaks[:, 2] > context.sacrum_z]
    if len(peaks) < 2:  # one isolated peak is not a spine
        bone.notes.append(HEATMAP_FALLBACK_NOTE)
        return bone
    peaks, added = _completed(peaks, bone)
    return _from_peaks(peaks, added, bone, context)


def _bone_localisation(scan: Image) -> tuple[SpineLocalisation, _BoneContext]:
    """The bone analysis (steps 1-5 of the module docstring) and what the heatmap path reuses
    of it."""
    from scipy import ndimage

    from spinefx.preprocessing.resample import crop_to

    full = _working_grid(scan)
    # the air around the patient holds no bone: cropped away (exact: with a margin wider
    # than the smoothing, every step below sees what it sees on the whole grid)
    grid = crop_to(full, np.asarray(full.data) > AIR_HU, margin_vox=4)
    hu = ndimage.gaussian_filter(np.asarray(grid.data, np.float32), 0.6)
    solid = _solid_bone(hu)
    tissue = np.flatnonzero((hu > -300).any(axis=(1, 2)))
    midline = float(tissue.mean()) if len(tissue) else hu.shape[0] / 2
    chain = _chain(_body_candidates(solid), midline)
    ks = np.flatnonzero(~np.isnan(chain[:, 0]))
    # world z covered by the scan: a body whose half pitch reaches past it is cut by the border
    z_lo, z_hi = np.sort(
        full.voxel_to_world(np.array([[0, 0, 0], [0, 0, full.shape[2] - 1]]))[:, 2]
    )
    context = _BoneContext(None, True, (float(z_lo), float(z_hi)), grid, solid)
    if len(ks) < int(round(15.0 / GRID_MM)):
        empty = SpineLocalisation([], np.zeros((0, 3)), notes=["no vertebral column found"])
        return empty, context
    sacrum_k, sacrum_whole = _sacrum_top(solid, chain)
    sacrum_z = None
    if sacrum_k is not None:
        sacrum_z = float(grid.voxel_to_world(np.array([[*chain[sacrum_k, :2], sacrum_k]]))[0, 2])
        context = context._replace(sacrum_z=sacrum_z, sacrum_whole=sacrum_whole)
        ks = ks[ks > sacrum_k]
        if len(ks) < int(round(15.0 / GRID_MM)):
            only = SpineLocalisation([], np.zeros((0, 3)), sacrum_found=True,
                                     notes=["only the sacrum is in view"])  # fmt: skip
            return only, context
    span = slice(ks.min(), ks.max() + 1)
    line_vox = _smooth_line(chain[span, :2], 2.0)
    kk = np.arange(ks.min(), ks.max() + 1, dtype=float)
    coarse = grid.voxel_to_world(np.column_stack([line_vox, kk]))
    order = np.argsort(coarse[:, 2])
    z = np.arange(coarse[order[0], 2], coarse[order[-1], 2] + 1e-6, 1.0)
    line = np.column_stack(
        [np.interp(z, coarse[order, 2], coarse[order, d]) for d in range(2)] + [z]
    )
    profile = _endplate_profile(scan, line)
    # a body's centre lies in solid bone; a minimum in a disc (soft tissue) is not one
    # (or just in front of it: where the canal's ring is closed the line runs on the body's
    # posterior wall, and _refine_centre moves the centre forward)
    solid_img = grid.with_data(solid.astype(np.float32))
    in_bone = (
        np.max([_disc_mean(solid_img, line + [0.0, dy, 0.0]) for dy in (0.0, 5.0, 10.0)], axis=0)
        >= 0.5
    )
    depth = chain[span, 2]
    depth_mm = float(np.nanpercentile(depth, 75)) if np.isfinite(depth).any() else None
    centres, pitch = _centres_and_pitch(profile, in_bone, _pitch_range(depth_mm))
    centres, inferred = _fill_gaps(centres, pitch, in_bone)
    steps = np.arange(len(z))
    vertebrae = []
    for n, i in enumerate(centres):
        above = (centres[n + 1] + i) / 2 if n + 1 < len(centres) else i + pitch / 2
        below = (centres[n - 1] + i) / 2 if n > 0 else i - pitch / 2
        vertebrae.append(
            LocalisedVertebra(
                label=0,
                centroid_mm=np.array([np.interp(i, steps, line[:, d]) for d in range(3)]),
                level_confidence="uncertain",
                level_note="",
                cut_by_border=bool(z[0] + above > z_hi or z[0] + below < z_lo),
                extent_z_mm=(float(z[0] + below), float(z[0] + above)),
                inferred=i in inferred,
            )
        )
    for v in vertebrae:
        v.centroid_mm = _refine_centre(grid, solid, v.centroid_mm, v.extent_z_mm)
    vertebrae.sort(key=lambda v: -v.centroid_mm[2])  # cranial first
    result = SpineLocalisation(vertebrae, line, pitch_mm=pitch, solid_bone=grid.with_data(solid))
    return _labelled(result, sacrum_z, sacrum_whole), context


def _labelled(result: SpineLocalisation, sacrum_z: float | None, sacrum_whole: bool):
    """``result`` with its notes (a gap between bodies, a cut sacrum) and levels
    (:func:`_assign_levels`); ``sacrum_z``: world z of the sacrum's top, or None."""
    vertebrae, pitch = result.vertebrae, result.pitch_mm
    gaps = -np.diff([v.centroid_mm[2] for v in vertebrae])
    if len(gaps) and gaps.max() > GAP_PITCHES * pitch:
        result.notes.append(
            f"a gap of {gaps.max():.0f} mm between neighbouring bodies (pitch {pitch:.0f} mm)"
        )
    if sacrum_z is not None and vertebrae:
        # the sacrum anchors the levels only when the lowest body found is right above it
        result.sacrum_found = vertebrae[-1].centroid_mm[2] - sacrum_z <= 1.3 * pitch
        result.sacrum_whole = sacrum_whole
        if result.sacrum_found and not sacrum_whole:
            result.notes.append(
                "the scan's sides cut the bone taken for the sacrum: levels uncertain"
            )
    _assign_levels(result)
    return result


def _spine_peaks(scan: Image, body_net) -> np.ndarray:
    """``(n, 3)`` world mm, cranial first: the heatmap network's peaks that form the spine,
    the longest cranio-caudal chain of peaks whose neighbours are 11-55 mm apart (a pitch)
    and run more along z than across it. A peak off that chain (a rib head, a bowel loop
    that looked like a body) is dropped."""
    from spinefx.inference.body_heatmap import heatmap_peaks, predict_heatmap

    return _spine_chain(heatmap_peaks(predict_heatmap(body_net, scan)))


def _completed(peaks: np.ndarray, bone: SpineLocalisation) -> tuple[np.ndarray, np.ndarray]:
    """The heatmap's spine ``peaks`` (cranial first) with the bone analysis's bodies that lie
    on it where it has none: within :data:`ON_SPINE_MM` of the heatmap's line in the axial
    plane (the line through the peaks, continued past its ends along the last peaks'
    direction) and farther than :data:`SAME_BODY_PITCHES` pitches from every peak. The two
    fail apart: the network misses bodies whose texture it never saw, the bone analysis leaves
    the bodies for a bright aorta or the posterior elements; a body both place is the
    network's. Returns ``(points cranial first, added flag per point)``."""
    pitch = float(np.median(np.linalg.norm(np.diff(peaks, axis=0), axis=1)))
    by_z = peaks[np.argsort(peaks[:, 2])]
    ends = (by_z[:3], by_z[-3:])
    # x(z), y(z) of each end's last peaks, for the line past that end
    fits = [np.polyfit(e[:, 2], e[:, :2], 1) if np.ptp(e[:, 2]) > 0 else None for e in ends]
    added = []
    for v in bone.vertebrae:
        c = v.centroid_mm
        if np.linalg.norm(peaks - c, axis=1).min() < SAME_BODY_PITCHES * pitch:
            continue
        if by_z[0, 2] <= c[2] <= by_z[-1, 2]:
            on_line = [np.interp(c[2], by_z[:, 2], by_z[:, d]) for d in range(2)]
        else:
            fit = fits[0] if c[2] < by_z[0, 2] else fits[1]
            if fit is None:
                continue
            on_line = fit[0] * c[2] + fit[1]
        if np.hypot(*(c[:2] - np.asarray(on_line))) <= ON_SPINE_MM:
            added.append(c)
    points = np.vstack([peaks, *added]) if added else peaks
    flags = np.r_[np.zeros(len(peaks), bool), np.ones(len(added), bool)]
    order = np.argsort(-points[:, 2])
    return points[order], flags[order]


def _spine_chain(pts: np.ndarray) -> np.ndarray:
    """The longest chain of :func:`_spine_peaks` among ``pts`` (world mm), cranial first."""
    if len(pts) < 2:
        return pts
    pts = pts[np.argsort(-pts[:, 2])]
    lo, hi = DISC_SPACING_MM
    best = np.ones(len(pts))
    back = np.full(len(pts), -1)
    for j in range(1, len(pts)):
        for i in range(j):
            d = pts[i] - pts[j]
            dist = float(np.linalg.norm(d))
            if lo <= dist <= hi and d[2] >= 0.5 * dist and best[i] + 1 > best[j]:
                best[j], back[j] = best[i] + 1, i
    j = int(np.argmax(best))
    path = []
    while j >= 0:
        path.append(j)
        j = int(back[j])
    return pts[path[::-1]]


def _from_peaks(
    peaks: np.ndarray, added: np.ndarray, bone: SpineLocalisation, context: _BoneContext
) -> SpineLocalisation:
    """The localisation of the heatmap network's spine peaks (cranial first; ``added``: a flag
    per peak, a body the bone analysis added), levels counted from the sacrum that the bone
    analysis found (``context``), anchored only where the two agree
    (:func:`_agreed_from_sacrum`); ``bone``: the bone analysis's localisation."""
    z_lo, z_hi = context.z_range
    steps = np.linalg.norm(np.diff(peaks, axis=0), axis=1)
    pitch = float(np.median(steps)) if len(steps) else 30.0  # one body: a lumbar pitch
    vertebrae = []
    for n, c in enumerate(peaks):
        above = (peaks[n - 1, 2] - c[2]) / 2 if n > 0 else pitch / 2
        below = (c[2] - peaks[n + 1, 2]) / 2 if n + 1 < len(peaks) else pitch / 2
        vertebrae.append(
            LocalisedVertebra(
                label=0,
                centroid_mm=np.asarray(c, float),
                level_confidence="uncertain",
                level_note="",
                cut_by_border=bool(c[2] + above > z_hi or c[2] - below < z_lo),
                extent_z_mm=(float(c[2] - below), float(c[2] + above)),
                from_bone=bool(added[n]),
            )
        )
    result = SpineLocalisation(vertebrae, bone.body_line_mm, pitch_mm=pitch, source="heatmap",
                               solid_bone=context.grid.with_data(context.solid))  # fmt: skip
    result = _labelled(result, context.sacrum_z, context.sacrum_whole)
    # on real CT the network can answer one body with two peaks (at its endplates), and a
    # level counted across such a pair is wrong (2 of 6 on the real abdominal CT, counted up
    # from its sacrum, with earlier weights): a level counted from the sacrum stays anchored
    # only as far up as every body below it is one the bone analysis placed too
    agreed = _agreed_from_sacrum(result.vertebrae, bone.vertebrae, pitch)
    for v, ok in zip(result.vertebrae, agreed, strict=True):
        if v.level_confidence != "anchored":
            continue
        if ok:
            v.level_note += "; the heatmap's and the bone analysis's bodies agree up to here"
        else:
            v.level_confidence = "uncertain"
            v.level_note = ("counted from the sacrum over bodies that the heatmap and the bone "
                            "analysis do not both place (the network can split one body into "
                            "two peaks): not anchored")  # fmt: skip
    if result.vertebrae:
        result.notes.append(HEATMAP_NOTE)
    if any(added):
        result.notes.append(
            f"{int(sum(added))} of {len(added)} bodies from the bone analysis, on the heatmap's "
            "spine where the heatmap has no peak"
        )
    return result


def _agreed_from_sacrum(
    vertebrae: list[LocalisedVertebra], bone: list[LocalisedVertebra], pitch: float
) -> list[bool]:
    """Per heatmap body (cranial first): it and every body below it are matched one to one,
    within :data:`AGREE_PITCHES` pitches, to bodies that the bone analysis saw (not inferred
    from the spacing, not added from the bone analysis to the heatmap's spine)."""
    seen = [b.centroid_mm for b in bone if not b.inferred]
    pairs = sorted(
        (float(np.linalg.norm(v.centroid_mm - c)), i, j)
        for i, v in enumerate(vertebrae)
        if not v.from_bone
        for j, c in enumerate(seen)
    )
    matched, used = set(), set()
    for d, i, j in pairs:  # nearest first, one to one
        if d <= AGREE_PITCHES * pitch and i not in matched and j not in used:
            matched.add(i)
            used.add(j)
    out, ok = [False] * len(vertebrae), True
    for i in range(len(vertebrae) - 1, -1, -1):  # caudal first
        ok = ok and i in matched
        out[i] = ok
    return out


def automatic_centroids(
    scan: Image, *, body_net=None
) -> tuple[dict[int, np.ndarray], dict[int, str], dict]:
    """:func:`localise_spine` (with the heatmap network ``body_net`` when given) in the form
    the screening, the report and the app take.

    Returns:
        ``(centroids, level_notes, summary)``: VerSe label -> body centre (world mm), checked
        for plausibility (:func:`spinefx.inference.localisation.check_localisation`; empty
        when nothing was found); label -> ``"level uncertain (no sacrum in view)"`` or ``""``;
        and ``{"localiser", "anchor", "levels_certain", "pitch_mm", "notes"}`` (``localiser``:
        who found the bodies, ``"anatomy"`` also where the heatmap fell back to it).

    Raises:
        InputError: an implausible localisation (bodies too close, too far apart, off the
            spine line), saying to pass centroids or a mask.
    """
    from spinefx.inference.localisation import check_localisation

    loc = localise_spine(scan, body_net=body_net)
    centroids = loc.centroids
    if centroids:
        check_localisation(centroids)
    notes = {v.label: _level_remark(v, loc) for v in loc.vertebrae}
    summary = {
        "localiser": loc.source,
        "anchor": loc.anchor,
        "levels_certain": loc.levels_certain,
        "pitch_mm": round(float(loc.pitch_mm), 1) if np.isfinite(loc.pitch_mm) else None,
        "notes": loc.notes,
    }
    return centroids, notes, summary


def _level_remark(v: LocalisedVertebra, loc: SpineLocalisation) -> str:
    """The per-vertebra remark of :func:`automatic_centroids`: empty for an anchored level;
    with the sacrum in view a level is uncertain only when counted across an inferred body."""
    if v.level_confidence == "anchored":
        return ""
    if loc.sacrum_found and not loc.sacrum_whole:
        return "level uncertain (the scan's sides cut the bone taken for the sacrum)"
    if loc.sacrum_found and loc.source == "heatmap":
        return ("level uncertain (counted from the sacrum over bodies that the heatmap network "
                "and the bone analysis do not both place)")  # fmt: skip
    if loc.sacrum_found:
        return "level uncertain (counted across a body inferred from the spacing or an odd gap)"
    return "level uncertain (no sacrum in view)"


def vertebra_label_map(scan: Image, localisation: SpineLocalisation) -> Image:
    """A VerSe-id label map of the localised vertebrae on the scan's own grid (``uint8``):
    the solid bone within :data:`LABEL_RADIUS_MM` of the body line, split between
    neighbouring vertebrae half way between their centres (the discs). It is an approximate
    map for viewing and checking the levels (3D Slicer opens it beside the CT), not a
    segmentation: posterior elements near a disc go to the nearer body, and a vertebra's
    outline is not traced.
    """
    from scipy import ndimage

    from spinefx.preprocessing.resample import resample_like

    grid = localisation.solid_bone
    if grid is None:  # a localisation made elsewhere: compute the solid bone again
        work = _working_grid(scan)
        grid = work.with_data(
            _solid_bone(ndimage.gaussian_filter(work.data.astype(np.float32), 0.6))
        )
    solid = np.asarray(grid.data, bool)
    labels = np.zeros(grid.shape, np.uint8)
    vs = localisation.vertebrae
    line = localisation.body_line_mm
    if vs and len(line):
        ijk = np.argwhere(solid)  # only bone can be labelled
        world = grid.voxel_to_world(ijk)
        order = np.argsort(line[:, 2])
        lx = np.interp(world[:, 2], line[order, 2], line[order, 0])
        ly = np.interp(world[:, 2], line[order, 2], line[order, 1])
        near = np.hypot(world[:, 0] - lx, world[:, 1] - ly) <= LABEL_RADIUS_MM
        zs = np.array([v.centroid_mm[2] for v in vs])
        lows = np.array([v.extent_z_mm[0] for v in vs])
        highs = np.array([v.extent_z_mm[1] for v in vs])
        nearest = np.argmin(np.abs(world[:, 2][:, None] - zs[None]), axis=1)
        inside = (world[:, 2] >= lows[nearest]) & (world[:, 2] <= highs[nearest])
        keep = near & inside
        picked = ijk[keep]
        labels[picked[:, 0], picked[:, 1], picked[:, 2]] = np.array(
            [v.label for v in vs], np.uint8
        )[nearest[keep]]
    return resample_like(grid.with_data(labels), scan, interpolation="nearest")


def _working_grid(scan: Image) -> Image:
    from spinefx.preprocessing.orientation import reorient
    from spinefx.preprocessing.resample import resample_to_spacing

    ras = reorient(scan, "RAS")
    return resample_to_spacing(ras, GRID_MM, interpolation="linear", fill_value=-1000.0)


def _disk(radius_vox: float) -> np.ndarray:
    r = int(np.ceil(radius_vox))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x**2 + y**2) <= radius_vox**2 + 1e-6


def _enclosed(bone: np.ndarray) -> np.ndarray:
    """Voxels (of any density) that bone surrounds in the axial plane: at least
    :data:`ENCLOSED_RAYS` of 16 rays from them meet bone within :data:`ENCLOSED_REACH_MM`.
    This is a vertebral body's marrow whatever its density (as dark as the canal in fatty
    marrow), even where the shell has a gap (basivertebral foramen) or the scan border cuts
    it; soft tissue beside the spine is open to several sides."""
    steps = int(round(ENCLOSED_REACH_MM / GRID_MM))
    count = np.zeros(bone.shape, np.uint8)
    for angle in np.arange(16) * np.pi / 8:
        hit = np.zeros(bone.shape, bool)
        seen = set()
        for t in range(1, steps + 1):
            dx, dy = int(round(t * np.cos(angle))), int(round(t * np.sin(angle)))
            if (dx, dy) in seen or (dx, dy) == (0, 0):
                continue
            if abs(dx) >= bone.shape[0] or abs(dy) >= bone.shape[1]:
                continue  # the ray leaves a small grid
            seen.add((dx, dy))
            # hit[x, y] |= bone[x + dx, y + dy] (out of the grid is not bone)
            src = bone[
                max(dx, 0) : bone.shape[0] + min(dx, 0), max(dy, 0) : bone.shape[1] + min(dy, 0)
            ]
            hit[
                max(-dx, 0) : bone.shape[0] + min(-dx, 0), max(-dy, 0) : bone.shape[1] + min(-dy, 0)
            ] |= src
        count += hit
    return count >= ENCLOSED_RAYS


def _solid_bone(hu: np.ndarray) -> np.ndarray:
    """Bone (> :data:`BONE_HU`) with the marrow it encloses (:func:`_enclosed`), less the
    spinal canal where it can be told apart. Per axial slice each enclosed region darker than
    the shell (:data:`SHELL_HU`) is split at its narrow necks (the basivertebral foramen joins
    marrow and canal); a part with bone or enclosed marrow filling half of the
    :data:`CANAL_FRONT_MM` in front of it is the canal (a body ahead); a body's marrow has only
    its thin anterior shell and then soft tissue (or the scan border) in front of it."""
    from scipy import ndimage

    bone = hu > BONE_HU
    enclosed = _enclosed(bone)
    solid = bone | enclosed
    front = int(round(CANAL_FRONT_MM / GRID_MM))
    for k in range(hu.shape[2]):
        holes = enclosed[:, :, k] & (hu[:, :, k] < SHELL_HU)
        if not holes.any():
            continue
        cores = ndimage.binary_erosion(holes, structure=_disk(1.0))
        labels, n = ndimage.label(cores)
        if not n:
            continue
        nearest = ndimage.distance_transform_edt(labels == 0, return_distances=False,
                                                 return_indices=True)  # fmt: skip
        parts = np.where(holes, labels[nearest[0], nearest[1]], 0)
        for i, box in enumerate(ndimage.find_objects(parts), start=1):
            if box is None:
                continue
            xs, ys = box
            strip = solid[xs, ys.stop : ys.stop + front, k]  # +y is anterior
            if strip.size and strip.sum() >= 0.5 * (xs.stop - xs.start) * front:
                solid[:, :, k][parts == i] = False  # the canal
    return solid


def _body_candidates(solid: np.ndarray) -> list[np.ndarray]:
    """Per axial slice: ``(m, 3)`` rows ``(x_vox, y_vox, depth_mm)`` at the deepest points of the
    solid bone (maxima of the distance to its edge, at least :data:`BODY_CORE_MM`). A body is
    the thickest bone near the midline (7-20 mm deep); pedicles, laminae, processes and ribs
    are 2-5 mm deep."""
    from scipy import ndimage

    out = []
    size = int(round(2 * BODY_CORE_MM / GRID_MM)) | 1
    for k in range(solid.shape[2]):
        sl = solid[:, :, k]
        rows = []
        if sl.sum() >= 10:
            depth = ndimage.distance_transform_edt(np.pad(sl, 1))[1:-1, 1:-1] * GRID_MM
            peaks = (depth >= BODY_CORE_MM) & (depth == ndimage.maximum_filter(depth, size=size))
            labels, n = ndimage.label(peaks)
            if n:
                idx = np.arange(1, n + 1)
                coms = ndimage.center_of_mass(peaks, labels, idx)
                radius = ndimage.maximum(depth, labels, idx)
                rows = [(cx, cy, r) for (cx, cy), r in zip(coms, radius, strict=True)]
        out.append(np.array(rows, float).reshape(-1, 3))
    return out


def _chain(cands: list[np.ndarray], midline_x: float) -> np.ndarray:
    """``(n_slices, 3)`` ``(x_vox, y_vox, depth_mm)`` of the body line per slice (NaN where
    none): the best chain of candidates along z by dynamic programming. A candidate scores
    more the deeper it is (up to :data:`BODY_FULL_RADIUS_MM`) and the nearer the left-right
    middle of the body; links bridge up to :data:`MAX_GAP_MM` (a disc)."""
    n = len(cands)
    max_gap = int(round(MAX_GAP_MM / GRID_MM))
    off_mid = 40.0 / GRID_MM
    own = [
        np.minimum(c[:, 2] / BODY_FULL_RADIUS_MM, 1.0) ** 2
        * (1.0 - 0.5 * np.minimum(np.abs(c[:, 0] - midline_x) / off_mid, 1.0))
        for c in cands
    ]
    score = [o.copy() for o in own]
    back: list[list[tuple[int, int] | None]] = [[None] * len(c) for c in cands]
    for k in range(n):
        for j, row in enumerate(cands[k]):
            reach = (CHAIN_STEP_MM + 0.6 * row[2]) / GRID_MM  # a deep body's peak wanders
            for g in range(1, max_gap + 1):
                if k - g < 0:
                    break
                prev = cands[k - g]
                if not len(prev):
                    continue
                d = np.linalg.norm(prev[:, :2] - row[:2], axis=1)
                ok = d <= reach * (1 + 0.5 * (g - 1))
                if not ok.any():
                    continue
                cand = np.where(ok, score[k - g] - 0.1 * (g - 1) - 0.02 * d, -np.inf)
                i = int(np.argmax(cand))
                if cand[i] + own[k][j] > score[k][j]:
                    score[k][j], back[k][j] = float(cand[i] + own[k][j]), (k - g, i)
    out = np.full((n, 3), np.nan)
    flat = [(score[k][j], k, j) for k in range(n) for j in range(len(cands[k]))]
    if not flat:
        return out
    _, k, j = max(flat)
    node: tuple[int, int] | None = (k, j)
    while node is not None:
        k, j = node
        out[k] = cands[k][j]
        node = back[k][j]
    return out


def _smooth_line(points: np.ndarray, sigma_vox: float) -> np.ndarray:
    """NaN-aware Gaussian smoothing along axis 0, with gaps (inside the tracked span) filled."""
    from scipy import ndimage

    valid = ~np.isnan(points[:, 0])
    if valid.sum() < 2:
        return points.copy()
    ks = np.arange(len(points))
    lo, hi = ks[valid].min(), ks[valid].max()
    filled = np.full_like(points, np.nan)
    for d in range(points.shape[1]):
        filled[lo : hi + 1, d] = np.interp(ks[lo : hi + 1], ks[valid], points[valid, d])
        filled[lo : hi + 1, d] = ndimage.gaussian_filter1d(
            filled[lo : hi + 1, d], sigma_vox, mode="nearest"
        )
    return filled


def _to_world(grid: Image, line_vox: np.ndarray) -> np.ndarray:
    ks = np.flatnonzero(~np.isnan(line_vox[:, 0]))
    ijk = np.column_stack([line_vox[ks], ks.astype(float)])
    return grid.voxel_to_world(ijk) if len(ks) else np.zeros((0, 3))


def _endplate_profile(scan: Image, line: np.ndarray) -> np.ndarray:
    """The 80th HU percentile, every 1 mm of the body line, over a sagittal slab through the
    bodies (±4 mm beside the line, from 20 mm behind it to 24 mm in front, so that a line on
    a body's posterior wall still covers the body). It peaks at each disc's pair of endplates
    (the densest bone of a vertebra; a thin disc between them is not resolved at this scale)
    and is low through a body's middle whatever the marrow's density, so the bodies' centres
    are its minima."""
    from scipy import ndimage

    xs = np.arange(-4.0, 4.1, 2.0)
    ys = np.arange(-20.0, 24.1, 1.0)
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    pts = np.repeat(line[:, None, :], len(grid), axis=1)
    pts[:, :, 0] += grid[:, 0]
    pts[:, :, 1] += grid[:, 1]
    ijk = scan.world_to_voxel(pts.reshape(-1, 3)).T
    values = ndimage.map_coordinates(
        np.asarray(scan.data, np.float32), ijk, order=1, mode="constant", cval=np.nan
    ).reshape(len(line), -1)
    known = np.isfinite(values).mean(axis=1) >= 0.5
    with warnings.catch_warnings():  # rows outside the grid are all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        # metal (screws, rods) and its blur would outshine every endplate: left out
        bone = np.isfinite(values) & (values < PROFILE_MAX_HU)
        p90 = np.nanpercentile(np.where(bone, values, np.nan), 80, axis=1)
    if known.sum() < 2:
        return np.zeros(len(line))
    ok = known & np.isfinite(p90)
    return np.interp(np.arange(len(line)), np.flatnonzero(ok), p90[ok])


def _pitch_range(depth_mm: float | None) -> tuple[float, float]:
    """The pitches (mm) that bodies this deep (the chain's depth, mm) can have: a
    neighbouring-lag multiple of the profile's period (half or twice the pitch) falls outside
    for every level, cervical to lumbar (:data:`PITCH_PER_DIAMETER`)."""
    lo, hi = DISC_SPACING_MM
    if depth_mm is None or not np.isfinite(depth_mm) or depth_mm <= 0:
        return lo, hi
    a, b = (f * 2.0 * depth_mm for f in PITCH_PER_DIAMETER)
    return max(lo, a), min(hi, max(b, lo + 4.0))


def _pitch(profile: np.ndarray, spacing_mm: tuple[float, float] = DISC_SPACING_MM) -> float:
    """The vertebral pitch (mm) of ``profile`` (1 mm samples): the lag of the highest
    autocorrelation peak within ``spacing_mm`` (:func:`_pitch_range`), or half of it when
    there is a peak there nearly as high (twice the period correlates as well as the period)."""
    lo, hi = int(spacing_mm[0]), int(spacing_mm[1])
    from scipy import ndimage

    # detrended over three pitches at most, so that the period itself survives
    x = profile - ndimage.uniform_filter1d(profile, 3 * hi, mode="nearest")
    if len(x) < 2 * lo:
        return float(np.clip(len(x), lo, hi))
    ac = np.correlate(x, x, mode="full")[len(x) - 1 :]
    ac = ac / max(ac[0], 1e-9) * len(x) / np.maximum(len(x) - np.arange(len(x)), 1)
    lags = np.arange(lo, min(hi, len(x) - lo) + 1)
    if not len(lags):
        return float(lo)
    a = ac[lags]
    peaks = [i for i in range(1, len(a) - 1) if a[i] >= a[i - 1] and a[i] >= a[i + 1] and a[i] > 0]
    if not peaks:
        return float(lags[int(np.argmax(a))])
    best = max(peaks, key=lambda i: a[i])
    half = [i for i in peaks if abs(lags[i] - lags[best] / 2) <= 3 and a[i] >= 0.7 * a[best]]
    return float(lags[half[0]] if half else lags[best])


def _body_centres(profile: np.ndarray, pitch: float) -> list[int]:
    """Indices of the bodies' centres: the minima of ``profile`` smoothed at an eighth of the
    pitch (so that each disc's two endplates make one peak), at least 0.6 pitch apart, deeper
    than :data:`BODY_PROMINENCE` of the profile's spread. A minimum at either end of the line
    counts when the profile there is still falling towards the border (a body cut by it)."""
    from scipy import ndimage, signal

    sigma = float(np.clip(pitch / 8, 2.0, 5.0))
    smooth = ndimage.gaussian_filter1d(profile, sigma, mode="nearest")
    spread = np.percentile(smooth, 95) - np.percentile(smooth, 5)
    pad = int(round(pitch / 2))
    padded = np.pad(smooth, pad, mode="reflect")  # an end body's minimum becomes a valley
    mins, _ = signal.find_peaks(
        -padded, distance=max(int(0.6 * pitch), 1), prominence=BODY_PROMINENCE * spread
    )
    centres = [int(m - pad) for m in mins if pad <= m < pad + len(smooth)]
    return centres


def _centres_and_pitch(
    profile: np.ndarray, in_bone: np.ndarray, spacing_mm: tuple[float, float] = DISC_SPACING_MM
) -> tuple[list[int], float]:
    """Body centres (indices of ``profile``, in solid bone) and the pitch they agree with: the
    autocorrelation's pitch, then the median gap of the bodies found, until the two agree
    (both within ``spacing_mm``)."""
    pitch = _pitch(profile, spacing_mm)
    centres = [i for i in _body_centres(profile, pitch) if in_bone[i]]
    for _ in range(5):  # until the pitch and the gaps between the bodies found agree
        if len(centres) < 3:
            break
        gap = float(np.median(np.diff(centres)))
        if abs(gap - pitch) <= 0.15 * pitch:
            break
        pitch = float(np.clip(gap, *spacing_mm))
        centres = [i for i in _body_centres(profile, pitch) if in_bone[i]]
    return centres, pitch


def _fill_gaps(centres: list[int], pitch: float, in_bone: np.ndarray) -> tuple[list[int], set[int]]:
    """``centres`` with a body placed evenly in each gap of about two or more pitches between
    neighbours (a body whose discs the profile missed: a fused or collapsed disc, an
    endplate hidden by metal), kept where the line is in solid bone. Counting levels across
    such a gap needs it: one body missed above the sacrum would shift every level above.

    Returns:
        The centres (indices along the line, ascending) and the set of inferred ones.
    """
    out, inferred = list(centres[:1]), set()
    for a, b in zip(centres[:-1], centres[1:], strict=True):
        missing = int(round((b - a) / pitch)) - 1 if b - a > GAP_PITCHES * pitch else 0
        for m in range(1, missing + 1):
            i = int(round(a + m * (b - a) / (missing + 1)))
            if in_bone[i]:
                out.append(i)
                inferred.add(i)
        out.append(b)
    return out, inferred


def _refine_centre(grid: Image, solid: np.ndarray, centre_mm: np.ndarray, extent_z) -> np.ndarray:
    """The body's centre moved, in its mid-sagittal plane, to the deepest point of the solid
    bone between its two discs (the centre of the largest circle inside the body's sagittal
    section). The body line runs along the deepest bone of each axial slice, which slides
    back onto the canal where the canal's ring is closed and filled; the sagittal section
    keeps the body whole."""
    from scipy import ndimage

    c = grid.world_to_voxel(centre_mm[None])[0]
    x = int(round(c[0]))
    if not 0 <= x < solid.shape[0]:
        return centre_mm
    k0, k1 = sorted(grid.world_to_voxel(np.array([[*centre_mm[:2], e] for e in extent_z]))[:, 2])
    k0, k1 = max(int(np.floor(k0)), 0), min(int(np.ceil(k1)), solid.shape[2] - 1)
    y0 = max(int(round(c[1] - 20.0 / GRID_MM)), 0)
    y1 = min(int(round(c[1] + 25.0 / GRID_MM)) + 1, solid.shape[1])
    section = solid[max(x - 1, 0) : x + 2].any(axis=0)  # (y, z) around the line
    depth = ndimage.distance_transform_edt(np.pad(section, 1))[1:-1, 1:-1]
    window = depth[y0:y1, k0 : k1 + 1]
    if window.size == 0 or window.max() < BODY_CORE_MM / GRID_MM:
        return centre_mm
    jy, _ = np.unravel_index(int(np.argmax(window)), window.shape)
    if not 0 < y0 + jy - c[1] <= REFINE_MAX_MM / GRID_MM:  # the line's bias is backwards only
        return centre_mm
    moved = grid.voxel_to_world(np.array([[c[0], y0 + jy, c[2]]]))[0]
    return np.array([centre_mm[0], moved[1], centre_mm[2]])


def _disc_mean(image: Image, line: np.ndarray, radius_mm: float = 7.0) -> np.ndarray:
    """Mean of ``image`` on an axial disc of ``radius_mm`` around every point of ``line``
    (NaN-free: points outside the grid count as 0)."""
    from scipy import ndimage

    step = np.arange(-radius_mm, radius_mm + 0.1, 1.5)
    offsets = np.array(
        [(dx, dy) for dx in step for dy in step if dx * dx + dy * dy <= radius_mm**2]
    )
    pts = np.repeat(line[:, None, :], len(offsets), axis=1)
    pts[:, :, :2] += offsets[None]
    ijk = image.world_to_voxel(pts.reshape(-1, 3)).T
    values = ndimage.map_coordinates(np.asarray(image.data, np.float32), ijk, order=1, cval=0.0)
    return values.reshape(len(line), -1).mean(axis=1)


def _sacrum_top(solid: np.ndarray, chain: np.ndarray) -> tuple[int | None, bool]:
    """Slice index of the top of the sacrum on the chain (the highest run of at least
    :data:`SACRUM_MIN_RUN_MM` where the solid bone at the chain's antero-posterior level reaches
    :data:`SACRUM_HALF_WIDTH_MM` on both sides), or None. Only a run with chain above it
    counts (a sacrum at the top of the scan is not a sacrum).

    Also whether that bone was seen whole: in a field of view about as wide as a body, bone
    that runs off the scan's sides is as wide as the scan, not known to be wider, and a
    lumbar vertebra's transverse processes read as a sacrum (CTs rendered from narrow real
    VerSe masks found one at L4 this way). Such a sacrum still ends the body line, but the
    levels counted from it are uncertain."""
    from scipy import ndimage

    reach = np.zeros(len(chain))
    cut = np.zeros(len(chain), bool)
    band = int(round(8.0 / GRID_MM))
    for k in np.flatnonzero(~np.isnan(chain[:, 0])):
        cx, cy = int(round(chain[k, 0])), int(round(chain[k, 1]))
        strip = solid[:, max(cy - band, 0) : cy + band + 1, k]
        labels, n = ndimage.label(strip)
        here = labels[max(cx - 2, 0) : cx + 3]
        ids = np.unique(here[here > 0])
        if not n or not len(ids):
            continue
        xs = np.flatnonzero(np.isin(labels, ids).any(axis=1))
        reach[k] = min(cx - xs.min(), xs.max() - cx) * GRID_MM
        cut[k] = xs.min() == 0 or xs.max() == strip.shape[0] - 1
    # a running median over 10 mm: L5's transverse processes are wide for a few mm only
    wide = ndimage.median_filter(reach, size=int(round(10.0 / GRID_MM)) | 1) >= SACRUM_HALF_WIDTH_MM
    run = int(round(SACRUM_MIN_RUN_MM / GRID_MM))
    tracked = np.flatnonzero(~np.isnan(chain[:, 0]))
    for k in range(len(chain) - 1, run - 2, -1):  # from the top down
        if wide[k - run + 1 : k + 1].all() and (tracked > k + run).sum() >= run:
            return k, not cut[k - run + 1 : k + 1].any()
    return None, True


def _irregular_gaps(centres: list[np.ndarray]) -> list[bool]:
    """Per gap between neighbouring bodies (cranial first): unlike the gaps beside it (less
    than 0.7 or more than 1.45 times the median of up to two on each side). The pitch changes
    slowly along the spine (about 5 % a level), so such a gap is a body missed or a disc
    taken for a body, and a level counted across it is not anchored."""
    pts = np.asarray(centres, float).reshape(-1, 3)
    gaps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    out = []
    for g in range(len(gaps)):
        beside = np.r_[gaps[max(g - 2, 0) : g], gaps[g + 1 : g + 3]]
        ref = float(np.median(beside)) if len(beside) else gaps[g]
        out.append(bool(gaps[g] < 0.7 * ref or gaps[g] > 1.45 * ref))
    return out


def _assign_levels(result: SpineLocalisation) -> None:
    """Labels: counted up from L5 (the body right above the sacrum) when the sacrum is in
    view, otherwise the pitch profile's best T1-L5 window, marked uncertain."""
    from spinefx.inference.localisation import profile_offset

    vs = result.vertebrae
    if not vs:
        return
    standard = [lab for lab in SPINE_ORDER if lab not in (25, 28)]
    if result.sacrum_found:
        first = standard.index(24) - (len(vs) - 1)
        result.anchor, confidence = "sacrum", "anchored"
        note = ("counted up from the sacrum: the body above it is L5 (assumes five lumbar "
                "vertebrae; a transitional L6 or a sacralised L5 would shift every level)")  # fmt: skip
        if not result.sacrum_whole:
            confidence = "uncertain"
            note = ("counted up from bone taken for the sacrum, but the scan's sides cut it: "
                    "its width, which tells a sacrum from a lumbar vertebra's transverse "
                    "processes, was not seen")  # fmt: skip
    else:
        pts = np.array([v.centroid_mm for v in vs])
        if 2 <= len(pts) <= 17:
            first = standard.index(profile_offset(pts)[0])
        else:
            first = standard.index(24) - (len(vs) - 1)
        result.anchor, confidence = "profile", "uncertain"
        note = "no sacrum in view: the level is a guess from the spacing of the bodies"
    kept = []
    for i, v in enumerate(vs):
        k = first + i
        if 0 <= k < len(standard):
            v.label, v.level_confidence, v.level_note = standard[k], confidence, note
            kept.append(v)
    if result.sacrum_found:
        # a body inferred from the spacing (:func:`_fill_gaps`) is counted, but a wrong pitch
        # would miscount it: the levels above it (and its own) are not anchored any more; so
        # would a gap unlike its neighbours' (a body missed, or a disc taken for a body)
        odd = _irregular_gaps([v.centroid_mm for v in vs])
        crossed = False
        for i in range(len(vs) - 1, -1, -1):  # from L5 up
            v = vs[i]
            crossed = crossed or v.inferred or (i < len(vs) - 1 and odd[i])
            if crossed and v in kept and result.sacrum_whole:
                v.level_confidence = "uncertain"
                v.level_note = ("counted up from the sacrum across a body inferred from the "
                                "spacing of its neighbours (its discs were not seen) or a gap "
                                "unlike theirs")  # fmt: skip
    result.vertebrae = kept
    log.info("localised %d vertebrae (%s): %s", len(kept), result.anchor,
             ", ".join(level_name(v.label) for v in kept))  # fmt: skip
