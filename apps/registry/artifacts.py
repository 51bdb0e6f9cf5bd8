"""What an approval is bound to: a sha256 manifest over every file of a model version's artifacts.

The manifest maps each file's path (relative to the artifact root, '/'-separated) to the sha256 of its
bytes; the digest is the sha256 of the manifest written canonically (sorted keys, no spaces), so it
changes when any file is added, removed, renamed or rewritten. Files are hashed in 1 MiB chunks, so a
multi-gigabyte model never sits in memory. Artifacts on a local path (file:// stores) are hashed in
place; any other store is downloaded through MLflow's client into a temporary folder first.

The control plane signs {model, version, environment, digest} with its Ed25519 key (REGISTRY_SIGNING_KEY),
so a digest edited in the database afterwards no longer verifies.

(The OpenSSF `model-signing` library computes a similar manifest, but it pulls in sigstore and its
dependency tree; this module is the same idea with `cryptography`, already a dependency.)
"""
import base64
import hashlib
import json
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.conf import settings

from .choices import PromotionKind, PromotionStatus

CHUNK = 1024 * 1024


class ArtifactUnreadable(Exception):
    """The artifacts could not be listed or read; a control bound to them cannot decide."""


def manifest_digest(files: dict[str, str]) -> str:
    canonical = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_manifest(root: Path) -> dict:
    """{"algorithm", "files": {relative path: sha256}, "digest"} of every file under `root` (the digest covers
    paths and contents, not where the folder lives)."""
    if root.is_file():  # an artifact URI may name a single file
        files = {root.name: _file_sha256(root)}
    else:
        files = {path.relative_to(root).as_posix(): _file_sha256(path)
                 for path in sorted(root.rglob("*")) if path.is_file()}
    if not files:
        raise ArtifactUnreadable(f"No artifact files found at {root}.")
    return {"algorithm": "sha256", "files": files, "digest": manifest_digest(files)}


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def artifact_manifest(*, artifact_uri: str) -> dict:
    """The manifest of what `artifact_uri` holds now. Raises ArtifactUnreadable when it can't be read."""
    if not artifact_uri:
        raise ArtifactUnreadable("The version has no artifact location; sync it from MLflow first.")
    local = _local_path(artifact_uri)
    if local is not None:
        if not local.exists():
            raise ArtifactUnreadable(f"{artifact_uri} does not exist.")
        return {**folder_manifest(local), "uri": artifact_uri}
    from . import mlflow_api  # noqa: F401  (sets MLflow's retry and timeout defaults before the import below)
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="artifact-digest-") as folder:
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=folder,
                                                       tracking_uri=settings.MLFLOW_TRACKING_URI)
        except Exception as exc:  # any failure to read means "can't decide", which refuses
            raise ArtifactUnreadable(f"MLflow could not serve {artifact_uri}: {exc}"[:500]) from exc
        return {**folder_manifest(Path(path)), "uri": artifact_uri}


def version_manifest(version) -> dict:
    """The manifest of the files a deployment of `version` serves (the Kubernetes driver's storage URI)."""
    return artifact_manifest(artifact_uri=version.artifact_uri or version.source)


def manifest_changes(approved: dict, current: dict) -> list[str]:
    """Human-readable differences between two manifests' file lists ("model.pkl changed", ...)."""
    before, after = approved.get("files", {}), current.get("files", {})
    changes = [f"{path} changed" for path in sorted(before) if path in after and before[path] != after[path]]
    changes += [f"{path} removed" for path in sorted(set(before) - set(after))]
    changes += [f"{path} added" for path in sorted(set(after) - set(before))]
    return changes


def _signing_key():
    """The platform's Ed25519 key, or None in production without REGISTRY_SIGNING_KEY (digests unsigned)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if settings.REGISTRY_SIGNING_KEY:
        seed = base64.urlsafe_b64decode(settings.REGISTRY_SIGNING_KEY.encode())
    elif settings.PRODUCTION:
        return None
    else:
        seed = hashlib.sha256(f"registry-signing:{settings.SECRET_KEY}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _statement(*, version, environment, digest: str) -> bytes:
    return json.dumps({"model": version.model.name, "version": version.version, "environment": environment.name,
                       "digest": digest}, sort_keys=True, separators=(",", ":")).encode()


def digest_sign(*, version, environment, digest: str) -> str:
    key = _signing_key()
    if key is None:
        return ""
    return base64.urlsafe_b64encode(key.sign(_statement(version=version, environment=environment,
                                                        digest=digest))).decode()


def digest_signature_valid(request) -> bool | None:
    """Whether the request's digest carries this platform's signature (None: no signing key configured)."""
    from cryptography.exceptions import InvalidSignature

    key = _signing_key()
    if key is None:
        return None
    try:
        key.public_key().verify(base64.urlsafe_b64decode(request.artifact_signature.encode()),
                                _statement(version=request.version, environment=request.environment,
                                           digest=request.artifact_digest))
    except (InvalidSignature, ValueError):
        return False
    return True


def approved_request(*, version, environment):
    """The latest approved (or published) promotion of `version` into `environment`, or None."""
    from .models import PromotionRequest

    return (PromotionRequest.objects
            .filter(version=version, environment=environment, kind=PromotionKind.PROMOTE,
                    status__in=[PromotionStatus.APPROVED, PromotionStatus.PUBLISHED])
            .order_by("-decided_at", "-pk").first())
