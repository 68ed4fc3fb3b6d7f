# One image for every processor: crm-automation engine | scheduler | sink postgres | sink calendar
# (docker-compose.yml also runs the one-shot init and Radicale from it).
FROM python:3.11.14-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY automation_core automation_core
COPY crm_automation crm_automation
COPY streams streams
COPY runtime runtime
COPY scheduler scheduler
COPY sinks sinks
COPY schemas schemas
COPY config config
RUN pip install --no-cache-dir . \
 && mkdir -p /var/lib/crm-automation /var/lib/radicale \
 && chown nobody:nogroup /var/lib/crm-automation /var/lib/radicale
USER nobody
# The engine (Faust) keeps its data directory in the working directory: a writable one.
WORKDIR /var/lib/crm-automation
ENV CRM_AUTOMATION_HOME=/var/lib/crm-automation \
    CRM_AUTOMATION_METRICS_HOST=0.0.0.0
EXPOSE 9401 9402 9403 9404
ENTRYPOINT ["crm-automation"]
CMD ["--help"]
