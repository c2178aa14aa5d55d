"""spinefx.io: reading and writing scans, masks, centroids, grade tables and dataset layouts.

The only stage that touches nibabel, pydicom, VerSe JSON and grade tables. Everything it
returns is in the spinefx coordinate contract: images with voxel -> RAS+ mm affines, centroids
in world RAS+ mm, intensities in HU.
"""

from __future__ import annotations

from spinefx.io.centroids import centroids_from_mask, load_centroids, save_centroids
from spinefx.io.describe import ScanDescription, VertebraFound, describe_scan, format_description
from spinefx.io.dicom import load_dicom_series
from spinefx.io.grades import (
    load_grade_table,
    read_ctfu_labels,
    read_long_grades,
    read_verse_appendix,
)
from spinefx.io.layouts import DatasetLoad, DatasetProblem, load_dataset, scan_dataset
from spinefx.io.nifti import read_nifti, read_nifti_geometry, save_image, save_probability_map
from spinefx.io.scan import check_ct_intensities, load_mask, load_scan

__all__ = [
    "DatasetLoad",
    "DatasetProblem",
    "ScanDescription",
    "VertebraFound",
    "centroids_from_mask",
    "check_ct_intensities",
    "describe_scan",
    "format_description",
    "load_centroids",
    "load_dataset",
    "load_dicom_series",
    "load_grade_table",
    "load_mask",
    "load_scan",
    "read_ctfu_labels",
    "read_long_grades",
    "read_nifti",
    "read_nifti_geometry",
    "read_verse_appendix",
    "save_centroids",
    "save_image",
    "save_probability_map",
    "scan_dataset",
]
