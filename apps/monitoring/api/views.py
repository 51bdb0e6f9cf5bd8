import io

import msgspec
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.core.api.parsers import StrictJSONParser
from apps.core.api.views import ScopedReadOnlyViewSet, ScopedViewSet
from apps.core.errors import DomainError, InvalidInput
from apps.monitoring import filtersets, selectors, services
from apps.monitoring.services import ingest_columns
from apps.registry.selectors import model_version_get
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability, team_get_by_slug

from . import serializers as s


def _deployment(user, deployment_id):
    if deployment_id is None:
        return None
    from apps.core.errors import NotFound
    from apps.deployments.models import Deployment
    from apps.teams.selectors import scope_to_teams

    try:
        return scope_to_teams(Deployment.objects.all(), user=user).get(pk=deployment_id)
    except (Deployment.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Deployment {deployment_id} not found.")


def _check_length(request):
    """413 above MONITORING_MAX_UPLOAD_BYTES, before anything is parsed.

    DRF parses JSON from `HttpRequest.body`, which refuses bodies above Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, meant for form fields) with an exception that surfaces as a
    500; ingestion batches have their own, larger limit, so the body is read here (bounded) and handed
    to Django as the already-read body."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    services._check_size(length)
    django_request = request._request
    if "json" in (request.content_type or "") and not hasattr(django_request, "_body") \
            and not django_request._read_started:
        body = django_request.read(settings.MONITORING_MAX_UPLOAD_BYTES + 1)
        services._check_size(len(body))
        django_request._body = body
        django_request._stream = io.BytesIO(body)


def _options(user, data: dict) -> dict:
    if "reference" in data:
        data["reference"] = (selectors.reference_get(user=user, reference_id=data["reference"])
                             if data["reference"] is not None else None)
    if "deployment" in data:
        data["deployment"] = _deployment(user, data["deployment"])
    return data


class CapabilityFirstMixin:
    """A detail action checks its capability on the object's team as soon as the object is found, before the
    body is validated or the service looks at state: a role learns nothing about what it may not act on."""

    def get_object(self):
        obj = super().get_object()
        capability = self.capabilities.get(self.action)
        if capability in Capability.values:
            team = obj.team if hasattr(obj, "team_id") else obj.monitor.team
            require_capability(user=self.request.user, team=team, capability=capability)
        return obj


class ReferenceViewSet(CapabilityFirstMixin, ScopedReadOnlyViewSet):
    serializer_class = s.ReferenceSerializer
    filterset_class = filtersets.ReferenceFilterSet
    capabilities = {"list": "view", "retrieve": "view", "create": "operate", "update_schema": "operate"}
    parser_classes = [StrictJSONParser, MultiPartParser, FormParser]

    def select(self, *, user):
        return selectors.reference_list(user=user)

    @extend_schema(request=s.ReferenceCreateSerializer, responses={201: s.ReferenceSerializer})
    def create(self, request):
        _check_length(request)
        data = s.ReferenceCreateSerializer.validated(request.data)
        version = model_version_get(user=request.user, version_id=data["model_version"])
        schema = [dict(c) for c in data["schema"]] if data.get("schema") else None
        if data["source"] == "mlflow":
            reference = services.reference_from_mlflow(actor=request.user, model_version=version,
                                                       artifact_path=data.get("artifact_path") or None,
                                                       prediction=data.get("prediction") or None,
                                                       target=data.get("target") or None)
        elif data.get("file") is not None or data["source"] == "upload":
            upload = data.get("file")
            if upload is None:
                raise InvalidInput("Attach the reference data as a multipart 'file' (CSV or Parquet).",
                                   fields={"file": ["Required for source=upload."]})
            reference = services.reference_upload(actor=request.user, model_version=version, name=data["name"],
                                                  content=upload.read(), filename=upload.name,
                                                  prediction=data.get("prediction") or None,
                                                  target=data.get("target") or None, schema=schema)
        else:
            import pandas as pd

            if not data.get("rows"):
                raise InvalidInput("Give the reference rows, a file, or source=mlflow.", fields={"rows": ["Required."]})
            reference = services.reference_from_rows(
                actor=request.user, model_version=version, name=data["name"] or "inline rows",
                frame=pd.DataFrame.from_records(data["rows"]), schema=schema,
                prediction=data.get("prediction") or None, target=data.get("target") or None)
        return Response(s.ReferenceSerializer(reference).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.SchemaUpdateSerializer, responses={200: s.ReferenceSerializer})
    @action(detail=True, methods=["post"], url_path="schema", url_name="schema")
    def update_schema(self, request, pk=None):
        """Edit the inferred schema: kinds (numeric/categorical) and roles (feature/prediction/target)."""
        reference = self.get_object()
        data = s.SchemaUpdateSerializer.validated(request.data)
        reference = services.reference_schema_update(actor=request.user, reference=reference,
                                                     schema=[dict(c) for c in data["schema"]])
        return Response(s.ReferenceSerializer(reference).data)


class MonitorViewSet(CapabilityFirstMixin, ScopedReadOnlyViewSet):
    serializer_class = s.MonitorSerializer
    filterset_class = filtersets.MonitorFilterSet
    capabilities = {"list": "view", "retrieve": "view", "create": "operate", "partial_update": "operate",
                    "run": "operate", "auto_rollback": "administer", "rollback": "operate", "retrain": "operate"}
    http_method_names = ["get", "post", "patch", "head", "options"]

    def select(self, *, user):
        return selectors.monitor_list(user=user)

    @extend_schema(request=s.MonitorCreateSerializer, responses={201: s.MonitorSerializer})
    def create(self, request):
        slug = request.data.get("team") if hasattr(request.data, "get") else None
        if isinstance(slug, str) and slug:  # permission before the rest of the body
            require_capability(user=request.user, team=team_get_by_slug(user=request.user, slug=slug),
                               capability=Capability.OPERATE)
        data = s.MonitorCreateSerializer.validated(request.data)
        team = team_get_by_slug(user=request.user, slug=data.pop("team"))
        version = model_version_get(user=request.user, version_id=data.pop("model_version"))
        monitor = services.monitor_create(actor=request.user, team=team, model_version=version,
                                          **_options(request.user, data))
        return Response(s.MonitorSerializer(selectors.monitor_get(user=request.user, monitor_id=monitor.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MonitorUpdateSerializer, responses={200: s.MonitorSerializer})
    def partial_update(self, request, pk=None):
        monitor = self.get_object()
        data = s.MonitorUpdateSerializer.validated(request.data)
        monitor = services.monitor_update(actor=request.user, monitor=monitor, **_options(request.user, data))
        return Response(s.MonitorSerializer(selectors.monitor_get(user=request.user, monitor_id=monitor.pk)).data)

    @extend_schema(request=s.RunRequestSerializer, responses={201: s.RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Run now: queues a run over the window that ends now (or the given window)."""
        monitor = self.get_object()
        data = s.RunRequestSerializer.validated(request.data or {})
        run = services.monitor_run_request(actor=request.user, monitor=monitor,
                                           window_start=data.get("window_start"), window_end=data.get("window_end"))
        return Response(s.RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.AutoRollbackSerializer, responses={200: s.MonitorSerializer})
    @action(detail=True, methods=["post"], url_path="auto-rollback")
    def auto_rollback(self, request, pk=None):
        monitor = self.get_object()
        data = s.AutoRollbackSerializer.validated(request.data)
        monitor = services.monitor_set_auto_rollback(actor=request.user, monitor=monitor, **data)
        return Response(s.MonitorSerializer(selectors.monitor_get(user=request.user, monitor_id=monitor.pk)).data)

    @extend_schema(request=s.ReasonSerializer, responses={200: s.RollbackStartedSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        monitor = self.get_object()
        data = s.ReasonSerializer.validated(request.data or {})
        result = services.monitor_rollback(actor=request.user, monitor=monitor, reason=data.get("reason", ""))
        return Response(s.RollbackStartedSerializer(result).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def retrain(self, request, pk=None):
        job = services.alert_retrain(actor=request.user, monitor=self.get_object())
        return Response({"status": "retraining dispatched", "job": getattr(job, "pk", None)})


class RunViewSet(CapabilityFirstMixin, ScopedReadOnlyViewSet):
    serializer_class = s.RunSerializer
    filterset_class = filtersets.RunFilterSet
    capabilities = {"list": "view", "retrieve": "view", "report": "view", "full_report": "operate",
                    "retry": "operate"}

    def select(self, *, user):
        return selectors.run_list(user=user).prefetch_related("features").select_related("report").defer(
            "report__html_gz")

    @action(detail=True, methods=["get"])
    def report(self, request, pk=None):
        """The run's Evidently HTML report (download)."""
        html = selectors.run_report_html(user=request.user, run_id=pk)
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="drift-run-{pk}.html"'
        return response

    @extend_schema(request=None, responses={202: dict})
    @action(detail=True, methods=["post"], url_path="full-report")
    def full_report(self, request, pk=None):
        """Render the Evidently report on every row instead of the default sample (bounded; queued)."""
        run = services.run_full_report_request(actor=request.user, run=self.get_object())
        return Response({"status": "queued", "run": run.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: s.RunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a run that needs attention again, with a fresh round of attempts (audited)."""
        run = services.monitor_run_retry(actor=request.user, run=self.get_object())
        return Response(s.RunSerializer(self.select(user=request.user).get(pk=run.pk)).data)


class AlertViewSet(CapabilityFirstMixin, ScopedReadOnlyViewSet):
    serializer_class = s.AlertSerializer
    filterset_class = filtersets.AlertFilterSet
    capabilities = {"list": "view", "retrieve": "view", "acknowledge": "operate", "resolve": "operate",
                    "rollback": "operate", "retrain": "operate"}

    def select(self, *, user):
        return selectors.alert_list(user=user)

    @extend_schema(request=s.CommentSerializer, responses={200: s.AlertSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self.get_object()
        data = s.CommentSerializer.validated(request.data or {})
        alert = services.alert_acknowledge(actor=request.user, alert=alert, comment=data["comment"])
        return Response(s.AlertSerializer(alert).data)

    @extend_schema(request=s.CommentSerializer, responses={200: s.AlertSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        alert = self.get_object()
        data = s.CommentSerializer.validated(request.data or {})
        alert = services.alert_resolve(actor=request.user, alert=alert, comment=data["comment"])
        return Response(s.AlertSerializer(alert).data)

    @extend_schema(request=None, responses={200: s.RollbackStartedSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        result = services.alert_rollback(actor=request.user, alert=self.get_object())
        return Response(s.RollbackStartedSerializer(result).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def retrain(self, request, pk=None):
        job = services.alert_retrain(actor=request.user, alert=self.get_object())
        return Response({"status": "retraining dispatched", "job": getattr(job, "pk", None)})


class PredictionBatchViewSet(ScopedReadOnlyViewSet):
    """Prediction log ingestion: POST a JSON batch ({model_version, batch_id, rows: [...]}) or a multipart
    CSV/Parquet `file` with model_version and batch_id fields."""

    serializer_class = s.BatchSerializer
    filterset_class = filtersets.BatchFilterSet
    capabilities = {"list": "view", "retrieve": "view", "create": "operate"}
    parser_classes = [StrictJSONParser, MultiPartParser, FormParser]

    def select(self, *, user):
        return selectors.batch_list(user=user)

    @extend_schema(request=s.BatchCreateSerializer, responses={201: s.BatchSerializer, 200: s.BatchSerializer})
    def create(self, request):
        _check_length(request)
        ingested = self._create_from_columns(request)
        if ingested is None:
            ingested = self._create_from_rows(request)
        batch, created = ingested
        body = {**s.BatchSerializer(batch).data, "duplicate": not created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def _create_from_columns(self, request):
        """The hot path: a JSON batch whose rows all pass, decoded into columns (services/ingest_columns.py).
        None when the batch must take the general path, which answers every other case as it always has."""
        header = ingest_columns.decode_header(request)
        if header is None:
            return None
        try:
            deployment = _deployment(request.user, None if header.deployment is msgspec.UNSET else header.deployment)
            if header.model_version is not msgspec.UNSET:
                version = model_version_get(user=request.user, version_id=header.model_version)
            elif deployment is not None and deployment.current_revision_id:
                version = deployment.current_revision.model_version
            else:
                return None
        except DomainError:
            return None  # the general path raises it, after checking the rows as it always did
        columns = ingest_columns.batch_columns(header, model_version=version)
        if columns is None:
            return None
        return services.predictions_ingest(actor=request.user, model_version=version, batch_id=header.batch_id,
                                           rows=columns, source="json", deployment=deployment)

    def _create_from_rows(self, request):
        data = s.BatchCreateSerializer.validated(request.data)
        deployment = _deployment(request.user, data.get("deployment"))
        if data.get("model_version") is not None:
            version = model_version_get(user=request.user, version_id=data["model_version"])
        elif deployment is not None and deployment.current_revision_id:
            version = deployment.current_revision.model_version
        else:
            raise InvalidInput("Say which model version made these predictions: model_version, or a deployment "
                               "that is serving one.", fields={"model_version": ["Required without a deployment."]})
        upload = data.get("file")
        if upload is not None:
            frame = services.read_table(content=upload.read(), filename=upload.name)
            rows, source = services.frame_to_rows(frame), ("parquet" if upload.name.lower().endswith(".parquet") else "csv")
        elif data.get("rows") is not None:
            rows, source = data["rows"], "json"
        else:
            raise InvalidInput("Send the rows as a JSON list 'rows' or a multipart CSV/Parquet 'file'.",
                               fields={"rows": ["Required (or file)."]})
        return services.predictions_ingest(actor=request.user, model_version=version, batch_id=data["batch_id"],
                                           rows=rows, source=source, deployment=deployment)


class LabelViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Ground-truth labels, joined to prediction logs by request id."""

    capabilities = {"create": "operate"}

    def select(self, *, user):
        return selectors.batch_list(user=user).none()

    @extend_schema(request=s.LabelsSerializer, responses={201: dict})
    def create(self, request):
        _check_length(request)
        data = s.LabelsSerializer.validated(request.data)
        version = model_version_get(user=request.user, version_id=data["model_version"])
        result = services.labels_ingest(actor=request.user, model_version=version, labels=data["labels"])
        return Response(result, status=status.HTTP_201_CREATED)
