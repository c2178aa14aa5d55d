"""The concept visualisation web app: a FastAPI server with one HTML page and a JSON/PNG API.

A thin shell over :mod:`spinefx.reporting`: it parses uploads, calls the reporting API and
renders its results. The run (model + atlas) is loaded once when the app is created; each
scan's patches, predictions and per-vertebra explanations are cached in a
:class:`~spinefx.reporting.ScanWorkspace` so that a concept panel costs one relevance pass.
"""

from __future__ import annotations

import logging
import re
import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from spinefx.app import panels, uploads, volumes
from spinefx.app.examples import example_names, get_example
from spinefx.app.guards import BodySizeLimit, Busy, HeavyGate, SameOriginToken
from spinefx.errors import InputError, SpinefxError
from spinefx.reporting import (
    ModelRun,
    ScanWorkspace,
    build_html_report,
    draft_findings,
    open_workspace,
)
from spinefx.reporting.backends import set_unit_concept

log = logging.getLogger(__name__)
_HERE = Path(__file__).parent
MAX_SCANS_IN_MEMORY = 4  # each keeps its patches, layer activations and viewer volumes
MASK_NUMBERINGS = ("auto", "verse", "totalseg_v1", "totalseg_v2")
MAX_CENTROID_BYTES = 1_000_000  # a VerSe centroid JSON is a few kB
# form framing, the centroid file and a vertebra mask (label maps compress to a few MB)
MULTIPART_OVERHEAD = 1_000_000 + MAX_CENTROID_BYTES
# An absolute POSIX path (two or more components) not inside a URL: shown as its last part
_SERVER_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s/:'\"]+/)+([^\s/:'\"]+)")


def public_message(text: str) -> str:
    """An error text for the browser: server folders removed, file names kept."""
    return _SERVER_PATH.sub(r"\1", str(text))


