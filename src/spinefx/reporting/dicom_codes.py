"""Coded concepts of the DICOM export: SNOMED CT vertebrae and spinefx's private codes.

Vertebrae (segment types, SR finding sites) use the SNOMED CT codes of pydicom's code
dictionary (``C1 vertebra`` ... ``L5 vertebra``; L6 and T13, which have none, use
``Vertebra`` and are named by their label). Concepts with no standard code (fracture
probability of a given classifier, body heights, Genant grade, fracture shape,
assessability) use the private coding scheme ``99SPINEFX``: DICOM reserves designators
starting with ``99`` for such local codes.

:func:`measurement_report` builds the TID 1500 content: one measurement group per vertebra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from spinefx.conventions import GENANT_GRADES, NON_VERTEBRA_LABELS, VERTEBRA_LEVELS
from spinefx.reporting.vertebra_findings import VertebraFinding

SCHEME = "99SPINEFX"


def _code(value: str, meaning: str) -> Code:
    return Code(value, SCHEME, meaning[:64])


HEIGHT_CODES = (
    _code("HA", "Anterior vertebral body height"),
    _code("HM", "Middle vertebral body height"),
    _code("HP", "Posterior vertebral body height"),
)
HEIGHT_LOSS = _code("HLOSS", "Vertebral body height loss (fraction of expected)")
GENANT_GRADE = _code("GENANT", "Genant semiquantitative grade")
GENANT_VALUES = {
    g: _code(f"GENANT{g}", f"Genant grade {g} ({n})") for g, n in GENANT_GRADES.items()
}
FRACTURE_SHAPE = _code("FXSHAPE", "Vertebral fracture shape")
SHAPE_VALUES = {s: _code(s.upper(), f"{s} deformity") for s in ("wedge", "biconcave", "crush")}
ASSESSABILITY = _code("ASSESS", "Assessability")
NOT_ASSESSABLE = _code("NOTASSESS", "Not assessable")
REASON = _code("REASON", "Reason not assessable")
#: known not-assessable reasons (by a word of the note) -> code value
REASON_VALUES = {
    "metal": "METAL",
    "outside": "OUTOFVIEW",
    "out of view": "OUTOFVIEW",
    "border": "CUTBYBORDER",
    "cervical": "CERVICAL",
}


def probability_code(method: str) -> Code:
    """Fracture probability of the ``method`` classifier (``patch`` / ``voxel``)."""
    return _code(f"FXPROB{method.upper()}"[:16], f"Vertebral fracture probability ({method})")


def vertebra_code(label: int) -> Code:
    """SNOMED CT code of a VerSe label (sacrum, coccyx included)."""
    if label in NON_VERTEBRA_LABELS:
        return codes.SCT.Sacrum if NON_VERTEBRA_LABELS[label] == "sacrum" else codes.SCT.Coccyx
    name = f"{VERTEBRA_LEVELS[label]}Vertebra"
    return getattr(codes.SCT, name) if name in dir(codes.SCT) else codes.SCT.Vertebra


def segment_label(label: int) -> str:
    return VERTEBRA_LEVELS.get(label) or NON_VERTEBRA_LABELS[label]


def segment_description(number: int, label: int, *, algorithm: str):
    """highdicom SegmentDescription of one vertebra (category: anatomical structure)."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment_label(label),
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=vertebra_code(label),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm, family=codes.DCM.ArtificialIntelligence, version="1"
        ),
        tracking_id=segment_label(label),
        tracking_uid=generate_uid(),
    )


#: SNOMED CT "Fracture (morphologic abnormality)": the segmented property type of the
#: fracture SEG's segments (category: morphologically abnormal structure)
FRACTURE = Code("72704001", "SCT", "Fracture")
#: recommended display colours (sRGB) of the fracture SEG's segments
FRACTURED_VERTEBRA_RGB = (230, 60, 50)
FRACTURE_VOXELS_RGB = (255, 190, 0)


