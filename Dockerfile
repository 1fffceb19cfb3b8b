# One image for the worker and the gateway (docker-compose.yml picks the command).
# torch from PyPI is the CUDA build; on a GPU host run the worker with the NVIDIA runtime.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY schemas ./schemas
COPY services ./services
COPY streams ./streams
COPY cli ./cli
RUN pip install -c constraints.txt . && useradd -r -m -u 10001 xmodal
USER xmodal
# Overridden per service in docker-compose.yml.
CMD ["xmodal", "--help"]
