# One image for every process of the control plane (web, Celery worker and beat) and for MLflow;
# docker-compose.yml picks the command. Dependencies are the same pins as everywhere: constraints.txt.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONTROLPLANE_DATA_DIR=/app/var

WORKDIR /app

# The project installs no packages of its own ([tool.setuptools] packages = []), so pyproject.toml and
# the lock are all this layer needs; it is rebuilt only when they change.
COPY pyproject.toml constraints.txt ./
RUN pip install -c constraints.txt .

COPY . .
RUN useradd --create-home --uid 1000 app \
    && mkdir -p /app/var/mlflow-artifacts \
    && chown -R app /app/var
USER app

EXPOSE 8000
CMD ["gunicorn", "controlplane.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-"]
