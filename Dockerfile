# One image for every riskstream component; the compose file picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml requirements.lock README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY sot ./sot
COPY miner ./miner
COPY validator ./validator
COPY gateway ./gateway
RUN pip install --no-cache-dir -c requirements.lock -e .
ENTRYPOINT ["riskstream"]