class UnitEdit(BaseModel):
    """The body of ``POST /api/units/{unit}``: text only (a number or object is refused)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    label: str | None = Field(None, max_length=200)
    explanation: str | None = Field(None, max_length=5000)


class AppState:
    """What the app holds between requests: the loaded run and the scans under analysis."""

    def __init__(
        self,
        run: ModelRun,
        *,
        max_upload_mb: float,
        cache_dir: Path,
        max_concurrent: int = 2,
        max_image_gb: float = 1.0,
    ) -> None:
        self.run = run
        self.max_upload_bytes = int(max_upload_mb * 1e6)
        self.cache_dir = Path(cache_dir)
        self.scans: OrderedDict[str, ScanWorkspace] = OrderedDict()
        self.volumes: dict[str, volumes.ScanVolumes] = {}  # the scan viewer's, per scan
        self.lock = threading.Lock()
        self.token = secrets.token_urlsafe(24)  # per app session; the page carries it
        self.heavy = HeavyGate(max_concurrent)
        self.max_image_gb = float(max_image_gb)

    def add(self, workspace: ScanWorkspace, viewer: volumes.ScanVolumes) -> str:
        scan_id = secrets.token_urlsafe(8)
        with self.lock:
            self.scans[scan_id] = workspace
            self.volumes[scan_id] = viewer
            while len(self.scans) > MAX_SCANS_IN_MEMORY:
                old, _ = self.scans.popitem(last=False)
                self.volumes.pop(old, None)
        return scan_id

    def get(self, scan_id: str) -> ScanWorkspace:
        with self.lock:
            if scan_id not in self.scans:
                raise HTTPException(404, "scan not found (the app keeps the last few scans only)")
            return self.scans[scan_id]

    def viewer(self, scan_id: str) -> volumes.ScanVolumes:
        with self.lock:
            if scan_id not in self.volumes:
                raise HTTPException(404, "scan not found (the app keeps the last few scans only)")
            return self.volumes[scan_id]


def create_app(
    run: ModelRun,
    *,
    max_upload_mb: float = 512.0,
    cache_dir: Path | None = None,
    allowed_hosts: list[str] | None = None,
    max_concurrent: int = 2,
    max_image_gb: float = 1.0,
) -> FastAPI:
    """Build the web app around an already loaded run.

    Args:
        run: the classifier run and its atlas (see :func:`spinefx.reporting.load_model_run`).
        max_upload_mb: uploads (and unzipped DICOM series) larger than this are refused (413).
        cache_dir: where the bundled synthetic examples are generated on first use.
        allowed_hosts: accepted ``Host`` headers (None: any); ``spinefx app`` on 127.0.0.1
            passes the local names so that a web page cannot reach the app by DNS rebinding.
        max_concurrent: scan analyses run at once; more are answered 429 (busy).
        max_image_gb: largest voxel array an uploaded scan may declare (checked on its header
            before any voxel is read); lower than the CLI's cap, because the app serves
            several requests.

    State-changing requests need the page's token (``app.state.spinefx.token``) in the
    ``X-Spinefx-Token`` header and a same-site ``Origin`` (:mod:`spinefx.app.guards`).
    """
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "spinefx-app-cache"
    state = AppState(
        run,
        max_upload_mb=max_upload_mb,
        cache_dir=cache,
        max_concurrent=max_concurrent,
        max_image_gb=max_image_gb,
    )
    app = FastAPI(title="spinefx concept visualisation", docs_url=None, redoc_url=None)
    app.state.spinefx = state
    _install_guards(app, state, allowed_hosts)
    _install_error_handlers(app)
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return templates.TemplateResponse(
            request,
            "index.html",
            {
                "run_name": run.name,
                "atlas_name": run.atlas_path.name if run.atlas_path else None,
                "examples": example_names(),
                "max_upload_mb": int(max_upload_mb),
                "auto_localisation": True,  # on the CT anatomy; no model needed
                "token": state.token,
            },
        )

    @app.post("/api/scans")
    def upload_scan(
        scan: Annotated[UploadFile, File()],
        centroids: Annotated[UploadFile | None, File()] = None,
        mask: Annotated[UploadFile | None, File()] = None,
        mask_numbering: Annotated[str, Form()] = "auto",
    ):
        with state.heavy.slot(), tempfile.TemporaryDirectory(prefix="spinefx-upload-") as tmp:
            work = Path(tmp)
            saved = uploads.save_scan_upload(
                scan.file, scan.filename or "scan", work, max_bytes=state.max_upload_bytes
            )
            ctd_path = mask_path = None
            if centroids is not None and centroids.filename:
                ctd_path = work / "centroids.json"
                ctd_path.write_bytes(_read_limited(centroids, MAX_CENTROID_BYTES))
            if mask is not None and mask.filename:
                mask_path = _save_mask_upload(mask, work, state.max_upload_bytes)
            if ctd_path is not None and mask_path is not None:
                raise InputError(
                    "both a centroid file and a vertebra mask were uploaded",
                    fix="upload one of them: the vertebra positions come from either",
                )
            workspace = _open_scan(
                state,
                saved.path,
                ctd_path,
                name=saved.name,
                mask_path=mask_path,
                mask_numbering=mask_numbering,
            )
            viewer = _scan_volumes(workspace, mask_path, mask_numbering)
        return _scan_summary(state.add(workspace, viewer), workspace, viewer)

    @app.post("/api/examples/{name}")
    def open_example(name: str):
        with state.heavy.slot():
            example = get_example(name, state.cache_dir)
            workspace = _open_scan(
                state, example.scan_path, example.centroids_path, name=f"{name} (synthetic example)"
            )
        viewer = volumes.ScanVolumes(workspace.analysis)
        return _scan_summary(state.add(workspace, viewer), workspace, viewer)

    @app.get("/api/scans/{scan_id}/overview.png")
    def overview(scan_id: str):
        return _png(panels.overview_png(state.get(scan_id)))

    @app.get("/api/scans/{scan_id}/volumes/{name}.nii.gz")
    def volume(scan_id: str, name: str):
        viewer = state.viewer(scan_id)
        if name not in volumes.VOLUME_NAMES:
            raise HTTPException(
                404, f"no volume {name!r}: one of {', '.join(volumes.VOLUME_NAMES)}"
            )
        return Response(
            viewer.nifti_gz(name),
            media_type="application/gzip",
            headers={"Cache-Control": "private, max-age=600"},
        )

    @app.get("/api/scans/{scan_id}/vertebrae/{label}/panel")
    def panel(scan_id: str, label: int):
        return panels.panel_json(state.get(scan_id), label)

    @app.get("/api/scans/{scan_id}/vertebrae/{label}/slice.png")
    def slice_png(
        scan_id: str,
        label: int,
        plane: str = "sagittal",
        index: int | None = None,
        layer: str = "ct",
        unit: int | None = None,
    ):
        ws = state.get(scan_id)
        return _png(panels.slice_png(ws, label, plane=plane, index=index, layer=layer, unit=unit))

    @app.get("/api/units/{unit}/collage.png")
    def collage(unit: int):
        path = panels.collage_path(run, unit)
        return Response(path.read_bytes(), media_type="image/png")

    @app.post("/api/units/{unit}")
    def edit_unit(unit: int, payload: UnitEdit):
        label = (payload.label or "").strip()
        explanation = (payload.explanation or "").strip()
        with state.lock:
            set_unit_concept(run, unit, label=label, explanation=explanation)
        return panels.concept_json(run, unit)

    @app.get("/api/scans/{scan_id}/draft")
    def draft(scan_id: str):
        ws = state.get(scan_id)
        text = draft_findings(ws.analysis, ws.explanations_for_report(), ws.concepts())
        return {"text": text}

    @app.post("/api/scans/{scan_id}/report.txt")
    def report_txt(scan_id: str, findings: Annotated[str, Form()]):
        ws = state.get(scan_id)
        return PlainTextResponse(findings, headers=_attachment(ws.analysis.name, "txt"))

    @app.post("/api/scans/{scan_id}/report.html")
    def report_html(scan_id: str, findings: Annotated[str, Form()]):
        ws = state.get(scan_id)
        html = build_html_report(
            ws.analysis,
            ws.explanations_for_report(),
            ws.concepts(),
            findings_text=findings,
            model_name=run.name,
        )
        return HTMLResponse(html, headers=_attachment(ws.analysis.name, "html"))

    return app


def _install_guards(app: FastAPI, state: AppState, allowed_hosts: list[str] | None) -> None:
    """Host check, streaming body-size limit, then same-origin + token (in that order)."""
    # Middleware added last runs first.
    app.add_middleware(SameOriginToken, token=state.token)
    app.add_middleware(
        BodySizeLimit,
        limit_bytes=lambda: state.max_upload_bytes + MULTIPART_OVERHEAD,
        message=lambda _limit: (
            f"Upload too large: the limit is "
            f"{state.max_upload_bytes / 1e6:.0f} MB (start the app with --max-upload-mb)."
        ),
    )
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)


def _install_error_handlers(app: FastAPI) -> None:
    """Errors as JSON ``{"detail": ...}`` for the page: input errors 400 (413 for uploads over
    the limit) without server paths, busy 429, invalid bodies 400, anything else 500."""

    @app.exception_handler(SpinefxError)
    async def spinefx_error(_request: Request, exc: SpinefxError):
        status = 413 if isinstance(exc, uploads.UploadTooLarge) else 400
        return JSONResponse({"detail": public_message(exc)}, status_code=status)

    @app.exception_handler(Busy)
    async def busy(_request: Request, exc: Busy):
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        log.exception("unexpected error in the app")
        return JSONResponse(
            {
                "detail": f"internal error ({type(exc).__name__}); the app's log has the "
                "details - please report it"
            },
            status_code=500,
        )


def _open_scan(
    state: AppState,
    scan_path: Path,
    ctd_path: Path | None,
    *,
    name: str,
    mask_path: Path | None = None,
    mask_numbering: str = "auto",
):
    from spinefx.io.nifti import image_size_limit

    if mask_numbering not in MASK_NUMBERINGS:
        raise InputError(
            f"unknown mask numbering {mask_numbering!r}",
            fix=f"choose one of {', '.join(MASK_NUMBERINGS)}",
        )
    with image_size_limit(state.max_image_gb):
        return open_workspace(
            state.run,
            scan_path,
            centroids_path=ctd_path,
            name=name,
            mask_path=mask_path,
            mask_numbering=mask_numbering,
        )


def _save_mask_upload(mask: UploadFile, work: Path, max_bytes: int) -> Path:
    """A vertebra mask upload (NIfTI only: VerSe or TotalSegmentator labels) in ``work/mask``."""
    name = uploads.safe_name(mask.filename or "mask")
    if not name.lower().endswith(uploads.NIFTI_SUFFIXES):
        raise InputError(
            "a vertebra mask must be a NIfTI file (.nii or .nii.gz)",
            path=name,
            fix="upload the VerSe _seg-vert_msk or TotalSegmentator multilabel file",
        )
    folder = work / "mask"
    folder.mkdir()
    return uploads.save_scan_upload(mask.file, name, folder, max_bytes=max_bytes).path


def _scan_volumes(
    ws: ScanWorkspace, mask_path: Path | None, mask_numbering: str
) -> volumes.ScanVolumes:
    """The viewer's volumes: labels from the uploaded mask when there is one, else spheres."""
    if mask_path is None:
        return volumes.ScanVolumes(ws.analysis)
    from spinefx.io.vertebra_masks import load_vertebra_mask

    mask = load_vertebra_mask(mask_path, numbering=mask_numbering).image
    labels = volumes.mask_labels_on_scan(mask, ws.analysis.scan)
    return volumes.ScanVolumes(ws.analysis, mask_labels=labels)