def fracture_segment_description(
    number: int, label: int | None, *, algorithm: str, segment_label: str
):
    """highdicom SegmentDescription of a fracture region (a flagged vertebra or voxels).

    Args:
        number: segment number (1-based).
        label: VerSe id of the fractured vertebra (anatomic region), None for the voxel map.
        algorithm: name of what decided it (the classifier and its operating point).
        segment_label: the segment's label as a PACS viewer lists it.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    rgb = FRACTURE_VOXELS_RGB if label is None else FRACTURED_VERTEBRA_RGB
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment_label[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=FRACTURE,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm[:64], family=codes.DCM.ArtificialIntelligence, version="1"
        ),
        tracking_id=segment_label[:64],
        tracking_uid=generate_uid(),
        anatomic_regions=None if label is None else [vertebra_code(label)],
        display_color=hd.color.CIELabColor.from_rgb(*rgb),
    )


def _reason_code(reason: str) -> Code:
    lower = reason.lower()
    value = next((v for word, v in REASON_VALUES.items() if word in lower), "OTHER")
    return _code(value, reason or "not assessable")


def _group_items(finding: VertebraFinding, models: Mapping[str, dict]):
    """(measurements, qualitative evaluations) of one finding."""
    import highdicom as hd

    measurements = []
    for method, p in finding.probabilities.items():
        if not math.isfinite(p):
            continue
        model = models.get(method, {})
        algorithm = hd.sr.AlgorithmIdentification(
            name=f"spinefx {method} classifier",
            version=str(model.get("weights_sha256", "unknown"))[:16] or "unknown",
        )
        measurements.append(
            hd.sr.Measurement(
                name=probability_code(method),
                value=float(p),
                unit=codes.UCUM.NoUnits,
                algorithm_id=algorithm,
            )
        )
    if finding.heights_mm is not None:
        for code, h in zip(HEIGHT_CODES, finding.heights_mm, strict=True):
            if math.isfinite(h):
                measurements.append(hd.sr.Measurement(code, float(h), codes.UCUM.Millimeter))
    if finding.height_loss is not None and math.isfinite(finding.height_loss):
        measurements.append(
            hd.sr.Measurement(HEIGHT_LOSS, float(finding.height_loss), codes.UCUM.NoUnits)
        )
    evaluations = []
    if finding.genant_grade is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(GENANT_GRADE, GENANT_VALUES[finding.genant_grade])
        )
    if finding.shape in SHAPE_VALUES:
        evaluations.append(hd.sr.QualitativeEvaluation(FRACTURE_SHAPE, SHAPE_VALUES[finding.shape]))
    if not finding.assessable:
        evaluations.append(hd.sr.QualitativeEvaluation(ASSESSABILITY, NOT_ASSESSABLE))
        evaluations.append(hd.sr.QualitativeEvaluation(REASON, _reason_code(finding.reason)))
    return measurements, evaluations


def measurement_report(
    findings: Sequence[VertebraFinding], series, *, models: Mapping[str, dict], segmentation=None
):
    """TID 1500 Measurement Report: one group per vertebra, tracked by its level name.

    With a SEG, a vertebra that has a segment gets a volumetric group (TID 1411) that
    references it; otherwise a TID 1501 group.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    segments = {}
    if segmentation is not None:
        segments = {str(s.SegmentLabel): s for s in segmentation.SegmentSequence}
        source = hd.sr.SourceSeriesForSegmentation(series.datasets[0].SeriesInstanceUID)
    groups = []
    for finding in findings:
        measurements, evaluations = _group_items(finding, models)
        common = dict(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=finding.level
            ),
            finding_sites=[hd.sr.FindingSite(vertebra_code(finding.vertebra_label))],
            measurements=measurements or None,
            qualitative_evaluations=evaluations or None,
        )
        segment = segments.get(finding.level)
        if segment is not None:
            reference = hd.sr.ReferencedSegment(
                sop_class_uid=segmentation.SOPClassUID,
                sop_instance_uid=segmentation.SOPInstanceUID,
                segment_number=int(segment.SegmentNumber),
                source_series=source,
            )
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    referenced_segment=reference, **common
                )
            )
        else:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="spinefx"
        ),
    )
    return hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
