# Image for the worker and the API (docker-compose.yml); the same pinned versions as `make`.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONPATH=/app PYTHONUNBUFFERED=1
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY schemas schemas
COPY infra infra
COPY streams streams
COPY api api
COPY eduknit eduknit
USER nobody
ENTRYPOINT ["python", "-m", "eduknit.cli"]
