"""Which scan metadata may appear in a report: an allow-list, never a block-list.

A DICOM reader may carry header fields (PatientName, PatientID, ...) in ``Image.meta``. Reports
show only the acquisition fields below; identifying fields only when the user asks for them
(``--include-identifiers``). Anything not listed (including file paths, which often contain
names) is left out.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Acquisition fields safe to show (lower-cased, without separators, for matching).
ACQUISITION_FIELDS: dict[str, str] = {
    "modality": "Modality",
    "manufacturer": "Manufacturer",
    "manufacturermodelname": "Scanner model",
    "slicethickness": "Slice thickness",
    "slicethicknessmm": "Slice thickness (mm)",
    "kvp": "kVp",
    "convolutionkernel": "Reconstruction kernel",
    "bodypartexamined": "Body part",
    "sourceformat": "Source format",
    "format": "Source format",
}
#: Identifying fields, shown only with ``include_identifiers=True``.
IDENTIFIER_FIELDS: dict[str, str] = {
    "patientname": "Patient name",
    "patientid": "Patient ID",
    "patientbirthdate": "Birth date",
    "patientsex": "Sex",
    "patientage": "Age",
    "accessionnumber": "Accession number",
    "studydate": "Study date",
    "studyinstanceuid": "Study UID",
    "seriesinstanceuid": "Series UID",
    "institutionname": "Institution",
    "referringphysicianname": "Referring physician",
}


def report_metadata(meta: Mapping, *, include_identifiers: bool = False) -> dict[str, str]:
    """The metadata fields a report may show, with display names.

    Args:
        meta: ``Image.meta`` of the scan (any keys; nested dicts such as ``meta["dicom"]`` are
            searched one level deep).
        include_identifiers: also show patient/study identifiers.

    Returns:
        Display name → value as text, allow-listed fields only.
    """
    allowed = dict(ACQUISITION_FIELDS)
    if include_identifiers:
        allowed.update(IDENTIFIER_FIELDS)
    out: dict[str, str] = {}
    for key, value in _flatten(meta):
        norm = "".join(ch for ch in str(key).lower() if ch.isalnum())
        if norm in allowed and value not in (None, ""):
            out.setdefault(allowed[norm], str(value))
    return out


def _flatten(meta: Mapping):
    for key, value in meta.items():
        if isinstance(value, Mapping):
            yield from value.items()
        else:
            yield key, value
