# One image for every processor: crm-automation engine | scheduler | sink postgres | sink calendar
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY automation_core automation_core
COPY crm_automation crm_automation
COPY streams streams
COPY processors processors
COPY sinks sinks
COPY schemas schemas
COPY config config
RUN pip install --no-cache-dir -e .
USER nobody
ENTRYPOINT ["crm-automation"]