def _scan_summary(scan_id: str, ws: ScanWorkspace, viewer: volumes.ScanVolumes) -> dict:
    a = ws.analysis
    return {
        "scan_id": scan_id,
        "name": a.name,
        "shape": list(a.scan.shape),
        "spacing_mm": [round(float(s), 3) for s in a.scan.spacing_mm],
        "decision_threshold": a.decision_threshold,
        "centroid_source": a.centroid_source,
        "notes": list(a.notes),
        "has_atlas": ws.run.atlas is not None,
        "vertebrae": [
            {
                "label": p.vertebra_label,
                "level": p.level,
                "probability": round(p.probability, 4),
                "flagged": p.flagged,
                "assessable": p.assessable,
                "note": p.note,
                "morphometry": a.morphometry.get(p.vertebra_label),
                "centroid_mm": [round(float(c), 2) for c in p.centroid_mm],
            }
            for p in a.predictions
        ],
        "viewer": viewer.describe(f"/api/scans/{scan_id}/volumes"),
    }


def _read_limited(upload: UploadFile, max_bytes: int) -> bytes:
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(
            413,
            f"Upload too large: the limit is {max_bytes / 1e6:.0f} MB "
            "(start the app with --max-upload-mb).",
        )
    return data


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=600"})


def _attachment(name: str, ext: str) -> dict[str, str]:
    stem = uploads.safe_name(name.split(" ")[0]).split(".")[0] or "scan"
    return {"Content-Disposition": f'attachment; filename="spinefx-report-{stem}.{ext}"'}


def token_headers(app: FastAPI) -> dict[str, str]:
    """The header a client other than the app's page (a script, a test) sends with a POST."""
    return {"X-Spinefx-Token": app.state.spinefx.token}


__all__ = ["AppState", "create_app", "public_message", "token_headers"]
