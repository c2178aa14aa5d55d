"""The concept visualisation web app: a FastAPI server with one HTML page and a JSON/PNG API.

A thin shell over :mod:`spinefx.reporting`: it parses uploads, calls the reporting API and
renders its results. The run (model + atlas) is loaded once when the app is created; each
scan's patches, predictions and per-vertebra explanations are cached in a
:class:`~spinefx.reporting.ScanWorkspace` so that a concept panel costs one relevance pass.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from spinefx.app import panels, uploads
from spinefx.app.examples import example_names, get_example
from spinefx.errors import SpinefxError
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
MAX_SCANS_IN_MEMORY = 4  # each keeps its patches and layer activations


class AppState:
    """What the app holds between requests: the loaded run and the scans under analysis."""

    def __init__(
        self, run: ModelRun, *, voxel_run_dir: Path | None, max_upload_mb: float, cache_dir: Path
    ) -> None:
        self.run = run
        self.voxel_run_dir = voxel_run_dir
        self.max_upload_bytes = int(max_upload_mb * 1e6)
        self.cache_dir = Path(cache_dir)
        self.scans: OrderedDict[str, ScanWorkspace] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, workspace: ScanWorkspace) -> str:
        scan_id = secrets.token_urlsafe(8)
        with self.lock:
            self.scans[scan_id] = workspace
            while len(self.scans) > MAX_SCANS_IN_MEMORY:
                self.scans.popitem(last=False)
        return scan_id

    def get(self, scan_id: str) -> ScanWorkspace:
        with self.lock:
            if scan_id not in self.scans:
                raise HTTPException(404, "scan not found (the app keeps the last few scans only)")
            return self.scans[scan_id]


def create_app(
    run: ModelRun,
    *,
    voxel_run_dir: Path | None = None,
    max_upload_mb: float = 512.0,
    cache_dir: Path | None = None,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """Build the web app around an already loaded run.

    Args:
        run: the classifier run and its atlas (see :func:`spinefx.reporting.load_model_run`).
        voxel_run_dir: voxel classifier run for automatic localisation, or None.
        max_upload_mb: uploads (and unzipped DICOM series) larger than this are refused (413).
        cache_dir: where the bundled synthetic examples are generated on first use.
        allowed_hosts: accepted ``Host`` headers (None: any); ``spinefx app`` on 127.0.0.1
            passes the local names so that a web page cannot reach the app by DNS rebinding.
    """
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "spinefx-app-cache"
    state = AppState(run, voxel_run_dir=voxel_run_dir, max_upload_mb=max_upload_mb, cache_dir=cache)
    app = FastAPI(title="spinefx concept visualisation", docs_url=None, redoc_url=None)
    app.state.spinefx = state
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    @app.middleware("http")
    async def limit_upload_size(request: Request, call_next):
        length = request.headers.get("content-length", "")
        limit = state.max_upload_bytes + 1_000_000  # multipart overhead and the centroid file
        if request.method == "POST" and length.isdigit() and int(length) > limit:
            return JSONResponse(
                {
                    "detail": f"Upload too large: {int(length) / 1e6:.0f} MB, the limit is "
                    f"{state.max_upload_bytes / 1e6:.0f} MB (start the app with --max-upload-mb)."
                },
                status_code=413,
            )
        return await call_next(request)

    @app.exception_handler(SpinefxError)
    async def spinefx_error(_request: Request, exc: SpinefxError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

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
                "auto_localisation": voxel_run_dir is not None,
            },
        )

    @app.post("/api/scans")
    def upload_scan(
        scan: Annotated[UploadFile, File()],
        centroids: Annotated[UploadFile | None, File()] = None,
    ):
        with tempfile.TemporaryDirectory(prefix="spinefx-upload-") as tmp:
            work = Path(tmp)
            data = _read_limited(scan, state.max_upload_bytes)
            saved = uploads.save_scan_upload(
                data, scan.filename or "scan", work, max_bytes=state.max_upload_bytes
            )
            ctd_path = None
            if centroids is not None and centroids.filename:
                ctd_path = work / "centroids.json"
                ctd_path.write_bytes(_read_limited(centroids, 10_000_000))
            workspace = _open_scan(state, saved.path, ctd_path, name=saved.name)
        return _scan_summary(state.add(workspace), workspace)

    @app.post("/api/examples/{name}")
    def open_example(name: str):
        example = get_example(name, state.cache_dir)
        workspace = _open_scan(
            state, example.scan_path, example.centroids_path, name=f"{name} (synthetic example)"
        )
        return _scan_summary(state.add(workspace), workspace)

    @app.get("/api/scans/{scan_id}/overview.png")
    def overview(scan_id: str):
        return _png(panels.overview_png(state.get(scan_id)))

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
    def edit_unit(unit: int, payload: dict[str, Any]):
        label = str(payload.get("label", "")).strip()[:200]
        explanation = str(payload.get("explanation", "")).strip()[:5000]
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


def _open_scan(state: AppState, scan_path: Path, ctd_path: Path | None, *, name: str):
    return open_workspace(
        state.run,
        scan_path,
        centroids_path=ctd_path,
        voxel_run_dir=state.voxel_run_dir,
        name=name,
    )


def _scan_summary(scan_id: str, ws: ScanWorkspace) -> dict:
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
            }
            for p in a.predictions
        ],
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


__all__ = ["AppState", "create_app"]
